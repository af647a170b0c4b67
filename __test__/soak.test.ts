/**
 * Soak: mixed traffic on one port — HTTP/1.1 keep-alive and fresh
 * connections, bodies, 404/405, handler errors, 413s, overload 503s,
 * clients that abort mid-request or vanish mid-head, pipelined bursts;
 * HTTP/2 (h2c) multiplexed streams, errors, streams cancelled mid-body and
 * mid-response, sessions destroyed with streams in flight; WebSocket echo,
 * and WebSocket clients that vanish mid-message — then checks that
 * connections, pending requests, held responders, open WebSockets, file
 * descriptors and RSS come back to their baseline.
 *
 * The default run lasts about 12 s and touches every path. The long run:
 * `HTTPY_SOAK=1 npx vitest run __test__/soak.test.ts` (duration in seconds
 * from `HTTPY_SOAK_SECONDS`, default 600), or until a number of requests
 * has been served: `HTTPY_SOAK_REQUESTS=2000000` (the two million;
 * then `HTTPY_SOAK_SECONDS` only caps the run, default 4 hours).
 */
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { App, Response } from '../ts/index.js'
import { listen } from './helpers/index.js'
import { waitFor } from './helpers/proc.js'
import { h2Connect, h2Request } from './helpers/h2.js'
import { memory } from './helpers/memory.js'
import { sleep } from './helpers/wait.js'

const TARGET = Number(process.env.HTTPY_SOAK_REQUESTS ?? 0)
const LONG = process.env.HTTPY_SOAK === '1' || TARGET > 0
const SECONDS = LONG ? Number(process.env.HTTPY_SOAK_SECONDS ?? (TARGET > 0 ? 4 * 3600 : 600)) : 12
const fds = () => readdirSync('/proc/self/fd').length
/**
 * With HTTPY_SOAK_MALLOC_STATS=1 (and gdb installed): glibc's own account of
 * this process's malloc arenas, printed by `malloc_stats()` on stderr, then
 * `malloc_trim(0)`. Memory that is allocated stays "in use"; memory freed but
 * kept by the allocator shows as "system" only and is given back by the trim.
 * A diagnosis aid (docs/testing.md), not a check.
 */
function mallocStats(): void {
  if (process.env.HTTPY_SOAK_MALLOC_STATS !== '1') return
  const r = spawnSync('gdb', ['-p', String(process.pid), '-batch', '-ex', 'call (void)malloc_stats()', '-ex', 'call (int)malloc_trim(0)'], {
    encoding: 'utf8',
    timeout: 60_000,
  })
  if (r.error) console.log(`malloc stats: gdb did not run: ${r.error.message}`)
  console.log(`RSS after malloc_trim(0): ${memory().rss.toFixed(1)} MB`)
}

/** A `ws` client, open; messages are queued from the first frame. */
function wsConnect(url: string): Promise<{ ws: WebSocket; next: () => Promise<Buffer> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const queue: Buffer[] = []
    let wake: (() => void) | undefined
    ws.on('message', (d) => {
      queue.push(d as Buffer)
      wake?.()
    })
    const next = async () => {
      while (queue.length === 0) {
        if (ws.readyState === WebSocket.CLOSED) throw new Error('closed')
        await new Promise<void>((r) => {
          wake = r
          ws.once('close', () => r())
        })
      }
      return queue.shift() as Buffer
    }
    ws.once('open', () => resolve({ ws, next }))
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => {
      res.resume()
      reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode }))
    })
  })
}

