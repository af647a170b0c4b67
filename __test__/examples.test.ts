/**
 * Every file in examples/ is started the way its header says (a child
 * process under tsx, PORT=0 so it picks a free port) and must answer its
 * documented request. Each run is bounded in time and the child is stopped
 * with SIGTERM, which also proves `run()` closes gracefully.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { HTTP3_AVAILABLE } from '../ts/index.js'
import { freePort, waitFor } from './helpers/proc.js'
import { rawGetTimed } from './helpers/h1.js'
import { h3 } from './helpers/h3.js'
import { startRedis } from './helpers/redis.js'
import { requireTool } from './helpers/tools.js'

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
  for (const c of running) await stop(c, c.spawnargs[0] === 'npm')
  running.clear()
})

function stop(child: ChildProcess, group = false): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  const signal = (sig: NodeJS.Signals) => {
    try {
      if (group && child.pid) process.kill(-child.pid, sig)
      else child.kill(sig)
    } catch {
      // already gone
    }
  }
  return new Promise((resolve) => {
    const kill = setTimeout(() => signal('SIGKILL'), 5000)
    child.once('exit', (code) => {
      clearTimeout(kill)
      resolve(code)
    })
    signal('SIGTERM')
  })
}

/** Starts `examples/<file>` and waits (bounded) for its "listening on <url>" line. */
async function start(file: string, env: Record<string, string> = {}, command?: string[]): Promise<Started> {
  const [cmd, ...args] = command ?? [tsx, join(root, 'examples', file)]
  const child = spawn(cmd as string, args, {
    cwd: root,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // `npm start` runs the app in a grandchild: give it its own process group
    // so the whole group can be signalled and nothing outlives the test.
    detached: command !== undefined,
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

const tested = new Set<string>()
/**
 * One test per documented request. A broken import or a missing export
 * fails like any other error: every example is part of the build.
 */
function example(
  file: string,
  title: string,
  fn: (ctx: { skip: () => never }) => Promise<void>,
  opts: { timeout?: number } = {},
): void {
  tested.add(file)
  it(`${file}: ${title}`, async (ctx) => fn(ctx as unknown as { skip: () => never }), opts.timeout ?? 40_000)
}

/**
 * One GET over HTTP/3 with the aioquic client of the HTTP/3 suite
 * (independent of the quinn/h3 server stack), killed after 20 s;
 * helpers/tools.ts decides what a missing one does.
 */
const h3Get = (port: number, path: string) => h3(port, [{ path }], { timeoutMs: 20_000 })

/** GET over HTTP/2 with TLS (self-signed certificates accepted); collects pushed streams. */
async function h2Get(url: string, path: string): Promise<{ status: number; body: string; pushed: string[] }> {
  const session = http2.connect(url, { rejectUnauthorized: false })
  try {
    const pushed: string[] = []
    session.on('stream', (stream, headers) => {
      pushed.push(String(headers[':path']))
      stream.resume()
    })
    return await new Promise((resolve, reject) => {
      const req = session.request({ ':path': path })
      let status = 0
      const chunks: Buffer[] = []
      req.on('response', (h) => (status = Number(h[':status'])))
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => setTimeout(() => resolve({ status, body: Buffer.concat(chunks).toString(), pushed }), 100))
      req.on('error', reject)
      req.setTimeout(10_000, () => req.close())
    })
  } finally {
    session.close()
  }
}

/** GET over HTTPS/1.1 with the self-signed certificate accepted. */
function h1sGet(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { rejectUnauthorized: false, agent: false, timeout: 10_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
  })
}

/** Opens a WebSocket with the `ws` package and collects what arrives. */
async function wsOpen(url: string): Promise<{ sock: WebSocket; messages: Array<{ data: Buffer; binary: boolean }>; next: (n?: number) => Promise<void> }> {
  const sock = new WebSocket(url)
  const messages: Array<{ data: Buffer; binary: boolean }> = []
  sock.on('message', (data: Buffer, binary: boolean) => messages.push({ data, binary }))
  await new Promise<void>((resolve, reject) => {
    sock.once('open', () => resolve())
    sock.once('error', reject)
  })
  const next = (n = 1) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`expected ${n} messages, got ${messages.length}`)), 10_000)
      const check = () => {
        if (messages.length >= n) {
          clearTimeout(timer)
          sock.off('message', check)
          resolve()
        }
      }
      sock.on('message', check)
      check()
    })
  return { sock, messages, next }
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

  it('`npm start` runs the example app', async () => {
    const { url, child } = await start('app.ts', {}, ['npm', 'start', '--silent'])
    const r = await fetch(`${url}/api/users/3`)
    expect(await r.json()).toMatchObject({ id: 3, name: 'User 3' })
    // SIGTERM to the whole group (as a terminal's Ctrl+C would): the app closes
    // and the port stops answering.
    await stop(child, true)
    const refused = () => fetch(`${url}/api/users/3`).then(() => false, (e: Error) => (e.cause as NodeJS.ErrnoException)?.code === 'ECONNREFUSED')
    expect(await waitFor(refused, 5000)).toBe(true)
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
    const gz = await rawGetTimed(`${url}/api/report`, { 'accept-encoding': 'gzip' })
    expect(gz.status).toBe(200)
    expect(gz.headers['content-encoding']).toBe('gzip')
    expect(Number(gz.headers['content-length'])).toBe(gz.body.length)
    const data = JSON.parse(gunzipSync(gz.body).toString()) as { rows: unknown[] }
    expect(data.rows.length).toBe(500)
    const plain = await rawGetTimed(`${url}/api/report`)
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(JSON.parse(plain.body.toString())).toEqual(data)
    expect(plain.body.length).toBeGreaterThan(gz.body.length * 5)
    const tiny = await rawGetTimed(`${url}/api/tiny`, { 'accept-encoding': 'gzip' })
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
    const r = await rawGetTimed(`${url}/static/style.css`)
    expect(r.status).toBe(200)
    expect(r.headers['content-type']).toBe('text/css')
    expect(r.headers['cache-control']).toBe('max-age=86400')
    expect(r.body.toString()).toContain('font-family')
    const etag = r.headers.etag as string
    expect(etag).toMatch(/^".+"$/)
    const again = await rawGetTimed(`${url}/static/style.css`, { 'if-none-match': etag })
    expect(again.status).toBe(304)
    expect(again.body.length).toBe(0)
    expect((await rawGetTimed(`${url}/static/app.js`)).headers['content-type']).toBe('application/javascript')
    const missing = await rawGetTimed(`${url}/static/nope.css`)
    expect(missing.status).toBe(404)
    expect(JSON.parse(missing.body.toString())).toEqual({ error: 'File not found' })
    // Encoded dot segments reach the handler as `..`; they must not escape the directory.
    expect((await rawGetTimed(`${url}/static/%2e%2e/app.ts`)).status).toBe(404)
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

  example(
    'workers.ts',
    'forks worker processes that answer on the shared port',
    async () => {
      const s = await start('workers.ts', { WORKERS: '2' })
      const primary = Number(/primary (\d+)/.exec(s.output())?.[1])
      expect(primary).toBeGreaterThan(0)
      const pids = new Set<number>()
      for (let i = 0; i < 12; i++) {
        const r = await rawGetTimed(`${s.url}/`)
        expect(r.status).toBe(200)
        const pid = Number(/^hello from worker (\d+)$/.exec(r.body.toString())?.[1])
        expect(pid).toBeGreaterThan(0)
        pids.add(pid)
      }
      expect(pids.has(primary)).toBe(false)
    },
  )

  example(
    'all-protocols.ts',
    'serves HTTP/2 and HTTP/1.1 over TLS on one port, and HTTP/3 when built in',
    async (ctx) => {
      // A fixed port (not 0), so that "the same port number" can be checked.
      const port = await freePort()
      const s = await start('all-protocols.ts', { PORT: String(port) })
      const h2 = await h2Get(s.url, '/')
      expect(h2.status).toBe(200)
      expect(JSON.parse(h2.body)).toEqual({ protocol: 'HTTP/2', scheme: 'https' })
      const h1 = await h1sGet(`${s.url}/`)
      expect(JSON.parse(h1.body)).toEqual({ protocol: 'HTTP/1.1', scheme: 'https' })
      // With HTTP/3 built in, the same port number answers over QUIC too.
      if (!HTTP3_AVAILABLE) {
        expect(s.output()).toMatch(/HTTP\/3 not built in/)
        return
      }
      const udp = Number(/HTTP\/3 on udp (\d+)/.exec(s.output())?.[1])
      expect(Number(new URL(s.url).port)).toBe(port)
      expect(udp).toBe(port)
      if (!requireTool('aioquic', 'examples.test.ts (all-protocols.ts over HTTP/3)')) ctx.skip()
      const r = await h3Get(udp, '/')
      expect(JSON.parse(r.responses[0]!.body)).toEqual({ protocol: 'HTTP/3', scheme: 'https' })
    },
  )

  example(
    'http3-config.ts',
    'answers over HTTP/3 with the configured QUIC limits, and over HTTPS on TCP',
    async (ctx) => {
      // The one honest skip: a build without HTTP/3 (HTTP3_AVAILABLE false).
      if (!HTTP3_AVAILABLE || !requireTool('aioquic', 'examples.test.ts (http3-config.ts)')) ctx.skip()
      const s = await start('http3-config.ts')
      const udp = Number(/HTTP\/3 on udp (\d+)/.exec(s.output())?.[1])
      expect(udp).toBeGreaterThan(0)
      expect((await h2Get(s.url, '/')).status).toBe(200)
      const r = await h3Get(udp, '/')
      expect(r.responses[0]).toMatchObject({ status: 200 })
      expect(JSON.parse(r.responses[0]!.body)).toEqual({ protocol: 'HTTP/3' })
      expect(r.transport).toMatchObject({
        initial_max_data: 5 * 1024 * 1024,
        initial_max_stream_data_bidi_remote: 1024 * 1024,
        initial_max_streams_bidi: 100,
        max_idle_timeout: 30_000,
      })
    },
  )

  example(
    'server-push.ts',
    'pushes the stylesheet and script over HTTP/2 and announces them with Link over HTTP/1.1',
    async () => {
      const { url } = await start('server-push.ts')
      const h2 = await h2Get(url, '/')
      expect(h2.status).toBe(200)
      expect(h2.body).toContain('<h1>Welcome</h1>')
      expect(h2.pushed.sort()).toEqual(['/static/app.js', '/static/style.css'])
      const h1 = await h1sGet(`${url}/`)
      const link = String(h1.headers.link)
      expect(link).toMatch(/<\/static\/style\.css>;\s*rel=preload;\s*as=style/)
      expect(link).toMatch(/<\/static\/app\.js>;\s*rel=preload;\s*as=script/)
    },
  )

  example(
    'websocket-batching.ts',
    'answers with one message holding every item (and n messages on /ws/unbatched)',
    async () => {
      const { url } = await start('websocket-batching.ts')
      const a = await wsOpen(`${url.replace('http', 'ws')}/ws`)
      a.sock.send('50')
      await a.next(1)
      await new Promise((r) => setTimeout(r, 200))
      expect(a.messages.length).toBe(1)
      expect((JSON.parse(a.messages[0]!.data.toString()) as unknown[]).length).toBe(50)
      a.sock.close()
      const b = await wsOpen(`${url.replace('http', 'ws')}/ws/unbatched`)
      b.sock.send('5')
      await b.next(5)
      expect(b.messages.map((m) => JSON.parse(m.data.toString()).id)).toEqual([0, 1, 2, 3, 4])
      b.sock.close()
    },
  )

  example(
    'websocket-binary.ts',
    'replies with one binary message in the documented layout',
    async () => {
      const { url } = await start('websocket-binary.ts')
      const c = await wsOpen(`${url.replace('http', 'ws')}/ws`)
      c.sock.send('readings please')
      await c.next(1)
      const m = c.messages[0]!
      expect(m.binary).toBe(true)
      expect(m.data.readUInt32LE(0)).toBe(100)
      expect(m.data.length).toBe(4 + 16 * 100)
      expect(m.data.readDoubleLE(12 + 16 * 10)).toBeCloseTo(Math.sin(1))
      c.sock.close()
    },
  )

  example(
    'websocket-heartbeat.ts',
    'pings on the interval, echoes messages, and stops cleanly when the client leaves',
    async () => {
      const s = await start('websocket-heartbeat.ts', { HEARTBEAT_SECONDS: '0.2' })
      const c = await wsOpen(`${s.url.replace('http', 'ws')}/ws`)
      let pings = 0
      c.sock.on('ping', (data: Buffer) => {
        if (data.toString() === 'ping') pings++
      })
      c.sock.send('hello')
      await c.next(1)
      expect(c.messages[0]!.data.toString()).toBe('hello')
      await new Promise((r) => setTimeout(r, 900))
      expect(pings).toBeGreaterThanOrEqual(2)
      c.sock.close(1000, 'bye')
      await s.lines(/WebSocket closed/)
    },
  )

  example(
    'chat-cluster.ts',
    'a line sent to one worker reaches every member in every worker, and with REDIS_URL every server (REDIS_DURABLE too)',
    async (ctx) => {
      const s = await start('chat-cluster.ts')
      expect(s.output()).toMatch(/\(4 workers\)/)
      const ws = s.url.replace('http', 'ws')
      const members = await Promise.all(Array.from({ length: 12 }, () => wsOpen(`${ws}/chat/lobby`)))
      const count = async (url: string) => JSON.parse((await rawGetTimed(`${url}/rooms/lobby`)).body.toString()) as unknown
      // Every worker counts the members of all four.
      expect(await waitFor(async () => JSON.stringify(await count(s.url)) === '{"room":"lobby","members":12}', 5000, 20)).toBe(true)
      members[0]!.sock.send('hello, everyone')
      await Promise.all(members.map((m) => m.next(1)))
      for (const m of members) expect(m.messages.map((x) => x.data.toString())).toEqual(['hello, everyone'])
      for (const m of members) m.sock.close()

      // Two servers of two workers each, sharing one Redis.
      if (!requireTool('redis', 'examples.test.ts (chat-cluster.ts with REDIS_URL)')) ctx.skip()
      const redis = await startRedis(await freePort())
      try {
        const env = { WORKERS: '2', REDIS_URL: redis.url }
        const [one, two] = await Promise.all([start('chat-cluster.ts', env), start('chat-cluster.ts', env)])
        const a = await wsOpen(`${one!.url.replace('http', 'ws')}/chat/ops`)
        const b = await wsOpen(`${two!.url.replace('http', 'ws')}/chat/ops`)
        // Both servers have subscribed the room on Redis.
        expect(await waitFor(() => redis.cli('PUBSUB', 'NUMSUB', 'httpy:ops')[1] === '2', 10_000, 20)).toBe(true)
        a.sock.send('across machines')
        await b.next(1)
        expect(b.messages[0]!.data.toString()).toBe('across machines')

        // REDIS_DURABLE=1: the same chat on Redis Streams.
        const denv = { ...env, REDIS_DURABLE: '1' }
        const [three, four] = await Promise.all([start('chat-cluster.ts', denv), start('chat-cluster.ts', denv)])
        const c = await wsOpen(`${three!.url.replace('http', 'ws')}/chat/kept`)
        const d = await wsOpen(`${four!.url.replace('http', 'ws')}/chat/kept`)
        // The two workers holding them read the room's stream.
        const readers = () => redis.cli('CLIENT', 'LIST').filter((l) => / name=httpy-\d+-read .* cmd=xread /.test(l)).length
        expect(await waitFor(() => readers() === 2, 10_000, 20)).toBe(true)
        c.sock.send('kept on a stream')
        await d.next(1)
        expect(d.messages[0]!.data.toString()).toBe('kept on a stream')
        expect(redis.cli('XLEN', 'httpy:kept')).toEqual(['1'])
      } finally {
        await redis.kill()
      }
    },
    { timeout: 60_000 },
  )

  example(
    'benchmark.ts',
    'loads its own route and prints the results, with no errors',
    async () => {
      const s = await start('benchmark.ts', { NUM_REQUESTS: '500' })
      const m = await s.lines(/Requests per second: (\d+\.\d\d)[\s\S]*95th percentile: \d+\.\d\dms[\s\S]*Errors: (\d+); statuses: (\{.*\})/, 30_000)
      expect(Number(m[1])).toBeGreaterThan(0)
      expect(m[2]).toBe('0')
      expect(JSON.parse(m[3] as string)).toEqual({ 200: 500 })
      const code = s.child.exitCode ?? (await new Promise((r) => s.child.once('exit', r)))
      expect(code).toBe(0)
    },
  )

  example('hono.ts', 'serves the Hono app unchanged', async () => {
    const { url } = await start('hono.ts')
    expect(await (await fetch(`${url}/`)).text()).toBe('Hello from Hono on HTTPy')
    expect(await (await fetch(`${url}/users/7`)).json()).toEqual({ id: '7', client: '127.0.0.1' })
  })

  example('fetch-module.ts', 'httpy serve runs the export default { fetch } module', async () => {
    const file = join(root, 'examples', 'fetch-module.ts')
    const { url } = await start('fetch-module.ts', {}, [tsx, join(root, 'ts', 'cli.ts'), 'serve', file])
    expect(await (await fetch(`${url}/x`)).text()).toBe('Hello from /x')
    const r = await fetch(`${url}/double`, { method: 'POST', body: JSON.stringify({ n: 21 }) })
    expect(await r.json()).toEqual({ result: 42 })
  })

  it('covers every example file', () => {
    const files = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.ts'))
    expect(files.filter((f) => !tested.has(f))).toEqual([])
  })
})
