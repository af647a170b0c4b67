/**
 * Production features, as an operator meets them: worker processes sharing
 * a port, signals and graceful shutdown, readiness, Prometheus metrics,
 * access logs and clients behind proxies. Apps that need their own process
 * run as fixtures (`__test__/fixtures/`) and are driven over real sockets.
 */
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Counter, Histogram, Registry } from 'prom-client'
import WebSocket from 'ws'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, run, type Server } from '../ts/index.js'
import { listen } from './helpers/index.js'
import { alive, freePort, getOnce, runToExit, startApp, waitFor, type AppProcess } from './helpers/proc.js'
import { parsePrometheus, sampleValue } from './prometheus.js'

const procs: AppProcess[] = []
async function app(env: Record<string, unknown>): Promise<AppProcess> {
  const p = await startApp('prod-app.ts', { HTTPY_TEST_OPTS: JSON.stringify({ host: '127.0.0.1', port: 0, ...env }) })
  procs.push(p)
  return p
}
afterEach(() => {
  for (const p of procs.splice(0)) {
    for (const pid of [...p.workers, p.pid]) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
})

/** Distinct `/pid` answers over `n` fresh connections. */
async function pidsSeen(port: number, n: number): Promise<Set<number>> {
  const seen = new Set<number>()
  for (let i = 0; i < n; i++) seen.add(Number((await getOnce(port, '/pid')).body))
  return seen
}

/** How many /slow handlers the app (any of its workers) has started. */
function slowStarted(p: AppProcess): number {
  return p.stdout().split('\n').filter((l) => l.startsWith('{"event":"slow"')).length
}

describe('options', () => {
  it('rejects a workers count that is not a positive integer', async () => {
    for (const workers of [0, -1, 1.5, '2', Number.NaN]) {
      const err = await run({ port: 0, workers: workers as number }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(TypeError)
      expect((err as { code: string }).code).toBe('ERR_HTTPY_INVALID_OPTION')
      expect(String((err as Error).message)).toContain('workers')
    }
  })

  it('refuses workers in app.listen, which serves from one process', async () => {
    const err = await new App().listen({ port: 0, workers: 2 }).catch((e: unknown) => e)
    expect((err as { code: string }).code).toBe('ERR_HTTPY_INVALID_OPTION')
  })

  it('rejects malformed trustProxy, metrics and accessLog values with the option named', async () => {
    const bad = [
      { trustProxy: '10.0.0.0/33' },
      { trustProxy: 'not-an-ip' },
      { trustProxy: -1 },
      { metrics: { path: 'metrics' } },
      { metrics: { registry: {} } },
      { accessLog: { format: 'xml' } },
      { shutdownDelay: -1 },
    ]
    for (const opts of bad) {
      const err = await new App().listen({ port: 0, ...(opts as object) }).catch((e: unknown) => e)
      expect(err, JSON.stringify(opts)).toBeInstanceOf(TypeError)
      expect((err as { code: string }).code).toBe('ERR_HTTPY_INVALID_OPTION')
      expect((err as Error).message).toContain(Object.keys(opts)[0] as string)
    }
  })

  it('reports an access log file that cannot be opened, before serving', async () => {
    const err = await new App().listen({ port: 0, accessLog: { path: '/nonexistent-dir/x/access.log' } }).catch((e: unknown) => e)
    expect((err as { code: string }).code).toBe('ERR_HTTPY_INVALID_OPTION')
    expect((err as Error).message).toContain('/nonexistent-dir/x/access.log')
  })
})

describe('workers', () => {
  it('run({workers: 2}) starts two processes that both accept on one port', async () => {
    const p = await app({ workers: 2 })
    expect(p.workers).toHaveLength(2)
    expect(p.workers).not.toContain(p.pid)
    const seen = await pidsSeen(p.port, 40)
    expect([...seen].sort()).toEqual([...p.workers].sort())
  })

  it('restarts a worker killed with SIGKILL; only requests on its connections can fail', async () => {
    const p = await app({ workers: 2 })
    const [victim, survivor] = p.workers as [number, number]
    let ok = 0
    let killedAt = Infinity
    const failures: { startedAt: number; error: string }[] = []
    let stop = false
    // Two clients in a loop, one request per fresh connection. Requests whose
    // connection the dead worker already held (accepted or queued) may fail;
    // any request started after its death must succeed.
    const client = async (): Promise<void> => {
      while (!stop) {
        const startedAt = Date.now()
        try {
          const r = await getOnce(p.port, '/pid', 5000)
          if (r.status === 200) ok++
          else failures.push({ startedAt, error: `status ${r.status}` })
        } catch (e) {
          failures.push({ startedAt, error: (e as NodeJS.ErrnoException).code ?? String(e) })
        }
      }
    }
    const clients = [client(), client()]
    await new Promise((r) => setTimeout(r, 300))
    process.kill(victim, 'SIGKILL')
    await waitFor(() => !alive(victim), 5000, 5)
    killedAt = Date.now()
    const restarted = await waitFor(async () => {
      const seen = await pidsSeen(p.port, 10).catch(() => new Set<number>())
      return [...seen].some((pid) => pid !== victim && pid !== survivor)
    }, 15_000, 100)
    await new Promise((r) => setTimeout(r, 300))
    stop = true
    await Promise.all(clients)
    expect(restarted).toBe(true)
    expect(p.stderr()).toMatch(new RegExp(`worker \\d \\(pid ${victim}\\) exited with signal SIGKILL; restarting in \\d+ ms`))
    expect(ok).toBeGreaterThan(10)
    for (const f of failures) {
      expect(f.error).toMatch(/ECONNRESET|socket hang up|EPIPE/)
      expect(f.startedAt, JSON.stringify(failures)).toBeLessThanOrEqual(killedAt)
    }
  })

  it('a worker that cannot bind makes the primary report it and exit non-zero', async () => {
    // An exclusive listener (no SO_REUSEPORT) holds the port.
    const blocker = net.createServer()
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r))
    const port = (blocker.address() as net.AddressInfo).port
    try {
      const r = await runToExit('prod-app.ts', {
        HTTPY_TEST_OPTS: JSON.stringify({ host: '127.0.0.1', port, workers: 2 }),
      })
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/worker 1 \(pid \d+\) failed to start: EADDRINUSE/)
      expect(r.ms).toBeLessThan(15_000)
    } finally {
      blocker.close()
    }
  })

  it("SIGTERM to the primary drains every worker: slow requests finish, then all exit", async () => {
    const p = await app({ workers: 2, shutdownTimeout: 8 })
    // Slow requests on fresh connections: with 16, the chance that the
    // kernel hands all of them to one worker is 2 in 65,536.
    const slow = Array.from({ length: 16 }, () => getOnce(p.port, '/slow?ms=1500'))
    expect(await waitFor(() => slowStarted(p) === 16, 5000, 10), 'slow handlers running').toBe(true)
    const t0 = Date.now()
    process.kill(p.pid, 'SIGTERM')
    const results = await Promise.all(slow)
    expect(results.map((r) => r.status)).toEqual(Array(16).fill(200))
    const served = new Set(results.map((r) => Number(r.body.split(' ')[1])))
    expect(served.size).toBe(2)
    expect(await p.exited).toBe(0)
    expect(Date.now() - t0).toBeLessThan(8000)
    for (const w of p.workers) expect(alive(w)).toBe(false)
  })

  it("the guide's pattern: node:cluster workers each calling run() share the port", async () => {
    const port = await freePort()
    const p = await startApp('cluster-by-hand.ts', { HTTPY_TEST_PORT: String(port) })
    procs.push(p)
    const seen = await pidsSeen(port, 40)
    expect([...seen].sort()).toEqual([...p.workers].sort())
  })

  it('independent processes share a port only when each sets reusePort', async () => {
    const port = await freePort()
    const opts = (extra: object) => ({ HTTPY_TEST_OPTS: JSON.stringify({ host: '127.0.0.1', port, ...extra }) })
    const a = await startApp('prod-app.ts', opts({ reusePort: true }))
    procs.push(a)
    const b = await startApp('prod-app.ts', opts({ reusePort: true }))
    procs.push(b)
    const seen = await pidsSeen(port, 40)
    expect([...seen].sort()).toEqual([a.pid, b.pid].sort())
    const c = await runToExit('prod-app.ts', opts({}))
    expect(c.code).not.toBe(0)
    expect(c.stderr).toContain('EADDRINUSE')
    expect(c.stderr).toContain('reusePort')
  })
})

