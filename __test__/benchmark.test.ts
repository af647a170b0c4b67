import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, defaultApp, get, type Server } from '../ts/index.js'
import { BenchmarkError, benchmarkRoute } from '../ts/benchmark.js'
import { listen } from './helpers/index.js'

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const srv = net.createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as net.AddressInfo).port
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

describe('benchmarkRoute against the default app', () => {
  let hits = 0
  beforeAll(() => {
    get('/bench/default', () => {
      hits++
      return Response.text('ok')
    })
  })

  it('starts the app on a free port, counts what the server saw, and stops it after', async () => {
    expect(defaultApp.server).toBeUndefined()
    const r = await benchmarkRoute({ route: '/bench/default', numRequests: 1500, concurrency: 8 })
    expect(r.totalRequests).toBe(1500)
    expect(hits).toBe(1500)
    expect(r.errors).toBe(0)
    expect(r.statusCounts).toEqual({ 200: 1500 })
    expect(r.bytesReceived).toBe(1500 * 2)
    expect(r.requestsPerSecond).toBeGreaterThan(0)
    expect(r.minResponseTime).toBeGreaterThan(0)
    expect(r.minResponseTime).toBeLessThanOrEqual(r.p50ResponseTime)
    expect(r.p50ResponseTime).toBeLessThanOrEqual(r.p95ResponseTime)
    expect(r.p95ResponseTime).toBeLessThanOrEqual(r.p99ResponseTime)
    expect(r.p99ResponseTime).toBeLessThanOrEqual(r.maxResponseTime)
    // Keep-alive: one connection per concurrent request, not one per request.
    expect(r.connectionsOpened).toBe(8)
    await new Promise((res) => setTimeout(res, 50))
    expect(defaultApp.server).toBeUndefined()
  })

  it('uses the running server when the app is already listening', async () => {
    const server = await defaultApp.listen({ host: '127.0.0.1', port: 0 })
    try {
      const before = server.stats().requestsTotal
      const r = await benchmarkRoute({ route: '/bench/default', numRequests: 300, concurrency: 3 })
      expect(r.url).toBe(`${server.url}/bench/default`)
      expect(server.stats().requestsTotal - before).toBe(300)
      expect(defaultApp.server).toBe(server)
    } finally {
      await server.close({ timeout: 1 })
    }
  })
})

describe('benchmarkRoute against a URL', () => {
  let server: Server
  let hits = 0
  let h2Hits = 0
  let echoed = 0
  beforeAll(async () => {
    const app = new App()
    app.get('/count', (req) => {
      hits++
      if (req.httpVersion === '2') h2Hits++
      return Response.text('counted')
    })
    app.get('/fail', () => Response.text('nope', 500))
    app.get('/boom', () => {
      throw new Error('handler failure on purpose')
    })
    app.get('/stall', () => new Promise<Response>(() => {}))
    app.post('/echo', (req) => {
      echoed++
      return new Response(req.body, { headers: { 'content-type': 'application/json' } })
    })
    server = await listen(app, { requestTimeout: 30 })
  })
  afterAll(() => server.close({ timeout: 0.5 }))

  it('totalRequests equals the requests the handler ran', async () => {
    hits = 0
    const r = await benchmarkRoute({ baseUrl: server.url, route: '/count', numRequests: 2000, concurrency: 16, warmup: 0.2 })
    // Warm-up requests reach the server but are not measured.
    expect(r.totalRequests).toBe(2000)
    expect(hits).toBeGreaterThanOrEqual(2000)
    const again = hits
    const r2 = await benchmarkRoute({ baseUrl: server.url, route: '/count', numRequests: 700, concurrency: 7 })
    expect(r2.totalRequests).toBe(700)
    expect(hits - again).toBe(700)
  })

  it('counts status codes and treats >= 400 as errors', async () => {
    const r = await benchmarkRoute({ baseUrl: server.url, route: '/fail', numRequests: 200, concurrency: 4 })
    expect(r.statusCounts).toEqual({ 500: 200 })
    expect(r.errors).toBe(200)
    expect(r.errorCounts).toEqual({ connect: 0, timeout: 0, io: 0, protocol: 0, status: 200 })
    const thrown = await benchmarkRoute({ baseUrl: server.url, route: '/boom', numRequests: 50, concurrency: 2 })
    expect(thrown.statusCounts).toEqual({ 500: 50 })
    const missing = await benchmarkRoute({ baseUrl: server.url, route: '/nowhere', numRequests: 20 })
    expect(missing.statusCounts).toEqual({ 404: 20 })
  })

  it('sends method, headers and body', async () => {
    echoed = 0
    const body = { data: 'x'.repeat(1000) }
    const len = JSON.stringify(body).length
    const r = await benchmarkRoute({ baseUrl: server.url, route: '/echo', method: 'POST', body, numRequests: 300, concurrency: 4 })
    expect(r.statusCounts).toEqual({ 200: 300 })
    expect(echoed).toBe(300)
    expect(r.bytesReceived).toBe(300 * len)
  })

  it('runs for a fixed duration', async () => {
    const t0 = Date.now()
    const r = await benchmarkRoute({ baseUrl: server.url, route: '/count', duration: 0.6, concurrency: 4 })
    const wall = (Date.now() - t0) / 1000
    expect(r.duration).toBeGreaterThanOrEqual(0.6)
    expect(r.duration).toBeLessThan(2)
    expect(wall).toBeGreaterThanOrEqual(0.6)
    expect(r.totalRequests).toBeGreaterThan(10)
    expect(r.errors).toBe(0)
  })

  it('HTTP/2 multiplexes streams over fewer connections than the concurrency', async () => {
    h2Hits = 0
    const before = server.stats().connectionsTotal
    const r = await benchmarkRoute({
      baseUrl: server.url, route: '/count', protocol: 'http2', numRequests: 2000, concurrency: 16, connections: 2,
    })
    const opened = server.stats().connectionsTotal - before
    expect(r.totalRequests).toBe(2000)
    expect(r.errors).toBe(0)
    expect(h2Hits).toBe(2000)
    expect(r.connectionsOpened).toBe(2)
    expect(opened).toBe(2)
    expect(opened).toBeLessThan(16)
  })

  it('counts a stalled server as timeouts and still reports', async () => {
    const r = await benchmarkRoute({ baseUrl: server.url, route: '/stall', numRequests: 4, concurrency: 2, timeout: 0.2 })
    expect(r.totalRequests).toBe(4)
    expect(r.errorCounts.timeout).toBe(4)
    expect(r.errors).toBe(4)
    expect(r.errorMessages[0]).toMatch(/^timeout: no complete response within 200 ms/)
    // The server keeps serving.
    const ok = await benchmarkRoute({ baseUrl: server.url, route: '/count', numRequests: 10 })
    expect(ok.errors).toBe(0)
  })

  it('does not block the JS thread while the load runs', async () => {
    let ticks = 0
    const timer = setInterval(() => ticks++, 10)
    const progress: number[] = []
    await benchmarkRoute({ baseUrl: server.url, route: '/count', duration: 0.6, concurrency: 4, onProgress: (p) => progress.push(p.done) })
    clearInterval(timer)
    expect(ticks).toBeGreaterThan(20)
    expect(progress.length).toBeGreaterThanOrEqual(2)
  })
})

