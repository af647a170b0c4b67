/**
 * Every file in examples/ is started the way its header says (a child
 * process under tsx, PORT=0 so it picks a free port) and must answer its
 * documented request. Each run is bounded in time and the child is stopped
 * with SIGTERM, which also proves `run()` closes gracefully.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync } from 'node:fs'
import http from 'node:http'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..')
const tsx = join(root, 'node_modules', '.bin', 'tsx')

interface Started {
  url: string
  child: ChildProcess
  output: () => string
  lines: (re: RegExp, timeoutMs?: number) => Promise<RegExpExecArray>
}

const running = new Set<ChildProcess>()
afterEach(async () => {
  for (const c of running) await stop(c)
  running.clear()
})

function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000)
    child.once('exit', (code) => {
      clearTimeout(kill)
      resolve(code)
    })
    child.kill('SIGTERM')
  })
}

/** Starts `examples/<file>` and waits (bounded) for its "listening on <url>" line. */
async function start(file: string, env: Record<string, string> = {}): Promise<Started> {
  const child = spawn(tsx, [join(root, 'examples', file)], {
    cwd: root,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.add(child)
  let out = ''
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()))
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()))
  const lines = (re: RegExp, timeoutMs = 20_000) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const m = re.exec(out)
        if (m) return done(() => resolve(m))
        if (child.exitCode !== null) done(() => reject(new Error(`${file} exited (${child.exitCode}):\n${out}`)))
      }
      const timer = setTimeout(() => done(() => reject(new Error(`${file}: no ${re} within ${timeoutMs} ms:\n${out}`))), timeoutMs)
      const done = (f: () => void) => {
        clearTimeout(timer)
        child.stdout?.off('data', check)
        child.stderr?.off('data', check)
        child.off('exit', check)
        f()
      }
      child.stdout?.on('data', check)
      child.stderr?.on('data', check)
      child.on('exit', check)
      check()
    })
  const m = await lines(/listening on (http\S+)/)
  return { url: m[1] as string, child, output: () => out, lines }
}

/** A GET through node:http, so content-encoding is seen as sent (fetch would decode it). */
function rawGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
  })
}

const tested = new Set<string>()
function example(file: string, title: string, fn: () => Promise<void>, timeout = 40_000): void {
  tested.add(file)
  it(`${file}: ${title}`, fn, timeout)
}

