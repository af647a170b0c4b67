/**
 * HTTP/2 (h2c, prior knowledge) under hostile frame floods, sent as raw
 * frames: rapid reset, SETTINGS and PING floods (with and without reading
 * the acks), and an endless CONTINUATION sequence. Each must cost the
 * server bounded work: the flooding connection is closed, with
 * GOAWAY(ENHANCE_YOUR_CALM) where it can still be written, and an ordinary
 * HTTP/2 client on another connection keeps being served.
 */
import http2 from 'node:http2'
import net from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { H2_PREFACE as PREFACE, h2frame as frame, listen } from './helpers/index.js'
import { waitFor } from './helpers/proc.js'
import { sleep } from './helpers/wait.js'


const SETTINGS = (ack = false) => frame(0x4, ack ? 0x1 : 0, 0)
const PING = (i: number) => {
  const p = Buffer.alloc(8)
  p.writeUInt32BE(i, 4)
  return frame(0x6, 0, 0, p)
}
// HPACK, static table only: :method GET, :scheme http, :path /.
const GET_ROOT = Buffer.from([0x82, 0x86, 0x84])
const HEADERS = (stream: number, endHeaders = true) => frame(0x1, (endHeaders ? 0x4 : 0) | 0x1, stream, GET_ROOT)
// A malformed request (a connection-specific header, RFC 9113 §8.2.2): the
// server must reset the stream, which counts toward its reset bound.
const BAD_BLOCK = Buffer.concat([GET_ROOT, Buffer.from([0x00, 10]), Buffer.from('connection'), Buffer.from([5]), Buffer.from('close')])
const BAD = (stream: number) => frame(0x1, 0x4 | 0x1, stream, BAD_BLOCK)
const RST = (stream: number) => frame(0x3, 0, stream, Buffer.from([0, 0, 0, 0x8])) // CANCEL

const ENHANCE_YOUR_CALM = 0xb

/** Raw connections of the running test, destroyed after it whatever its outcome. */
const opened: net.Socket[] = []
afterEach(() => {
  for (const s of opened.splice(0)) s.destroy()
})