describe('graceful shutdown of one process', () => {
  it('SIGTERM during a slow request: it completes, new connections are refused, the process exits in time', async () => {
    const p = await app({ shutdownTimeout: 5 })
    const slow = getOnce(p.port, '/slow?ms=1500')
    expect(await waitFor(() => slowStarted(p) === 1, 5000, 10)).toBe(true)
    const t0 = Date.now()
    p.child.kill('SIGTERM')
    // The listener closes as the shutdown begins: new connections are refused.
    const refused = () => getOnce(p.port, '/pid', 2000).then(() => false, (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED')
    expect(await waitFor(refused, 1000, 20)).toBe(true)
    expect(await slow).toEqual({ status: 200, body: `done ${p.pid}` })
    expect(await p.exited).toBe(0)
    expect(Date.now() - t0).toBeLessThan(5000)
  })

  it('a handler slower than shutdownTimeout is cut off and the process still exits on time', async () => {
    const p = await app({ shutdownTimeout: 1 })
    const slow = getOnce(p.port, '/slow?ms=10000').catch((e: Error) => e)
    expect(await waitFor(() => slowStarted(p) === 1, 5000, 10)).toBe(true)
    const t0 = Date.now()
    p.child.kill('SIGTERM')
    expect(await p.exited).toBe(0)
    expect(Date.now() - t0).toBeLessThan(3000)
    // Cut off: the client sees its connection end without a response.
    expect(await slow).toMatchObject({ message: expect.stringMatching(/socket hang up|ECONNRESET/) })
  })

  it('idle keep-alive connections do not hold up the exit', async () => {
    const p = await app({ shutdownTimeout: 10, keepAliveTimeout: 30 })
    const agent = new http.Agent({ keepAlive: true })
    await new Promise<void>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: p.port, path: '/pid', agent }, (res) => {
        res.resume()
        res.on('end', resolve)
      }).on('error', reject)
    })
    const t0 = Date.now()
    p.child.kill('SIGTERM')
    expect(await p.exited).toBe(0)
    expect(Date.now() - t0).toBeLessThan(2000)
    agent.destroy()
  })

  it('issue-8: a connection that has sent nothing yet does not hold up a graceful close', async () => {
    const p = await app({ shutdownTimeout: 10, keepAliveTimeout: 30, requestTimeout: 30 })
    const sock = net.connect(p.port, '127.0.0.1')
    // The exiting server may end this socket with a reset rather than a
    // FIN; either is fine here (the test is about the exit's timing), but
    // an 'error' event without a listener would fail the whole run.
    const ended = new Promise<string>((r) => {
      sock.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'))
      sock.on('close', () => r('close'))
    })
    await new Promise((r) => sock.on('connect', r))
    await new Promise((r) => setTimeout(r, 100))
    const t0 = Date.now()
    p.child.kill('SIGTERM')
    expect(await p.exited).toBe(0)
    expect(Date.now() - t0).toBeLessThan(2000)
    expect(['close', 'ECONNRESET']).toContain(await ended)
    sock.destroy()
  })

  it('readiness fails (503) as soon as shutdown begins while shutdownDelay keeps serving', async () => {
    const p = await app({ shutdownDelay: 1.5, shutdownTimeout: 5 })
    expect(await getOnce(p.port, '/readyz')).toEqual({ status: 200, body: '{"status":"ok"}' })
    const t0 = Date.now()
    p.child.kill('SIGTERM')
    const draining = () => getOnce(p.port, '/readyz').then((r) => r.status === 503 && r.body === '{"status":"draining"}')
    expect(await waitFor(draining, 1000, 20)).toBe(true)
    expect((await getOnce(p.port, '/livez')).status).toBe(200)
    expect(await p.exited).toBe(0)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400)
    expect(Date.now() - t0).toBeLessThan(5000)
  })

  it('server.ready and close({delay}) in process', async () => {
    const a = new App()
    a.healthCheck()
    const s = await listen(a)
    expect(s.ready).toBe(true)
    const closing = s.close({ delay: 0.3 })
    expect(s.ready).toBe(false)
    const r = await fetch(`${s.url}/healthz`)
    expect(r.status).toBe(503)
    await closing
    expect(s.isClosed).toBe(true)
  })
})

