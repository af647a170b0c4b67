/**
 * The crossing between the core and JS under batching: many requests per
 * batch in both directions (records drained into one reused buffer, whole
 * bodies answered through one reply batch), sizes around the thresholds
 * where a body travels on its own, multi-byte text, a batch of records
 * larger than the drain buffer, and a refused reply in the middle of a
 * batch that must not take its neighbours with it.
 */
import http from 'node:http'
import v8 from 'node:v8'
import vm from 'node:vm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { App, Response, type Server } from '../ts/index.js'
import { listen } from './helpers/index.js'

let server: Server
const errors: unknown[] = []
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })

function request(path: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<{ status: number; body: Buffer; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const r = http.request(`${server.url}${path}`, { method: opts.method ?? 'GET', headers: opts.headers, agent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }))
    })
    r.on('error', reject)
    r.end(opts.body)
  })
}

beforeAll(async () => {
  const app = new App()
  app.get('/text/{n}', (req) => Response.text('é'.repeat(Number(req.pathParams.n))))
  app.get('/bytes/{n}', (req) => new Response(Buffer.alloc(Number(req.pathParams.n), 7)))
  app.get('/async/{n}', async (req) => {
    await new Promise((r) => setTimeout(r, Number(req.pathParams.n) % 7))
    return Response.json({ n: req.pathParams.n, h: req.headers.get('x-big')?.length ?? 0 })
  })
  app.get('/bad-status', () => {
    const res = Response.text('never sent')
    res.status = 42
    return res
  })
  // A new buffer per response, large enough to be lent to the core rather
  // than copied (16 KiB and up): the core hands it back to this thread for
  // release once written.
  app.get('/fresh/{i}', (req) => new Response(Buffer.alloc(256 * 1024, Number(req.pathParams.i) % 251)))
  // Every way a WebSocket message leaves, in one turn: small messages travel
  // in the turn's batch, a large binary, a ping, a publish and the close on
  // their own; the client must see them in the order they were made.
  app.websocket('/ws-order', (ws) => {
    ws.subscribe('order')
    return ws.onMessage((m) => {
      const n = Number(m.data)
      void ws.sendText(`a${n}`)
      void ws.sendBinary(Buffer.alloc(20_000, n))
      void ws.sendText(`b${n}`)
      void ws.ping('p')
      void ws.sendBinary(Buffer.from(`c${n}`))
      app.publish('order', `d${n}`)
      void ws.sendText('é'.repeat(9000))
      void ws.sendText(`e${n}`)
      if (n === 2) void ws.close(4000, 'done')
    })
  })
  // Large bodies join the reply batch by reference: each reply names the
  // next lent body, so one taken out of turn would give a client another's
  // bytes. A view at an offset checks that the view, not its whole
  // backing store, is what is sent; a refused one must still use up its
  // place in the order.
  app.get('/lent/{i}', (req) => {
    const i = Number(req.pathParams.i)
    let body: Uint8Array = Buffer.alloc(20_000 + i, i % 251)
    if (i % 4 === 1) {
      const backing = Buffer.alloc(40_000 + i, 0xee)
      backing.fill(i % 251, 100, 100 + 20_000 + i)
      body = new Uint8Array(backing.buffer, backing.byteOffset + 100, 20_000 + i)
    }
    const res = new Response(body)
    if (i % 10 === 7) res.status = 42
    return res
  })
  app.post('/echo', (req) => new Response(req.body, { headers: { 'x-len': String(req.body.length) } }))
  server = await listen(app, { onError: (e) => void errors.push(e) })
})

afterAll(async () => {
  agent.destroy()
  await server?.close()
})