describe('soak (HTTP/1.1, HTTP/2, WebSocket)', () => {
  it(
    `mixed traffic for ${SECONDS} s, then everything back to baseline`,
    async () => {
      const app = new App()
      app.get('/ok', () => Response.text('ok'))
      app.get('/json/{id}', (req) => Response.json({ id: req.pathParams.id, q: req.query.get('q') }))
      app.post('/echo', (req) => new Response(req.body, { headers: { 'content-type': 'application/octet-stream' } }))
      app.get('/throw', () => {
        throw new Error('soak: handler error')
      })
      app.get('/slow', async () => {
        await sleep(30)
        return Response.text('slow')
      })
      app.get('/big', () => Response.text('x'.repeat(256 * 1024)))
      app.websocket('/ws', async (ws) => {
        for await (const m of ws) {
          if (m.type === 'text') await ws.sendText(m.data)
          else await ws.sendBinary(m.data)
        }
      })
      const server = await listen(app, {
        maxPendingRequests: 64,
        requestTimeout: 2,
        keepAliveTimeout: 1,
        maxBodySize: 1024 * 1024,
        onError: () => {},
      })
      try {
        const counts: Record<string, number> = {}
        const count = (k: string) => (counts[k] = (counts[k] ?? 0) + 1)
        const unexpected: string[] = []

        const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
        let refusedByWorkers = 0
        const raw = (opts: http.RequestOptions, body?: Buffer) =>
          new Promise<{ status: number; body: Buffer; retry?: string }>((resolve, reject) => {
            const req = http.request({ host: '127.0.0.1', port: server.port, ...opts }, (res) => {
              const chunks: Buffer[] = []
              res.on('data', (c: Buffer) => chunks.push(c))
              res.on('end', () =>
                resolve({
                  status: res.statusCode ?? 0,
                  body: Buffer.concat(chunks),
                  retry: res.headers['retry-after'] as string | undefined,
                }),
              )
              res.on('error', reject)
            })
            req.on('error', (e: NodeJS.ErrnoException) => {
              // The keep-alive race every HTTP/1.1 client has: the server closed
              // an idle connection just as the agent reused it. Node's docs
              // advise retrying exactly this case.
              if (req.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) {
                count('keep-alive race retried')
                raw(opts, body).then(resolve, reject)
              } else reject(e)
            })
            req.end(body)
          })
        // During a burst the shared queue is full: an overload 503 with
        // Retry-After is a correct answer to any request; retry it once later.
        const retried = async <R extends { status: number; retry?: string }>(send: () => Promise<R>) => {
          for (;;) {
            const r = await send()
            if (r.status !== 503) return r
            if (r.retry !== undefined && r.retry !== '1') unexpected.push('503 without Retry-After')
            refusedByWorkers++
            await sleep(20)
          }
        }
        const request = (opts: http.RequestOptions, body?: Buffer) => retried(() => raw(opts, body))

        // One shared HTTP/2 session, replaced once the server lets it go
        // (idle timeout GOAWAY) or it fails.
        let h2shared: Promise<http2.ClientHttp2Session> | undefined
        const gone = new WeakSet<http2.ClientHttp2Session>()
        const h2session = () => {
          if (!h2shared) {
            const p = h2Connect(server.url)
            h2shared = p
            p.then(
              (s) => {
                s.on('error', () => {})
                const drop = () => {
                  gone.add(s)
                  if (h2shared === p) h2shared = undefined
                }
                s.once('goaway', drop)
                s.once('close', drop)
              },
              () => (h2shared = undefined),
            )
          }
          return h2shared
        }
        // A stream refused because its session was just told to go away is
        // HTTP/2's keep-alive race: retried on a fresh session.
        const h2 = (headers: http2.OutgoingHttpHeaders, body?: Buffer) =>
          retried(async () => {
            for (let attempt = 0; ; attempt++) {
              const s = await h2session()
              try {
                return await h2Request(s, headers, body)
              } catch (e) {
                if (attempt >= 2 || !(gone.has(s) || s.closed || s.destroyed)) throw e
                count('h2 goaway race retried')
              }
            }
          })
        const wsUrl = `ws://127.0.0.1:${server.port}/ws`
        // An upgrade is a request too: overload may refuse it with 503.
        const ws = async () => {
          for (;;) {
            try {
              return await wsConnect(wsUrl)
            } catch (e) {
              if ((e as { status?: number }).status !== 503) throw e
              refusedByWorkers++
              await sleep(20)
            }
          }
        }

        // One step of traffic; each kind checks its own answer.
        const kinds: Array<() => Promise<void>> = [
          async () => {
            const r = await request({ path: '/ok', agent })
            if (r.status !== 200 || r.body.toString() !== 'ok') unexpected.push(`ok ${r.status}`)
            count('ok')
          },
          async () => {
            const id = Math.random().toString(36).slice(2)
            const r = await request({ path: `/json/${id}?q=${id}`, agent: false })
            if (r.status !== 200 || JSON.parse(r.body.toString()).id !== id) unexpected.push(`json ${r.status}`)
            count('json, new connection')
          },
          async () => {
            const body = Buffer.alloc(1 + Math.floor(Math.random() * 200_000), Math.floor(Math.random() * 256))
            const r = await request({ method: 'POST', path: '/echo', agent }, body)
            if (r.status !== 200 || !r.body.equals(body)) unexpected.push(`echo ${r.status}`)
            count('echo')
          },
          async () => {
            const r = await request({ path: '/missing', agent })
            const m = await request({ method: 'DELETE', path: '/ok', agent })
            if (r.status !== 404 || m.status !== 405) unexpected.push(`miss ${r.status} ${m.status}`)
            count('404/405')
          },
          async () => {
            const r = await request({ path: '/throw', agent })
            if (r.status !== 500) unexpected.push(`throw ${r.status}`)
            count('500')
          },
          async () => {
            const r = await request({ method: 'POST', path: '/echo', agent }, Buffer.alloc(2 * 1024 * 1024))
            if (r.status !== 413) unexpected.push(`413 ${r.status}`)
            count('413')
          },
          async () => {
            // A client that gives up while its handler is still running.
            const ac = new AbortController()
            const p = fetch(`${server.url}/slow`, { signal: ac.signal }).then(
              (r) => r.text(),
              () => 'aborted',
            )
            await sleep(5)
            ac.abort()
            await p
            count('aborted in flight')
          },
          async () => {
            // A client that vanishes half-way through its request head or body.
            const s = net.connect(server.port, '127.0.0.1')
            s.on('error', () => {})
            await new Promise((r) => s.once('connect', r))
            s.write(Math.random() < 0.5 ? 'GET /ok HTTP/1.1\r\nHo' : 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab')
            await sleep(2)
            s.destroy()
            count('vanished mid-request')
          },
          async () => {
            // A pipelined burst on one connection.
            const s = net.connect(server.port, '127.0.0.1')
            let got = ''
            s.on('data', (c: Buffer) => (got += c.toString('latin1')))
            s.on('error', () => {})
            await new Promise((r) => s.once('connect', r))
            s.end('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(9) + 'GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
            await new Promise((r) => s.once('close', r))
            const st = [...got.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1])
            if (st.length !== 10 || st.some((x) => x !== '200' && x !== '503')) unexpected.push(`pipelined ${st.join()}`)
            count('pipelined x10')
          },
          async () => {
            // A client that never reads a large response, then goes away.
            const s = net.connect(server.port, '127.0.0.1')
            s.on('error', () => {})
            await new Promise((r) => s.once('connect', r))
            s.pause()
            s.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n')
            await sleep(20)
            s.destroy()
            count('unread response')
          },
          async () => {
            // HTTP/2: a multiplexed mix on the shared session.
            const id = Math.random().toString(36).slice(2)
            const body = Buffer.alloc(1 + Math.floor(Math.random() * 100_000), 7)
            const [ok, json, echo, miss, thrown] = await Promise.all([
              h2({ ':path': '/ok' }),
              h2({ ':path': `/json/${id}?q=1` }),
              h2({ ':method': 'POST', ':path': '/echo' }, body),
              h2({ ':path': '/missing' }),
              h2({ ':path': '/throw' }),
            ])
            if (ok.status !== 200 || ok.body.toString() !== 'ok') unexpected.push(`h2 ok ${ok.status}`)
            if (json.status !== 200 || JSON.parse(json.body.toString()).id !== id) unexpected.push(`h2 json ${json.status}`)
            if (echo.status !== 200 || !echo.body.equals(body)) unexpected.push(`h2 echo ${echo.status}`)
            if (miss.status !== 404 || thrown.status !== 500) unexpected.push(`h2 errors ${miss.status} ${thrown.status}`)
            count('h2 mixed')
          },
          async () => {
            // HTTP/2: fifty concurrent streams on the shared session.
            const rs = await Promise.all(Array.from({ length: 50 }, () => h2({ ':path': '/ok' })))
            if (rs.some((r) => r.status !== 200)) unexpected.push('h2 burst: status')
            count('h2 x50')
          },
          async () => {
            // On a session of its own: a shared session that carried a few
            // hundred of these has seen its streams end with
            // ENHANCE_YOUR_CALM (an open question, see docs/limits.md).
            const s = await h2Connect(server.url)
            s.on('error', () => {})
            const r = await retried(() => h2Request(s, { ':method': 'POST', ':path': '/echo' }, Buffer.alloc(2 * 1024 * 1024)))
            s.destroy()
            if (r.status !== 413) unexpected.push(`h2 413 ${r.status}`)
            count('h2 413')
          },
          async () => {
            // HTTP/2: streams cancelled mid-response and mid-upload, on a
            // session of their own: frames the server had in flight for a
            // cancelled stream count as invalid for node's client, which ends
            // a session past 1,000 of them (maxSessionInvalidFrames).
            const s = await h2Connect(server.url)
            s.on('error', () => {})
            await new Promise<void>((resolve) => {
              const req = s.request({ ':path': '/big' })
              req.on('error', () => {})
              req.once('data', () => req.close(http2.constants.NGHTTP2_CANCEL))
              req.on('close', () => resolve())
            })
            await new Promise<void>((resolve) => {
              const req = s.request({ ':method': 'POST', ':path': '/echo' })
              req.on('error', () => {})
              req.on('close', () => resolve())
              req.write(Buffer.alloc(64 * 1024, 1), () => req.close(http2.constants.NGHTTP2_CANCEL))
            })
            await new Promise<void>((r) => s.close(() => r()))
            count('h2 cancelled streams')
          },
          async () => {
            // HTTP/2: a client that vanishes with streams in flight.
            const s = await h2Connect(server.url)
            s.on('error', () => {})
            for (const path of ['/slow', '/big', '/ok']) s.request({ ':path': path }).on('error', () => {})
            const up = s.request({ ':method': 'POST', ':path': '/echo' })
            up.on('error', () => {})
            up.write(Buffer.alloc(10_000))
            await sleep(5)
            s.destroy()
            count('h2 session destroyed')
          },
          async () => {
            // WebSocket echo, text and binary, then a clean close.
            const c = await ws()
            const msgs = [Buffer.from('hello'), Buffer.alloc(70_000, 3), Buffer.from('x'.repeat(1000))]
            for (const m of msgs) c.ws.send(m)
            for (const m of msgs) if (!(await c.next()).equals(m)) unexpected.push('ws echo mismatch')
            await new Promise((r) => {
              c.ws.once('close', r)
              c.ws.close(1000)
            })
            count('ws echo')
          },
          async () => {
            // WebSocket clients that vanish: mid-message (a large frame only
            // partly written), and while the server is still sending.
            const a = await ws()
            a.ws.send(Buffer.alloc(512 * 1024, 5))
            a.ws.terminate()
            const b = await ws()
            for (let i = 0; i < 20; i++) b.ws.send(Buffer.alloc(64 * 1024, i))
            await b.next()
            b.ws.terminate()
            count('ws vanished')
          },
        ]

        const warm = async () => {
          for (let i = 0; i < 3; i++) for (const k of kinds) await k()
        }
        await warm()
        const closeH2 = async () => {
          const s = await h2shared?.catch(() => undefined)
          h2shared = undefined
          if (s && !s.closed) await new Promise<void>((r) => s.close(() => r()))
        }
        await closeH2()
        // Idle keep-alive connections of the warm-up time out.
        await waitFor(() => server.stats().connectionsOpen === 0, 5000)
        await sleep(500)
        const baseFds = fds()
        const base = memory()
        const baseRequests = server.stats().requestsTotal
        let mid = base
        const going = () => Date.now() < deadline && (TARGET === 0 || server.stats().requestsTotal - baseRequests < TARGET)

        let overload = 0
        const deadline = Date.now() + SECONDS * 1000
        const worker = async (w: number) => {
          let i = w
          while (going()) {
            const k = kinds[i++ % kinds.length] as () => Promise<void>
            try {
              await k()
            } catch (e) {
              // Overload may refuse a fresh connection's request; anything
              // else is a failure.
              unexpected.push(`kind ${(i - 1) % kinds.length} threw ${(e as Error).message}`)
            }
          }
        }
        // A burst past maxPendingRequests now and then: 503s are expected there.
        const burster = (async () => {
          while (going()) {
            const rs = await Promise.all(
              Array.from({ length: 100 }, () => raw({ path: '/slow', agent: false }).catch(() => ({ status: 0 }))),
            )
            overload += rs.filter((r) => r.status === 503).length
            if (rs.some((r) => r.status !== 200 && r.status !== 503)) unexpected.push('burst: unexpected status')
            await sleep(LONG ? 2000 : 1000)
          }
        })()
        const started = Date.now()
        const halfway = () =>
          TARGET > 0 ? server.stats().requestsTotal - baseRequests >= TARGET / 2 : Date.now() - started >= (SECONDS * 1000) / 2
        const midSample = (async () => {
          while (going() && !halfway()) await sleep(100)
          mid = memory()
        })()
        await Promise.all([...Array.from({ length: 12 }, (_, w) => worker(w)), burster, midSample])
        agent.destroy()
        await closeH2()

        // Let timeouts and lingering closes run out.
        const settleEnd = Date.now() + 8000
        while (Date.now() < settleEnd) {
          const s = server.stats()
          if (s.connectionsOpen === 0 && s.pending === 0 && s.heldResponders === 0 && s.websocketsOpen === 0 && fds() <= baseFds) break
          await sleep(100)
        }
        const stats = server.stats()
        const end = memory()
        mallocStats()
        const mb = (x: number) => `${x.toFixed(1)} MB`
        console.log(
          `soak ${SECONDS}s: ${stats.requestsTotal} requests, ${stats.connectionsTotal} connections,`,
          `${overload} overload 503s in bursts, ${refusedByWorkers} retried by workers, timedOut ${stats.timedOut}, RSS ${mb(base.rss)} -> ${mb(mid.rss)} -> ${mb(end.rss)}, heap ${mb(base.heap)} -> ${mb(end.heap)} (V8 committed ${mb(base.heapTotal)} -> ${mb(mid.heapTotal)} -> ${mb(end.heapTotal)}),`,
          'by kind:',
          JSON.stringify(counts),
        )
        expect(unexpected.slice(0, 30)).toEqual([])
        for (const name of ['ok', 'json, new connection', 'echo', '404/405', '500', '413', 'aborted in flight',
          'vanished mid-request', 'pipelined x10', 'unread response', 'h2 mixed', 'h2 x50', 'h2 413',
          'h2 cancelled streams', 'h2 session destroyed', 'ws echo', 'ws vanished']) {
          expect(counts[name] ?? 0, name).toBeGreaterThan(0)
        }
        expect(stats.connectionsOpen).toBe(0)
        expect(stats.pending).toBe(0)
        expect(stats.heldResponders).toBe(0)
        expect(stats.websocketsOpen).toBe(0)
        expect(stats.panics).toBe(0)
        // Every socket of the run (client and server side live in this
        // process) is closed: not one descriptor more than at the baseline.
        expect(fds()).toBeLessThanOrEqual(baseFds)
        // No per-request growth: the JS heap comes back after a full GC, and
        // RSS (native memory included) stops growing once warmed up — the
        // second half of the run adds little on top of the first.
        expect(end.heap - base.heap).toBeLessThan(16)
        // On Node.js 24 RSS grows more, and the cause is not in HTTPy
        // (docs/testing.md, "RSS on Node.js 24"): V8's young generation
        // grows from 16 to 128 MB committed and keeps it after a full GC
        // (`heapTotal`), and glibc's main-thread arena keeps ~80 MB that was
        // freed (malloc_stats: 80 MB held, 8-10 MB in use; malloc_trim gives
        // it back). Both plateau in a 70 s run. The second half has added
        // up to 76 MB here (of freed memory the arena keeps), so on 24 the
        // bounds are wider but still there: a leak of ~4.5 KB per request
        // in the second half (about 25,000 requests) breaks the first one.
        const node24 = Number(process.versions.node.split('.')[0]) >= 24
        expect(end.rss - mid.rss).toBeLessThan(node24 ? 112 : 40)
        expect(end.rss - base.rss).toBeLessThan(node24 ? (LONG ? 288 : 240) : LONG ? 160 : 128)
      } finally {
        await server.close()
      }
    },
    (SECONDS + 60) * 1000,
  )
})