describe('metrics', () => {
  let server: Server
  beforeAll(async () => {
    const a = new App()
    a.get('/users/{id}', (req) => Response.json({ id: req.pathParams.id }))
    a.get('/boom', () => {
      throw new Error('boom')
    })
    server = await listen(a, { metrics: true })
  })
  afterAll(() => server.close())

  it('serves valid Prometheus text whose counters match the requests sent, native answers included', async () => {
    for (const id of ['1', '2', '3']) expect((await fetch(`${server.url}/users/${id}`)).status).toBe(200)
    expect((await fetch(`${server.url}/nope`)).status).toBe(404)
    expect((await fetch(`${server.url}/nope/again`)).status).toBe(404)
    expect((await fetch(`${server.url}/users/1`, { method: 'POST' })).status).toBe(405)
    expect((await fetch(`${server.url}/boom`)).status).toBe(500)
    const r = await fetch(`${server.url}/metrics`)
    expect(r.status).toBe(200)
    expect(r.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    const fams = parsePrometheus(await r.text())
    expect(fams.get('http_requests_total')?.type).toBe('counter')
    expect(fams.get('http_request_duration_seconds')?.type).toBe('histogram')
    expect(fams.get('http_open_connections')?.type).toBe('gauge')
    const count = (labels: Record<string, string>) => sampleValue(fams, 'http_requests_total', 'http_requests_total', labels)
    expect(count({ method: 'GET', route: '/users/{id}', status: '200' })).toBe(3)
    expect(count({ method: 'GET', route: '<unmatched>', status: '404' })).toBe(2)
    expect(count({ method: 'POST', route: '<unmatched>', status: '405' })).toBe(1)
    expect(count({ method: 'GET', route: '/boom', status: '500' })).toBe(1)
    // Raw paths never become labels.
    expect(fams.get('http_requests_total')?.samples.some((s) => s.labels.route === '/users/1')).toBe(false)
    const hist = (name: string) =>
      sampleValue(fams, 'http_request_duration_seconds', name, { method: 'GET', route: '/users/{id}' })
    expect(hist('http_request_duration_seconds_count')).toBe(3)
    expect(hist('http_request_duration_seconds_sum')).toBeGreaterThan(0)
  })

  it('counts open connections by protocol', async () => {
    const agent = new http.Agent({ keepAlive: true })
    await new Promise<void>((resolve) => http.get(`${server.url}/users/9`, { agent }, (res) => res.resume().on('end', resolve)))
    const h2 = http2.connect(server.url)
    await new Promise<void>((resolve) => {
      const s = h2.request({ ':path': '/users/8' })
      s.resume()
      s.on('end', resolve)
    })
    const text = await (await fetch(`${server.url}/metrics`)).text()
    const fams = parsePrometheus(text)
    const open = (protocol: string) => sampleValue(fams, 'http_open_connections', 'http_open_connections', { protocol })
    // The keep-alive agent's connection plus fetch's own.
    expect(open('http1')).toBeGreaterThanOrEqual(2)
    expect(open('http2')).toBe(1)
    h2.close()
    agent.destroy()
    const closedNow = await waitFor(async () => {
      const f = parsePrometheus(await (await fetch(`${server.url}/metrics`)).text())
      return sampleValue(f, 'http_open_connections', 'http_open_connections', { protocol: 'http2' }) === 0
    }, 3000)
    expect(closedNow).toBe(true)
  })

  it('counts WebSocket connections and data messages both ways', async () => {
    const a = new App()
    a.websocket('/ws', async (ws) => {
      for await (const m of ws) if (m.type === 'text') await ws.sendText(m.data.toUpperCase())
    })
    const s = await listen(a, { metrics: true })
    try {
      const client = new WebSocket(`ws://127.0.0.1:${s.port}/ws`)
      await new Promise((r) => client.on('open', r))
      const replies: string[] = []
      const two = new Promise<void>((resolve) =>
        client.on('message', (d) => {
          replies.push(String(d))
          if (replies.length === 2) resolve()
        }),
      )
      client.send('a')
      client.send('b')
      client.ping()
      await two
      expect(replies).toEqual(['A', 'B'])
      const fams = parsePrometheus(await (await fetch(`${s.url}/metrics`)).text())
      const v = (family: string, labels: Record<string, string>) => sampleValue(fams, family, family, labels)
      expect(v('http_open_connections', { protocol: 'websocket' })).toBe(1)
      expect(v('websocket_messages_total', { direction: 'in' })).toBe(2)
      expect(v('websocket_messages_total', { direction: 'out' })).toBe(2)
      expect(v('http_requests_total', { method: 'GET', route: '/ws', status: '101' })).toBe(1)
      client.close()
      expect(
        await waitFor(async () => {
          const f = parsePrometheus(await (await fetch(`${s.url}/metrics`)).text())
          return sampleValue(f, 'http_open_connections', 'http_open_connections', { protocol: 'websocket' }) === 0
        }, 3000),
      ).toBe(true)
    } finally {
      await s.close()
    }
  })

  it('a metrics path that collides with a route is an error at start, and later', async () => {
    const a = new App()
    a.get('/metrics', () => Response.text('mine'))
    const err = await listen(a, { metrics: true }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TypeError)
    expect((err as { code: string }).code).toBe('ERR_HTTPY_INVALID_OPTION')
    expect((err as Error).message).toContain('collides with route GET /metrics')
    const s = await listen(a, { metrics: { path: '/internal/metrics' } })
    try {
      expect(await (await fetch(`${s.url}/metrics`)).text()).toBe('mine')
      expect(await (await fetch(`${s.url}/internal/metrics`)).text()).toContain('http_requests_total')
      expect(() => a.get('/internal/metrics', () => Response.text('x'))).toThrow(/metrics endpoint/)
    } finally {
      await s.close()
    }
  })

  it("merges a prom-client registry into the same endpoint", async () => {
    const registry = new Registry()
    const jobs = new Counter({ name: 'app_jobs_total', help: 'Jobs run', labelNames: ['kind'], registers: [registry] })
    const a = new App()
    a.post('/jobs', () => {
      jobs.labels('import').inc()
      return Response.text('queued', { status: 202 })
    })
    const s = await listen(a, { metrics: { registry } })
    try {
      await fetch(`${s.url}/jobs`, { method: 'POST' })
      await fetch(`${s.url}/jobs`, { method: 'POST' })
      const fams = parsePrometheus(await (await fetch(`${s.url}/metrics`)).text())
      expect(sampleValue(fams, 'app_jobs_total', 'app_jobs_total', { kind: 'import' })).toBe(2)
      expect(sampleValue(fams, 'http_requests_total', 'http_requests_total', { route: '/jobs', status: '202' })).toBe(2)
    } finally {
      await s.close()
    }
  })

  it('refuses a registry that already defines a family httpy exports', async () => {
    const registry = new Registry()
    new Counter({ name: 'http_requests_total', help: 'dup', registers: [registry] })
    const err = await listen(new App(), { metrics: { registry } }).catch((e: unknown) => e)
    expect((err as { code: string }).code).toBe('ERR_HTTPY_INVALID_OPTION')
    expect((err as Error).message).toContain('http_requests_total')
  })

  it("the guide's prometheus_client middleware, written with prom-client, works as written", async () => {
    // The guide's example, translated: its own registry and metrics server.
    const register = new Registry()
    const REQUEST_COUNT = new Counter({
      name: 'http_requests_total',
      help: 'Total HTTP Requests',
      labelNames: ['method', 'endpoint', 'status'],
      registers: [register],
    })
    const REQUEST_LATENCY = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP Request Latency',
      labelNames: ['method', 'endpoint'],
      registers: [register],
    })
    const a = new App()
    a.addMiddleware(async (request, handler) => {
      const startTime = performance.now()
      const response = await handler(request)
      const duration = (performance.now() - startTime) / 1000
      REQUEST_COUNT.labels(request.method, request.path, String(response.status)).inc()
      REQUEST_LATENCY.labels(request.method, request.path).observe(duration)
      return response
    })
    a.get('/api/users/{id}', (req) => Response.json({ id: req.pathParams.id }))
    const metricsServer = http.createServer(async (_req, res) => {
      res.setHeader('content-type', register.contentType)
      res.end(await register.metrics())
    })
    await new Promise<void>((r) => metricsServer.listen(0, '127.0.0.1', r))
    const s = await listen(a)
    try {
      await fetch(`${s.url}/api/users/7`)
      await fetch(`${s.url}/api/users/7`)
      await fetch(`${s.url}/missing`)
      const port = (metricsServer.address() as net.AddressInfo).port
      const fams = parsePrometheus(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())
      const c = (labels: Record<string, string>) => sampleValue(fams, 'http_requests_total', 'http_requests_total', labels)
      expect(c({ method: 'GET', endpoint: '/api/users/7', status: '200' })).toBe(2)
      expect(c({ method: 'GET', endpoint: '/missing', status: '404' })).toBe(1)
      expect(
        sampleValue(fams, 'http_request_duration_seconds', 'http_request_duration_seconds_count', {
          method: 'GET',
          endpoint: '/api/users/7',
        }),
      ).toBe(2)
    } finally {
      await s.close()
      metricsServer.close()
    }
  })
})

