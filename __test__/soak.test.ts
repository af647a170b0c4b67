/**
 * Soak: mixed HTTP/1.1 traffic — keep-alive and fresh connections, bodies,
 * 404/405, handler errors, overload 503s, clients that abort mid-request or
 * vanish mid-head, pipelined bursts — then checks that connections, pending
 * requests, held responders, file descriptors and RSS come back to their
 * baseline.
 *
 * The default run lasts about 12 s and touches every path. The long run:
 * `HTTPY_SOAK=1 npx vitest run __test__/soak.test.ts` (duration in seconds
 * from `HTTPY_SOAK_SECONDS`, default 600).
 */
import { readdirSync } from 'node:fs'
import v8 from 'node:v8'
import vm from 'node:vm'
import http from 'node:http'
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { App, Response } from '../ts/index.js'
import { listen } from './helpers.js'

const LONG = process.env.HTTPY_SOAK === '1'
const SECONDS = LONG ? Number(process.env.HTTPY_SOAK_SECONDS ?? 600) : 12
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const fds = () => readdirSync('/proc/self/fd').length
// A full GC before each memory sample, so that garbage is not mistaken for a leak.
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void
const memory = () => {
  gc()
  gc()
  const m = process.memoryUsage()
  return { rss: m.rss / 1024 / 1024, heap: m.heapUsed / 1024 / 1024 }
}

describe('soak (HTTP/1.1)', () => {
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
      const server = await listen(app, {
        maxPendingRequests: 64,
        requestTimeout: 2,
        keepAliveTimeout: 1,
        maxBodySize: 1024 * 1024,
        onError: () => {},
      })
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
      const request = async (opts: http.RequestOptions, body?: Buffer) => {
        for (;;) {
          const r = await raw(opts, body)
          if (r.status !== 503) return r
          if (r.retry !== '1') unexpected.push('503 without Retry-After')
          refusedByWorkers++
          await sleep(20)
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
      ]

      const warm = async () => {
        for (let i = 0; i < 3; i++) for (const k of kinds) await k()
      }
      await warm()
      await sleep(1500) // idle keep-alive connections of the warm-up time out
      const baseFds = fds()
      const base = memory()
      let mid = base

      let overload = 0
      const deadline = Date.now() + SECONDS * 1000
      const worker = async (w: number) => {
        let i = w
        while (Date.now() < deadline) {
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
        while (Date.now() < deadline) {
          const rs = await Promise.all(
            Array.from({ length: 100 }, () => raw({ path: '/slow', agent: false }).catch(() => ({ status: 0 }))),
          )
          overload += rs.filter((r) => r.status === 503).length
          if (rs.some((r) => r.status !== 200 && r.status !== 503)) unexpected.push('burst: unexpected status')
          await sleep(LONG ? 2000 : 1000)
        }
      })()
      const midSample = (async () => {
        await sleep((SECONDS * 1000) / 2)
        mid = memory()
      })()
      await Promise.all([...Array.from({ length: 12 }, (_, w) => worker(w)), burster, midSample])
      agent.destroy()

      // Let timeouts and lingering closes run out.
      const settleEnd = Date.now() + 8000
      while (Date.now() < settleEnd) {
        const s = server.stats()
        if (s.connectionsOpen === 0 && s.pending === 0 && s.heldResponders === 0 && fds() <= baseFds + 2) break
        await sleep(100)
      }
      const stats = server.stats()
      const end = memory()
      const mb = (x: number) => `${x.toFixed(1)} MB`
      console.log(
        `soak ${SECONDS}s: ${stats.requestsTotal} requests, ${stats.connectionsTotal} connections,`,
        `${overload} overload 503s in bursts, ${refusedByWorkers} retried by workers, timedOut ${stats.timedOut}, RSS ${mb(base.rss)} -> ${mb(mid.rss)} -> ${mb(end.rss)}, heap ${mb(base.heap)} -> ${mb(end.heap)},`,
        'by kind:',
        JSON.stringify(counts),
      )
      expect(unexpected.slice(0, 30)).toEqual([])
      for (const name of ['ok', 'json, new connection', 'echo', '404/405', '500', '413', 'aborted in flight',
        'vanished mid-request', 'pipelined x10', 'unread response']) {
        expect(counts[name] ?? 0, name).toBeGreaterThan(0)
      }
      expect(stats.connectionsOpen).toBe(0)
      expect(stats.pending).toBe(0)
      expect(stats.heldResponders).toBe(0)
      expect(stats.panics).toBe(0)
      expect(fds()).toBeLessThanOrEqual(baseFds + 2)
      // No per-request growth: the JS heap comes back after a full GC, and
      // RSS (native memory included) stops growing once warmed up — the
      // second half of the run adds little on top of the first.
      expect(end.heap - base.heap).toBeLessThan(16)
      expect(end.rss - mid.rss).toBeLessThan(40)
      expect(end.rss - base.rss).toBeLessThan(LONG ? 160 : 128)
      await server.close()
    },
    (SECONDS + 60) * 1000,
  )
})