describe('benchmarkRoute errors', () => {
  it('rejects a refused port with a clear error carrying the counts', async () => {
    const port = await closedPort()
    const err = await benchmarkRoute({ baseUrl: `http://127.0.0.1:${port}`, route: '/', numRequests: 20, concurrency: 2 }).catch((e) => e)
    expect(err).toBeInstanceOf(BenchmarkError)
    expect(err.code).toBe('ERR_HTTPY_BENCH_UNREACHABLE')
    expect(err.message).toMatch(/refused/i)
    expect(err.results.errorCounts.connect).toBe(20)
    expect(err.results.totalRequests).toBe(20)
  })

  it('rejects an unresolvable host', async () => {
    const err = await benchmarkRoute({ baseUrl: 'http://no-such-host.invalid:8080', numRequests: 1 }).catch((e) => e)
    expect(err).toBeInstanceOf(BenchmarkError)
    expect(err.code).toBe('ERR_HTTPY_BENCH_UNREACHABLE')
  })

  it.each([
    [{ concurrency: 0 }, /concurrency/],
    [{ numRequests: -5 }, /numRequests/],
    [{ numRequests: 1.5 }, /numRequests/],
    [{ duration: -1 }, /duration/],
    [{ duration: 1, numRequests: 10 }, /not both/],
    [{ timeout: 0 }, /timeout/],
    [{ protocol: 'spdy' }, /protocol/],
    [{ route: 'no-slash' }, /route/],
    [{ method: 'GE T' }, /method/],
    [{ baseUrl: 'ftp://127.0.0.1/' }, /baseUrl/],
    [{ baseUrl: 'not a url' }, /baseUrl/],
    [{ headers: { 'bad name': 'x' } }, /header/],
    [{ numRequest: 10 }, /unknown option/],
  ])('rejects invalid options %j', async (opts, msg) => {
    const err = await benchmarkRoute({ baseUrl: 'http://127.0.0.1:9', ...(opts as object) }).catch((e) => e)
    expect(err).toBeInstanceOf(TypeError)
    expect(err.code).toBe('ERR_HTTPY_INVALID_OPTION')
    expect(err.message).toMatch(msg)
  })

  it('refuses HTTP/3 to an http:// target (QUIC is always TLS)', async () => {
    const err = await benchmarkRoute({ baseUrl: 'http://127.0.0.1:9', protocol: 'http3' }).catch((e) => e)
    expect(err.code).toBe('ERR_HTTPY_INVALID_OPTION')
    expect(err.message).toMatch(/https/)
  })
})