/** Opens a raw h2c connection; follows the frames the server sends and whether it closed. */
async function rawH2(port: number) {
  const sock = net.connect(port, '127.0.0.1')
  opened.push(sock)
  await new Promise((r) => sock.once('connect', r))
  const st = {
    bytes: 0,
    closed: false,
    closedAt: 0,
    /** Error code of the first GOAWAY, and when it arrived. */
    goaway: null as number | null,
    goawayAt: 0,
    /** Last stream id the GOAWAY says the server processed. */
    goawayLast: 0,
    /** Streams that got a response HEADERS frame. */
    answered: new Set<number>(),
    /** RST_STREAM frames the server sent. */
    resets: 0,
  }
  let rest: Buffer = Buffer.alloc(0)
  sock.on('data', (c: Buffer) => {
    st.bytes += c.length
    rest = rest.length ? Buffer.concat([rest, c]) : c
    let at = 0
    while (at + 9 <= rest.length) {
      const len = rest.readUIntBE(at, 3)
      if (at + 9 + len > rest.length) break
      const type = rest[at + 3]
      if (type === 0x7 && st.goaway === null) {
        st.goaway = rest.readUInt32BE(at + 9 + 4)
        st.goawayAt = Date.now()
        st.goawayLast = rest.readUInt32BE(at + 9) & 0x7fffffff
      }
      if (type === 0x1) st.answered.add(rest.readUInt32BE(at + 5) & 0x7fffffff)
      if (type === 0x3) st.resets++
      at += 9 + len
    }
    rest = rest.subarray(at)
  })
  sock.on('error', () => {})
  sock.on('close', () => {
    st.closed = true
    st.closedAt = Date.now()
  })
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
      } else {
        // Let the socket's reads run too, as a client's event loop would.
        await new Promise((r) => setImmediate(r))
      }
    }
    return i
  }
  return { sock, st, flood }
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
    expect(c.st.goaway).toBe(ENHANCE_YOUR_CALM)
    // The flood was stopped early: few of the 100,000 streams became requests.
    expect(server.stats().requestsTotal - before).toBeLessThan(1000)
    expect(await normalClient(server.url)).toBe(200)
    c.sock.destroy()
  })

  // h2 keeps at most one PING or SETTINGS ack waiting and reads nothing
  // more until it is written; past that, the server counts PING and
  // SETTINGS frames (10,000 in a burst, then 1,000 a second) and ends the
  // connection with GOAWAY(ENHANCE_YOUR_CALM).
  const floods = { PING, SETTINGS: () => SETTINGS() }
  for (const [name, make] of Object.entries(floods)) {
    it(`${name} flood, acks read: GOAWAY(ENHANCE_YOUR_CALM) and close, others served meanwhile`, async () => {
      const c = await rawH2(server.port)
      const t0 = Date.now()
      const [sent, status] = await Promise.all([c.flood(make, 2_000_000, 8000), normalClient(server.url)])
      expect(status).toBe(200)
      await waitFor(() => c.st.closed, 5000)
      console.log(`${name} flood: ${sent} frames sent, GOAWAY ${c.st.goaway} after ${c.st.goawayAt - t0} ms, closed ${c.st.closedAt - c.st.goawayAt} ms later`)
      expect(c.st.goaway, 'GOAWAY error code').toBe(ENHANCE_YOUR_CALM)
      // Cut at the budget, not after millions of frames or seconds of acks.
      expect(sent).toBeLessThan(2_000_000)
      expect(c.st.goawayAt - t0).toBeLessThan(3000)
      expect(c.st.closed).toBe(true)
      // Close follows GOAWAY (after at most the 2 s lingering drain).
      expect(c.st.closedAt - c.st.goawayAt).toBeLessThan(4000)
      expect(await normalClient(server.url)).toBe(200)
      c.sock.destroy()
    })

    it(`${name} flood without reading the acks: closed, memory bounded, others served`, async () => {
      const c = await rawH2(server.port)
      c.sock.pause() // never read: the acks pile up in the socket buffers
      const rssBefore = process.memoryUsage().rss
      await c.flood(make, 500_000, 4000)
      expect(await normalClient(server.url)).toBe(200)
      // Whatever the server did (stopped reading, or closed), it did not
      // buffer half a million acks: memory stays put.
      expect((process.memoryUsage().rss - rssBefore) / 1024 / 1024).toBeLessThan(16)
      // Reading now shows why: a GOAWAY after the acks, then the close.
      c.sock.resume()
      await waitFor(() => c.st.closed, 8000)
      expect(c.st.closed).toBe(true)
      expect(c.st.goaway).toBe(ENHANCE_YOUR_CALM)
      c.sock.destroy()
    })
  }

  it('a client under the control-frame budget is not cut: 2,000 PINGs, then its request is answered', async () => {
    const c = await rawH2(server.port)
    await c.flood(PING, 2000)
    c.sock.write(HEADERS(1))
    await waitFor(() => c.st.answered.has(1), 5000)
    expect(c.st.answered.has(1)).toBe(true)
    expect(c.st.goaway).toBe(null)
    expect(c.st.closed).toBe(false)
    c.sock.destroy()
  })

  it('CONTINUATION flood: an endless header block is cut', async () => {
    const c = await rawH2(server.port)
    // A literal header with a 1000-byte value, repeated in CONTINUATION frames.
    const field = Buffer.concat([Buffer.from([0x40, 0x03]), Buffer.from('x-a'), Buffer.from([0x7f, 0xe9, 0x06]), Buffer.alloc(1000, 0x61)])
    c.sock.write(HEADERS(1, false))
    // One frame at a time, so the count when the GOAWAY arrives tells where the cut was.
    let sent = 0
    const end = Date.now() + 5000
    while (c.st.goaway === null && !c.st.closed && Date.now() < end && sent < 1000) {
      c.sock.write(frame(0x9, 0, 1, field))
      sent++
      await sleep(2)
    }
    await waitFor(() => c.st.closed, 5000)
    try {
      expect(c.st.closed).toBe(true)
      expect(c.st.goaway).toBe(ENHANCE_YOUR_CALM)
      // Cut no later than maxHeaderSize (16 KiB by default), frames in
      // flight aside. (h2 ends a header block after 5 CONTINUATION frames
      // whatever their size, so with 1 KB frames the cut comes earlier.)
      const block = sent * field.length
      expect(block).toBeLessThan(4 * 16_384)
      expect(await normalClient(server.url)).toBe(200)
    } finally {
      c.sock.destroy()
    }
  })

  // limits.md: more than 256 streams the server had to reset because of
  // client errors, over the connection's life, end it with
  // GOAWAY(ENHANCE_YOUR_CALM) ("MadeYouReset").
  it('streams the server had to reset: 200 are tolerated, past 256 the connection is ended', async () => {
    const under = await rawH2(server.port)
    try {
      for (let i = 0; i < 200; i++) under.sock.write(BAD(1 + 2 * i))
      under.sock.write(HEADERS(401))
      expect(await waitFor(() => under.st.answered.has(401), 5000), 'a valid request after 200 resets').toBe(true)
      expect(under.st.resets).toBe(200)
      expect(under.st.goaway).toBe(null)
    } finally {
      under.sock.destroy()
    }
    const over = await rawH2(server.port)
    try {
      for (let i = 0; i < 400 && !over.st.closed; i++) {
        over.sock.write(BAD(1 + 2 * i))
        if (i % 50 === 49) await sleep(5)
      }
      expect(await waitFor(() => over.st.closed, 5000)).toBe(true)
      expect(over.st.goaway).toBe(ENHANCE_YOUR_CALM)
      // Cut at the bound: never more than 257 resets; the last few RST_STREAM
      // frames may be dropped with the connection, so fewer may be read here.
      expect(over.st.resets).toBeGreaterThan(200)
      expect(over.st.resets).toBeLessThanOrEqual(257)
      expect(over.st.goawayLast, 'no malformed stream became a request').toBe(0)
      expect(await normalClient(server.url)).toBe(200)
    } finally {
      over.sock.destroy()
    }
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
