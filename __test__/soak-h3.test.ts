/**
 * Soak over HTTP/3: rounds of load from the built-in load generator (quinn +
 * h3), mixed requests from an independent client (Python's aioquic) with
 * errors, 413s and streams it cancels mid-body, and clients that vanish
 * with requests in flight (no CONNECTION_CLOSE: only the server's idle
 * timeout can free them). After each round every QUIC connection must be
 * gone from `stats()`, nothing pending or held, and RSS must stop growing:
 * the third round may add little on top of the second.
 *
 * About 15 s. It shares the 12 s soak's view of RSS (docs/testing.md): the
 * clients live in the same process, so the bound is on growth between
 * rounds once warmed up, not on the absolute size.
 */
import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { benchmarkRoute } from '../ts/benchmark.js'
import { App, Response, type Server } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import { h3, listen, requireTool, waitFor, type H3Request } from './helpers/index.js'
import { memory } from './helpers/memory.js'
import { sleep } from './helpers/wait.js'

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')
function pattern(n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = i & 0xff
  return b
}
const BIG = 'y'.repeat(256 * 1024)
// Requests per route and round from the load generator: a fixed number, so
// that the RSS bound is one per request.
const LOAD_PER_ROUTE = 15_000
// The idle timeout that frees a vanished client's connection.
const IDLE_S = 1

let certs: TestCerts
const haveOpenssl = requireTool('openssl')
const haveAioquic = requireTool('aioquic')
beforeAll(() => {
  if (haveOpenssl) certs = makeCerts()
})
afterAll(() => certs?.cleanup())

describe.skipIf(!haveOpenssl || !haveAioquic)('soak over HTTP/3', () => {
  let server: Server
  beforeAll(async () => {
    const app = new App()
    app.get('/ok', () => Response.text('ok'))
    app.get('/json/{id}', (req) => Response.json({ id: req.pathParams.id }))
    app.post('/echo', (req) => Response.json({ length: req.body.length, sha256: sha(req.body) }))
    app.get('/throw', () => {
      throw new Error('soak-h3: handler error')
    })
    app.get('/slow', async () => {
      await sleep(300)
      return Response.text('slow')
    })
    app.get('/big', () => Response.text(BIG))
    server = await listen(app, {
      tls: { cert: certs.certFile, key: certs.keyFile },
      http3Port: 0,
      http3Config: { quicIdleTimeout: IDLE_S },
      maxBodySize: 1024 * 1024,
      requestTimeout: 2,
      onError: () => {},
    })
  })
  afterAll(() => server?.close())

  it('requests, cancelled streams and vanished clients, then connections back to 0 and RSS flat', async () => {
    const port = server.http3Port as number
    const unexpected: string[] = []
    const settled = async () => {
      const ok = await waitFor(() => {
        const s = server.stats()
        return s.connectionsOpen === 0 && s.pending === 0 && s.heldResponders === 0
      }, (IDLE_S + 4) * 1000)
      if (!ok) unexpected.push(`not settled ${IDLE_S + 4} s after a round: ${JSON.stringify(server.stats())}`)
    }

    const mixed: H3Request[] = [
      { path: '/ok' },
      { path: '/json/7' },
      { method: 'POST', path: '/echo', body_size: 100_000 },
      { path: '/missing' },
      { path: '/throw' },
      { path: '/big' },
      { method: 'POST', path: '/echo', body_size: 2 * 1024 * 1024 },
      { method: 'POST', path: '/echo', body_size: 300_000, abort: true },
      { path: '/slow', abort: true },
    ]
    const checkMixed = async () => {
      const r = await h3(port, mixed, { ca: certs.ca })
      const [ok, json, echo, missing, thrown, big, tooLarge, a1, a2] = r.responses
      if (ok?.status !== 200 || ok.body !== 'ok') unexpected.push(`ok ${ok?.status}`)
      if (json?.status !== 200 || JSON.parse(json.body).id !== '7') unexpected.push(`json ${json?.status}`)
      if (echo?.status !== 200 || JSON.parse(echo.body).sha256 !== sha(pattern(100_000))) unexpected.push(`echo ${echo?.status}`)
      if (missing?.status !== 404 || thrown?.status !== 500) unexpected.push(`errors ${missing?.status} ${thrown?.status}`)
      if (big?.status !== 200 || big.sha256 !== sha(BIG)) unexpected.push(`big ${big?.status} ${big?.length}`)
      if (tooLarge?.status !== 413) unexpected.push(`413 ${tooLarge?.status}`)
      if (!a1?.aborted || !a2?.aborted) unexpected.push('abort not sent')
    }
    // Requests in flight (a slow handler, a large response, an upload cut
    // short), then silence.
    const vanish = async () => {
      const r = await h3(port, [{ path: '/slow' }, { path: '/big' }, { method: 'POST', path: '/echo', body_size: 200_000, abort: true }], {
        ca: certs.ca,
        vanishAfter: 0.1,
      })
      if (!r.vanished) unexpected.push('client did not vanish')
    }
    const load = async (route: string) => {
      const r = await benchmarkRoute({
        baseUrl: `https://127.0.0.1:${port}`,
        route,
        http3: true,
        caFile: certs.certFile,
        numRequests: LOAD_PER_ROUTE,
        warmup: 0,
        concurrency: 32,
        connections: 2,
      })
      if (r.errors !== 0 || r.totalRequests !== LOAD_PER_ROUTE || r.statusCounts[200] !== LOAD_PER_ROUTE) {
        unexpected.push(`load ${route}: ${r.totalRequests} requests, ${r.errors} errors, ${JSON.stringify(r.statusCounts)}`)
      }
      return r.totalRequests
    }

    let loaded = 0
    let vanishedSeenOpen = 0
    const round = async () => {
      const [a, b] = await Promise.all([
        load('/ok'),
        load('/json/1'),
        checkMixed(),
        (async () => {
          await vanish()
          // The vanished client's connection is still held by the server
          // right after it went silent...
          if (server.stats().connectionsOpen > 0) vanishedSeenOpen++
        })(),
      ])
      loaded += a + b
      // ...and freed by the idle timeout.
      await settled()
    }

    await round() // warm-up: JIT, allocator arenas, the load generator's runtime
    const base = memory()
    await round()
    const second = memory()
    await round()
    const third = memory()
    const s = server.stats()
    console.log(
      `soak-h3: ${loaded} load-generator requests, ${s.requestsTotal} requests and ${s.connectionsTotal} connections in all;`,
      `RSS ${base.rss.toFixed(1)} -> ${second.rss.toFixed(1)} -> ${third.rss.toFixed(1)} MB, heap ${base.heap.toFixed(1)} -> ${third.heap.toFixed(1)} MB`,
    )
    expect(unexpected).toEqual([])
    expect(vanishedSeenOpen).toBeGreaterThan(0)
    expect(s.connectionsOpen).toBe(0)
    expect(s.pending).toBe(0)
    expect(s.heldResponders).toBe(0)
    expect(s.panics).toBe(0)
    // Still serving after all of it.
    const after = await h3(port, [{ path: '/ok' }], { ca: certs.ca })
    expect(after.responses[0]?.status).toBe(200)
    expect(third.heap - base.heap).toBeLessThan(8)
    expect(third.rss - second.rss).toBeLessThan(24)
  }, 60_000)
})