describe('examples', () => {
  example('app.ts', 'serves the guide routes; the expensive one is cached after the first call', async () => {
    const { url } = await start('app.ts')
    const list = await fetch(`${url}/api/users?limit=3`)
    expect(list.status).toBe(200)
    expect(((await list.json()) as unknown[]).length).toBe(3)
    expect(await (await fetch(`${url}/api/users/7`)).json()).toMatchObject({ id: 7, name: 'User 7' })
    expect(await (await fetch(`${url}/api/users/7/profile`)).json()).toMatchObject({ id: 7, bio: expect.any(String) })
    expect((await fetch(`${url}/api/users/999`)).status).toBe(404)
    const big = await fetch(`${url}/api/large-dataset`)
    expect(big.headers.get('content-type')).toBe('application/json')
    expect(((await big.json()) as unknown[]).length).toBe(10_000)
    let t = performance.now()
    const first = await fetch(`${url}/api/expensive-operation`)
    expect(await first.json()).toEqual({ result: 'expensive calculation' })
    expect(performance.now() - t).toBeGreaterThanOrEqual(1900)
    t = performance.now()
    const second = await fetch(`${url}/api/expensive-operation`)
    expect(await second.json()).toEqual({ result: 'expensive calculation' })
    expect(performance.now() - t).toBeLessThan(1000)
  })

  example('app.ts', 'honours PORT and stops cleanly on SIGTERM', async () => {
    const { url, child } = await start('app.ts')
    expect((await fetch(`${url}/api/users`)).status).toBe(200)
    expect(await stop(child)).toBe(0)
  })

  example('buffer-sizes.ts', 'answers GET /', async () => {
    const { url } = await start('buffer-sizes.ts')
    const r = await fetch(`${url}/`)
    expect(r.status).toBe(200)
    expect(await r.text()).toBe('Hello with 64 KiB buffers')
  })

  example('timeouts.ts', 'answers GET /', async () => {
    const { url } = await start('timeouts.ts')
    expect(await (await fetch(`${url}/`)).text()).toBe('Hello with custom timeouts')
  })

  example('keep-alive.ts', 'serves two requests over one kept-alive connection', async () => {
    const { url } = await start('keep-alive.ts')
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const ports: number[] = []
    for (let i = 0; i < 2; i++) {
      await new Promise<void>((resolve, reject) => {
        http
          .get(`${url}/`, { agent }, (res) => {
            ports.push(res.socket.localPort ?? -1)
            expect(res.statusCode).toBe(200)
            res.resume().on('end', resolve)
          })
          .on('error', reject)
      })
    }
    agent.destroy()
    expect(ports[0]).toBe(ports[1])
  })

  example('connection-limits.ts', 'answers GET /', async () => {
    const { url } = await start('connection-limits.ts')
    expect(await (await fetch(`${url}/`)).text()).toBe('Hello within the connection limit')
  })

  example('route-ordering.ts', 'matches the most specific route whatever the order', async () => {
    const { url } = await start('route-ordering.ts')
    expect(await (await fetch(`${url}/api/users/7/profile`)).json()).toEqual({ route: 'profile', id: '7' })
    expect(await (await fetch(`${url}/api/users/7`)).json()).toEqual({ route: 'user', id: '7' })
    expect(await (await fetch(`${url}/api/users`)).json()).toEqual({ route: 'list' })
  })

  example('route-caching.ts', 'the hand-written and built-in caches both answer the second call at once', async () => {
    const { url } = await start('route-caching.ts')
    for (const path of ['/api/expensive-operation', '/api/expensive-builtin']) {
      let t = performance.now()
      expect(await (await fetch(url + path)).json()).toEqual({ result: 'expensive calculation' })
      expect(performance.now() - t).toBeGreaterThanOrEqual(1900)
      t = performance.now()
      expect(await (await fetch(url + path)).json()).toEqual({ result: 'expensive calculation' })
      expect(performance.now() - t).toBeLessThan(1000)
    }
  })

  example('compression.ts', 'gzips large JSON for clients that accept it, and only for them', async () => {
    const { url } = await start('compression.ts')
    const gz = await rawGet(`${url}/api/report`, { 'accept-encoding': 'gzip' })
    expect(gz.status).toBe(200)
    expect(gz.headers['content-encoding']).toBe('gzip')
    expect(Number(gz.headers['content-length'])).toBe(gz.body.length)
    const data = JSON.parse(gunzipSync(gz.body).toString()) as { rows: unknown[] }
    expect(data.rows.length).toBe(500)
    const plain = await rawGet(`${url}/api/report`)
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(JSON.parse(plain.body.toString())).toEqual(data)
    expect(plain.body.length).toBeGreaterThan(gz.body.length * 5)
    const tiny = await rawGet(`${url}/api/tiny`, { 'accept-encoding': 'gzip' })
    expect(tiny.headers['content-encoding']).toBeUndefined()
    expect(JSON.parse(tiny.body.toString())).toEqual({ ok: true })
  })

  example('json-serialization.ts', 'sends 10,000 pre-serialised items', async () => {
    const { url } = await start('json-serialization.ts')
    const r = await fetch(`${url}/api/large-dataset`)
    expect(r.headers.get('content-type')).toBe('application/json')
    const items = (await r.json()) as { id: number; name: string }[]
    expect(items.length).toBe(10_000)
    expect(items[9999]).toEqual({ id: 9999, name: 'Item 9999' })
  })

  example('static-files.ts', 'serves a file with ETag, answers 304 to If-None-Match, 404 otherwise', async () => {
    const { url } = await start('static-files.ts')
    const r = await rawGet(`${url}/static/style.css`)
    expect(r.status).toBe(200)
    expect(r.headers['content-type']).toBe('text/css')
    expect(r.headers['cache-control']).toBe('max-age=86400')
    expect(r.body.toString()).toContain('font-family')
    const etag = r.headers.etag as string
    expect(etag).toMatch(/^".+"$/)
    const again = await rawGet(`${url}/static/style.css`, { 'if-none-match': etag })
    expect(again.status).toBe(304)
    expect(again.body.length).toBe(0)
    expect((await rawGet(`${url}/static/app.js`)).headers['content-type']).toBe('application/javascript')
    const missing = await rawGet(`${url}/static/nope.css`)
    expect(missing.status).toBe(404)
    expect(JSON.parse(missing.body.toString())).toEqual({ error: 'File not found' })
    // Encoded dot segments reach the handler as `..`; they must not escape the directory.
    expect((await rawGet(`${url}/static/%2e%2e/app.ts`)).status).toBe(404)
  })

  example('profiling.ts', 'with PROFILE=1 answers and prints a CPU profile of the handler', async () => {
    const s = await start('profiling.ts', { PROFILE: '1' })
    const r = await fetch(`${s.url}/api/users/7`)
    expect(await r.json()).toMatchObject({ id: 7, name: 'User 7' })
    await s.lines(/profile: self time \(ms\)\s+function\n(\s+\d+\.\d{3}\s+.+\n?)+/)
  })

  example('metrics.ts', 'counts requests and exposes them in the Prometheus format', async () => {
    const s = await start('metrics.ts')
    const m = await s.lines(/metrics on (http\S+)/)
    for (let i = 0; i < 3; i++) expect((await fetch(`${s.url}/api/users`)).status).toBe(200)
    expect((await fetch(`${s.url}/nope`)).status).toBe(404)
    const text = await (await fetch(m[1] as string)).text()
    expect(text).toContain('http_requests_total{method="GET",endpoint="/api/users",status="200"} 3')
    expect(text).toContain('http_requests_total{method="GET",endpoint="/nope",status="404"} 1')
    expect(text).toContain('http_request_duration_seconds_count{method="GET",endpoint="/api/users"} 3')
    expect(text).toMatch(/# TYPE http_request_duration_seconds histogram/)
  })

  it('covers every example file', () => {
    const files = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.ts'))
    expect(files.filter((f) => !tested.has(f))).toEqual([])
  })
})
