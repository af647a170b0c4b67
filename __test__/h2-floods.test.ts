/**
 * HTTP/2 (h2c, prior knowledge) under hostile frame floods, sent as raw
 * frames: rapid reset, SETTINGS and PING floods without reading, and an
 * endless CONTINUATION sequence. Each must cost the server bounded work:
 * the flooding connection is closed (or throttled), and an ordinary HTTP/2
 * client on another connection keeps being served.
 */
import http2 from 'node:http2'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { listen } from './helpers.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9)
  h.writeUIntBE(payload.length, 0, 3)
  h[3] = type
  h[4] = flags
  h.writeUInt32BE(stream & 0x7fffffff, 5)
  return Buffer.concat([h, payload])
}
const SETTINGS = (ack = false) => frame(0x4, ack ? 0x1 : 0, 0)
const PING = (i: number) => {
  const p = Buffer.alloc(8)
  p.writeUInt32BE(i, 4)
  return frame(0x6, 0, 0, p)
}
// HPACK, static table only: :method GET, :scheme http, :path /.
const GET_ROOT = Buffer.from([0x82, 0x86, 0x84])
const HEADERS = (stream: number, endHeaders = true) => frame(0x1, (endHeaders ? 0x4 : 0) | 0x1, stream, GET_ROOT)
const RST = (stream: number) => frame(0x3, 0, stream, Buffer.from([0, 0, 0, 0x8])) // CANCEL

/** Opens a raw h2c connection; collects what the server sends and whether it closed. */
async function rawH2(port: number) {
  const sock = net.connect(port, '127.0.0.1')
  await new Promise((r) => sock.once('connect', r))
  const st = { bytes: 0, closed: false, goaway: false, data: Buffer.alloc(0) }
  sock.on('data', (c: Buffer) => {
    st.bytes += c.length
    if (st.data.length < 65536) st.data = Buffer.concat([st.data, c])
  })
  sock.on('error', () => {})
  sock.on('close', () => (st.closed = true))
  sock.write(Buffer.concat([PREFACE, SETTINGS()]))
  /** Writes as fast as the socket takes it, for at most `ms`, until closed. */
  const flood = async (make: (i: number) => Buffer, count: number, ms = 5000) => {
    const end = Date.now() + ms
    let i = 0
    while (i < count && !st.closed && Date.now() < end) {
      const batch: Buffer[] = []
      for (let k = 0; k < 256 && i < count; k++) batch.push(make(i++))
      if (!sock.write(Buffer.concat(batch))) {
        await Promise.race([new Promise((r) => sock.once('drain', r)), sleep(200)])
      }
    }
    return i
  }
  const hasGoaway = () => {
    // Walk the frames received so far looking for GOAWAY (type 7).
    let at = 0
    const d = st.data
    while (at + 9 <= d.length) {
      const len = d.readUIntBE(at, 3)
      if (d[at + 3] === 0x7) return true
      at += 9 + len
    }
    return false
  }
  return { sock, st, flood, hasGoaway }
}

/** An ordinary client on its own connection: status of GET /. */
async function normalClient(url: string): Promise<number> {
  const client = http2.connect(url)
  try {
    return await new Promise<number>((resolve, reject) => {
      const req = client.request({ ':path': '/' })
      req.on('response', (h) => resolve(Number(h[':status'])))
      req.on('error', reject)
      req.resume()
      req.end()
    })
  } finally {
    client.close()
  }
}

describe('HTTP/2 floods', () => {
  let server: Server
  beforeAll(async () => {
    const app = new App()
    app.get('/', () => Response.text('fine'))
    server = await listen(app, { requestTimeout: 5, keepAliveTimeout: 5 })
  })
  afterAll(() => server.close())

  it('rapid reset: HEADERS + RST_STREAM in a loop closes the connection', async () => {
    const before = server.stats().requestsTotal
    const c = await rawH2(server.port)
    await c.flood((i) => Buffer.concat([HEADERS(1 + 2 * i), RST(1 + 2 * i)]), 100_000)
    const end = Date.now() + 5000
    while (!c.st.closed && Date.now() < end) await sleep(20)
    expect(c.st.closed).toBe(true)
    expect(c.hasGoaway()).toBe(true)
    // The flood was stopped early: few of the 100,000 streams became requests.
    expect(server.stats().requestsTotal - before).toBeLessThan(1000)
    expect(await normalClient(server.url)).toBe(200)
    c.sock.destroy()
  })

  it('PING flood without reading the acks: bounded, others served', async () => {
    const c = await rawH2(server.port)
    c.sock.pause() // never read: the acks pile up on the server side
    const rssBefore = process.memoryUsage().rss
    await c.flood(PING, 500_000, 4000)
    expect(await normalClient(server.url)).toBe(200)
    // Whatever the server did (stopped reading, or closed), it did not
    // buffer half a million acks: memory stays put.
    expect((process.memoryUsage().rss - rssBefore) / 1024 / 1024).toBeLessThan(16)
    c.sock.destroy()
  })

  it('SETTINGS flood without reading the acks: bounded, others served', async () => {
    const c = await rawH2(server.port)
    c.sock.pause()
    const rssBefore = process.memoryUsage().rss
    await c.flood(() => SETTINGS(), 500_000, 4000)
    expect(await normalClient(server.url)).toBe(200)
    expect((process.memoryUsage().rss - rssBefore) / 1024 / 1024).toBeLessThan(16)
    c.sock.destroy()
  })

  it('CONTINUATION flood: an endless header block is cut', async () => {
    const c = await rawH2(server.port)
    // A literal header with a 1000-byte value, repeated in CONTINUATION frames.
    const field = Buffer.concat([Buffer.from([0x40, 0x03]), Buffer.from('x-a'), Buffer.from([0x7f, 0xe9, 0x06]), Buffer.alloc(1000, 0x61)])
    c.sock.write(HEADERS(1, false))
    const sent = await c.flood(() => frame(0x9, 0, 1, field), 100_000, 5000)
    const end = Date.now() + 5000
    while (!c.st.closed && Date.now() < end) await sleep(20)
    expect(c.st.closed).toBe(true)
    // Cut long before 100 MB of header block.
    expect(sent).toBeLessThan(100_000)
    expect(await normalClient(server.url)).toBe(200)
    c.sock.destroy()
  })

  it('after the floods: nothing is left open or pending', async () => {
    const end = Date.now() + 5000
    while (server.stats().connectionsOpen > 0 && Date.now() < end) await sleep(50)
    const s = server.stats()
    expect(s.connectionsOpen).toBe(0)
    expect(s.pending).toBe(0)
    expect(s.panics).toBe(0)
  })
})