describe('access log', () => {
  const dir = mkdtempSync(join(tmpdir(), 'httpy-access-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  const lines = (file: string): string[] =>
    existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : []

  it('combined format: one line per request, native answers included', async () => {
    const file = join(dir, 'combined.log')
    const a = new App()
    a.get('/hello/{name}', (req) => Response.text(`hi ${req.pathParams.name}`))
    const s = await listen(a, { accessLog: { path: file } })
    try {
      await fetch(`${s.url}/hello/ann?x=1`, { headers: { 'user-agent': 'test-agent/1', referer: 'http://r.example/' } })
      await fetch(`${s.url}/hello/bob`)
      await fetch(`${s.url}/missing`)
      expect(await waitFor(() => lines(file).length === 3, 3000)).toBe(true)
      const got = lines(file)
      const re = /^127\.0\.0\.1 - - \[\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "(\S+) (\S+) HTTP\/1\.1" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$/
      const parsed = got.map((l) => re.exec(l))
      expect(parsed.every((m) => m !== null), got.join('\n')).toBe(true)
      expect(parsed[0]?.slice(1)).toEqual(['GET', '/hello/ann?x=1', '200', '6', 'http://r.example/', 'test-agent/1'])
      expect(parsed[1]?.slice(1, 5)).toEqual(['GET', '/hello/bob', '200', '6'])
      expect(parsed[2]?.slice(1, 4)).toEqual(['GET', '/missing', '404'])
    } finally {
      await s.close()
    }
  })

  it('json format: one object per request, under concurrency', async () => {
    const file = join(dir, 'json.log')
    const a = new App()
    a.get('/n/{i}', (req) => Response.json({ i: Number(req.pathParams.i) }))
    const s = await listen(a, { accessLog: { format: 'json', path: file } })
    try {
      const n = 200
      await Promise.all(Array.from({ length: n }, (_, i) => fetch(`${s.url}/n/${i}`).then((r) => r.text())))
      expect(await waitFor(() => lines(file).length >= n, 5000)).toBe(true)
      const entries = lines(file).map((l) => JSON.parse(l) as Record<string, unknown>)
      expect(entries).toHaveLength(n)
      expect(new Set(entries.map((e) => e.path)).size).toBe(n)
      for (const e of entries) {
        expect(e).toMatchObject({ method: 'GET', status: 200, protocol: 'HTTP/1.1', remote_addr: '127.0.0.1' })
        expect(typeof e.duration_ms).toBe('number')
        expect(Number.isNaN(Date.parse(e.time as string))).toBe(false)
      }
      expect(s.stats().requestsTotal).toBe(n)
    } finally {
      await s.close()
    }
  })

  it('issue-8 regression: behind a trusted proxy the log shows the client, for native answers too', async () => {
    const file = join(dir, 'proxied.log')
    const app = () => {
      const a = new App()
      a.get('/who', (req) => Response.text(req.ip))
      return a
    }
    const s = await listen(app(), { accessLog: { format: 'json', path: file }, trustProxy: 'loopback' })
    const plain = await listen(app(), { accessLog: { format: 'json', path: join(dir, 'direct.log') } })
    try {
      // The client prepends a fake hop; the trusted proxy (loopback) appended the real one.
      const xff = { 'x-forwarded-for': '6.6.6.6, 203.0.113.7' }
      expect(await (await fetch(`${s.url}/who`, { headers: xff })).text()).toBe('203.0.113.7')
      expect((await fetch(`${s.url}/missing`, { headers: { forwarded: 'for="[2001:db8::7]:4711"' } })).status).toBe(404)
      await fetch(`${plain.url}/who`, { headers: xff })
      expect(await waitFor(() => lines(file).length === 2 && lines(join(dir, 'direct.log')).length === 1, 3000)).toBe(true)
      const logged = lines(file).map((l) => (JSON.parse(l) as { remote_addr: string }).remote_addr)
      expect(logged).toEqual(['203.0.113.7', '2001:db8::7'])
      // Without trustProxy the headers are ignored: the TCP peer is logged.
      expect((JSON.parse(lines(join(dir, 'direct.log'))[0] as string) as { remote_addr: string }).remote_addr).toBe('127.0.0.1')
    } finally {
      await s.close()
      await plain.close()
    }
  })
})

describe('trustProxy', () => {
  const servers: Server[] = []
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()))
  })
  async function echo(trustProxy: unknown): Promise<Server> {
    const a = new App()
    a.get('/who', (req) => Response.json({ ip: req.ip, scheme: req.scheme, host: req.host, peer: req.remoteAddress }))
    const s = await listen(a, trustProxy === undefined ? {} : { trustProxy: trustProxy as never })
    servers.push(s)
    return s
  }
  const who = async (s: Server, headers: Record<string, string>) =>
    (await (await fetch(`${s.url}/who`, { headers })).json()) as { ip: string; scheme: string; host: string; peer: string }

  const forged = { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' }

  it('without trustProxy, forwarding headers are ignored', async () => {
    const s = await echo(undefined)
    expect(await who(s, forged)).toEqual({ ip: '127.0.0.1', scheme: 'http', host: `127.0.0.1:${s.port}`, peer: '127.0.0.1' })
  })

  it('a forged X-Forwarded-For from an untrusted peer is ignored', async () => {
    const s = await echo('10.0.0.0/8')
    expect((await who(s, forged)).ip).toBe('127.0.0.1')
    expect((await who(s, forged)).scheme).toBe('http')
  })

  it('trusted peer: X-Forwarded-For/-Proto/-Host are honoured, the chain read from the right', async () => {
    const s = await echo(['loopback'])
    expect(await who(s, forged)).toMatchObject({ ip: '203.0.113.9', scheme: 'https', host: 'evil.example', peer: '127.0.0.1' })
    // The client prepended a fake hop; only the proxy's own entry counts.
    expect((await who(s, { 'x-forwarded-for': '1.1.1.1, 198.51.100.4' })).ip).toBe('198.51.100.4')
  })

  it('hop count and CIDR lists walk through trusted proxies only', async () => {
    const two = await echo(2)
    expect((await who(two, { 'x-forwarded-for': '1.1.1.1, 198.51.100.4, 10.0.0.5' })).ip).toBe('198.51.100.4')
    const cidr = await echo('127.0.0.1, 10.0.0.0/8')
    expect((await who(cidr, { 'x-forwarded-for': '1.1.1.1, 198.51.100.4, 10.1.2.3' })).ip).toBe('198.51.100.4')
    const all = await echo(true)
    expect((await who(all, { 'x-forwarded-for': '1.1.1.1, 198.51.100.4, 10.1.2.3' })).ip).toBe('1.1.1.1')
  })

  it('Forwarded (RFC 7239) and X-Real-IP', async () => {
    const s = await echo('loopback')
    expect(
      await who(s, { forwarded: 'for=192.0.2.60;proto=https;host=shop.example, for="[2001:db8::17]:4711"' }),
    ).toMatchObject({ ip: '2001:db8::17' })
    const s2 = await echo(true)
    expect(
      await who(s2, { forwarded: 'for=192.0.2.60;proto=https;host=shop.example, for="[2001:db8::17]:4711"' }),
    ).toMatchObject({ ip: '192.0.2.60', scheme: 'https', host: 'shop.example' })
    expect((await who(s, { 'x-real-ip': '192.0.2.33' })).ip).toBe('192.0.2.33')
  })

  it('garbage in forwarding headers never becomes req.ip, scheme or host', async () => {
    const s = await echo(true)
    const r = await who(s, { 'x-forwarded-for': 'unknown, <script>', 'x-forwarded-proto': 'gopher', 'x-forwarded-host': 'a b' })
    expect(r).toEqual({ ip: '127.0.0.1', scheme: 'http', host: `127.0.0.1:${s.port}`, peer: '127.0.0.1' })
  })
})