describe('batched crossing', () => {
  it('answers a burst of concurrent requests, sync and async, each with its own body', async () => {
    const jobs = Array.from({ length: 300 }, (_, i) =>
      i % 3 === 0
        ? request(`/text/${i}`).then((r) => expect(r.body.toString()).toBe('é'.repeat(i)))
        : i % 3 === 1
          ? request(`/bytes/${i * 11}`).then((r) => expect(r.body.equals(Buffer.alloc(i * 11, 7))).toBe(true))
          : request(`/async/${i}`).then((r) => expect(JSON.parse(r.body.toString())).toEqual({ n: String(i), h: 0 })),
    )
    await Promise.all(jobs)
  })

  it('sends bodies on either side of the 16 KiB threshold intact', async () => {
    for (const n of [16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 100_000]) {
      const b = await request(`/bytes/${n}`)
      expect(b.body.length).toBe(n)
      // Two bytes per 'é': the string form crosses the threshold at half the count.
      const t = await request(`/text/${n}`)
      expect(t.body.toString()).toBe('é'.repeat(n))
    }
  })

  it('releases large bodies lent to the core: 150 MiB of fresh buffers sent, none held afterwards', async () => {
    v8.setFlagsFromString('--expose-gc')
    const gc = vm.runInNewContext('gc') as () => void
    const external = () => {
      gc()
      gc()
      return process.memoryUsage().arrayBuffers / 1024 / 1024
    }
    await request('/fresh/0')
    const before = external()
    for (let round = 0; round < 75; round++) {
      await Promise.all(
        Array.from({ length: 8 }, (_, k) => {
          const i = round * 8 + k
          return request(`/fresh/${i}`).then((r) => {
            expect(r.body.length).toBe(256 * 1024)
            expect(r.body[0]).toBe(i % 251)
            expect(r.body[r.body.length - 1]).toBe(i % 251)
          })
        }),
      )
    }
    // Buffers the core has finished with wait for the JS thread's next call
    // into the core; a small request is one.
    await request('/text/1')
    await new Promise((r) => setTimeout(r, 50))
    expect(external() - before).toBeLessThan(24)
  })

  it('takes a batch of records larger than the drain buffer (big headers, many at once)', async () => {
    const big = 'x'.repeat(6000)
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => request(`/async/${i}`, { headers: { 'x-big': big } })))
    for (const [i, r] of rs.entries()) expect(JSON.parse(r.body.toString())).toEqual({ n: String(i), h: 6000 })
  })

  it('passes request bodies above and below the inline limit', async () => {
    const sizes = [0, 1, 16 * 1024 - 1, 16 * 1024, 200_000]
    const rs = await Promise.all(sizes.map((n) => request('/echo', { method: 'POST', body: Buffer.alloc(n, n % 251) })))
    for (const [i, r] of rs.entries()) {
      const n = sizes[i] as number
      expect(r.headers['x-len']).toBe(String(n))
      expect(r.body.equals(Buffer.alloc(n, n % 251))).toBe(true)
    }
  })

  it('numbers large request bodies per batch: one after another, each request gets its own', async () => {
    // One large body per batch, three batches: a body list that outlived
    // its batch, or indices that did not restart, would hand a request
    // another one's body.
    for (const n of [1, 2, 3]) {
      const body = Buffer.alloc(20_000 + n, n)
      const r = await request('/echo', { method: 'POST', body })
      expect(r.headers['x-len']).toBe(String(body.length))
      expect(r.body.equals(body)).toBe(true)
    }
  })

  it('lends large bodies with the reply batch: every client gets its own, a refused one keeps the order', async () => {
    errors.length = 0
    const rs = await Promise.all(
      Array.from({ length: 120 }, (_, i) => (i % 3 === 2 ? request(`/text/${i}`) : request(`/lent/${i}`))),
    )
    let refused = 0
    for (const [i, r] of rs.entries()) {
      if (i % 3 === 2) {
        expect(r.body.toString()).toBe('é'.repeat(i))
      } else if (i % 10 === 7) {
        expect(r.status).toBe(500)
        refused++
      } else {
        expect(r.status).toBe(200)
        expect(r.body.equals(Buffer.alloc(20_000 + i, i % 251)), `body of /lent/${i}`).toBe(true)
      }
    }
    expect(errors.length).toBe(refused)
    expect(refused).toBeGreaterThan(0)
    expect(server.stats().heldResponders).toBe(0)
  })

  it('a refused reply in a batch becomes a 500 named in onError; its neighbours are answered', async () => {
    errors.length = 0
    const rs = await Promise.all([request('/text/3'), request('/bad-status'), request('/text/4'), request('/bad-status')])
    expect(rs.map((r) => r.status)).toEqual([200, 500, 200, 500])
    expect(rs[0]?.body.toString()).toBe('ééé')
    expect(errors.length).toBe(2)
    expect(String((errors[0] as Error).message)).toMatch(/invalid status code 42/)
    expect((errors[0] as { code?: string }).code).toBe('ERR_HTTPY_INVALID_RESPONSE')
    expect(server.stats().heldResponders).toBe(0)
  })

  it('keeps the order of WebSocket messages sent in one turn by every path (batched, large, ping, publish, close)', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws-order`)
    const got: string[] = []
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
    ws.on('message', (data: Buffer, binary: boolean) => {
      if (binary && data.length === 20_000) got.push(`big${data[0]}`)
      else if (!binary && data.length === 18_000) got.push(data.toString() === 'é'.repeat(9000) ? 'long' : 'long?')
      else got.push(data.toString())
    })
    await new Promise((r) => ws.on('open', r))
    for (const n of [1, 2]) ws.send(String(n))
    expect(await closed).toBe(4000)
    const turn = (n: number) => [`a${n}`, `big${n}`, `b${n}`, `c${n}`, `d${n}`, 'long', `e${n}`]
    expect(got).toEqual([...turn(1), ...turn(2)])
  })
})
