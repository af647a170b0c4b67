/**
 * HTTP/2 over TLS and cleartext (h2c with prior knowledge), with
 * `node:http2` as the independent client: many streams on one connection,
 * large bodies both ways (flow control), server push and its fallbacks,
 * GOAWAY on close / idle / stream limit, and hostile frame sequences
 * written by hand on a raw socket.
 */
import { createHash } from 'node:crypto'
import http2 from 'node:http2'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server, type ServerOptions } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import { waitFor } from './helpers/proc.js'
import { requireTool } from './helpers/tools.js'
import { H2_PREFACE as PREFACE, h2frame as frame, listen } from './helpers/index.js'

const STYLE = 'body { color: #333 }'
const SCRIPT = 'console.log("app")'
const HOMEPAGE = `<!DOCTYPE html>
<html>
<head>
    <title>My App</title>
    <link rel="stylesheet" href="/static/style.css">
    <script src="/static/app.js" defer></script>
</head>
<body>
    <h1>Welcome</h1>
</body>
</html>`

/** The guide's homepage example, plus routes the tests use. */
function makeApp(): App {
  const app = new App()
  app.get('/', () => {
    const response = Response.html(HOMEPAGE)
    response.pushResources = [
      ['/static/style.css', 'style'],
      ['/static/app.js', 'script'],
    ]
    return response
  })
  app.get('/static/style.css', () => new Response(STYLE, { headers: { 'content-type': 'text/css' } }))
  app.get('/static/app.js', () => new Response(SCRIPT, { headers: { 'content-type': 'text/javascript' } }))
  app.get('/echo/{n}', async (req) => {
    // A little asynchrony so that streams really overlap.
    await new Promise((r) => setTimeout(r, Number(req.pathParams.n) % 7))
    return Response.json({ n: req.pathParams.n, version: req.httpVersion })
  })
  app.post('/mirror', (req) => new Response(req.body, { headers: { 'x-sha256': sha(req.body) } }))
  app.get('/big', () => new Response(BIG))
  app.get('/slow', async () => {
    await new Promise((r) => setTimeout(r, 400))
    return Response.text('slow done')
  })
  return app
}

const BIG = Buffer.alloc(20 * 1024 * 1024)
for (let i = 0; i < BIG.length; i += 4096) BIG.writeUInt32LE(i, i)

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

interface Result {
  headers: http2.IncomingHttpHeaders
  body: Buffer
  informational: http2.IncomingHttpHeaders[]
}

function request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined })
    const chunks: Buffer[] = []
    const informational: http2.IncomingHttpHeaders[] = []
    let head: http2.IncomingHttpHeaders = {}
    req.on('headers', (h) => informational.push(h))
    req.on('response', (h) => {
      head = h
    })
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve({ headers: head, body: Buffer.concat(chunks), informational }))
    req.on('error', reject)
    if (body !== undefined) req.end(body)
  })
}

interface Pushed {
  path: string
  headers: http2.IncomingHttpHeaders
  body: string
}

function collectPushes(session: http2.ClientHttp2Session): Pushed[] {
  const pushed: Pushed[] = []
  session.on('stream', (stream, requestHeaders) => {
    const chunks: Buffer[] = []
    let headers: http2.IncomingHttpHeaders = {}
    stream.on('push', (h) => {
      headers = h
    })
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () =>
      pushed.push({ path: String(requestHeaders[':path']), headers, body: Buffer.concat(chunks).toString() }),
    )
  })
  return pushed
}

let certs: TestCerts
const haveOpenssl = requireTool('openssl')
beforeAll(() => {
  if (haveOpenssl) certs = makeCerts()
})
afterAll(() => certs?.cleanup())

const variants: Array<{ name: string; tls: boolean }> = [
  { name: 'h2 over TLS', tls: true },
  { name: 'h2c (prior knowledge)', tls: false },
]

for (const variant of variants) {
  describe.skipIf(variant.tls && !haveOpenssl)(variant.name, () => {
    let server: Server
    const connect = (settings?: http2.Settings): http2.ClientHttp2Session => {
      const url = `${variant.tls ? 'https' : 'http'}://127.0.0.1:${server.port}`
      const s = http2.connect(url, { ca: certs?.ca, servername: 'localhost', settings })
      s.on('error', () => {})
      return s
    }
    const start = async (opts: ServerOptions = {}): Promise<Server> =>
      listen(makeApp(), {
        maxBodySize: 32 * 1024 * 1024,
        ...(variant.tls ? { tls: { cert: certs.certFile, key: certs.keyFile } } : {}),
        ...opts,
      })
    beforeAll(async () => {
      server = await start()
    })
    afterAll(() => server?.close())

    it('serves 200 concurrent streams on one connection, each answer matching its request', async () => {
      const session = connect()
      try {
        const results = await Promise.all(
          Array.from({ length: 200 }, (_, i) => request(session, { ':path': `/echo/${i}` })),
        )
        results.forEach((r, i) => {
          expect(r.headers[':status']).toBe(200)
          expect(JSON.parse(r.body.toString())).toEqual({ n: String(i), version: '2' })
        })
      } finally {
        session.close()
      }
    })

    it('moves 20 MB each way on one stream (flow control)', async () => {
      const session = connect()
      try {
        const r = await request(session, { ':path': '/mirror', ':method': 'POST' }, BIG)
        expect(r.headers[':status']).toBe(200)
        expect(r.headers['x-sha256']).toBe(sha(BIG))
        expect(r.body.length).toBe(BIG.length)
        expect(sha(r.body)).toBe(sha(BIG))
        const d = await request(session, { ':path': '/big' })
        expect(Number(d.headers['content-length'])).toBe(BIG.length)
        expect(sha(d.body)).toBe(sha(BIG))
      } finally {
        session.close()
      }
    }, 30_000)

    it("pushes the guide's homepage resources, each once per connection", async () => {
      const session = connect()
      const pushed = collectPushes(session)
      try {
        const r = await request(session, { ':path': '/' })
        expect(r.headers[':status']).toBe(200)
        expect(r.body.toString()).toBe(HOMEPAGE)
        expect(r.headers.link).toBeUndefined()
        await waitFor(() => pushed.length === 2, 3000, 10)
        const byPath = Object.fromEntries(pushed.map((p) => [p.path, p]))
        expect(Object.keys(byPath).sort()).toEqual(['/static/app.js', '/static/style.css'])
        expect(byPath['/static/style.css']?.body).toBe(STYLE)
        expect(byPath['/static/style.css']?.headers['content-type']).toBe('text/css')
        expect(byPath['/static/style.css']?.headers[':status']).toBe(200)
        expect(byPath['/static/app.js']?.body).toBe(SCRIPT)
        // Same connection again: nothing is pushed a second time.
        await request(session, { ':path': '/' })
        await new Promise((r) => setTimeout(r, 100))
        expect(pushed.length).toBe(2)
      } finally {
        session.close()
      }
    })

    it('sends Link headers and 103 Early Hints to a client that disabled push', async () => {
      const session = connect({ enablePush: false })
      const pushed = collectPushes(session)
      try {
        const r = await request(session, { ':path': '/' })
        expect(r.headers[':status']).toBe(200)
        const links = '</static/style.css>; rel=preload; as=style, </static/app.js>; rel=preload; as=script'
        expect(r.headers.link).toBe(links)
        const hints = r.informational.find((h) => Number(h[':status']) === 103)
        expect(hints?.link).toBe(links)
        expect(pushed.length).toBe(0)
      } finally {
        session.close()
      }
    })

    it('sends GOAWAY on graceful close and lets the open stream finish', async () => {
      const own = await start()
      const url = `${variant.tls ? 'https' : 'http'}://127.0.0.1:${own.port}`
      const session = http2.connect(url, { ca: certs?.ca, servername: 'localhost' })
      session.on('error', () => {})
      let goaway = -1
      session.on('goaway', (code) => {
        goaway = code
      })
      try {
        const slow = request(session, { ':path': '/slow' })
        // Close once the slow request is in the handler.
        expect(await waitFor(() => own.stats().pending === 1, 3000, 5)).toBe(true)
        const closed = own.close({ timeout: 5 })
        const r = await slow
        expect(r.body.toString()).toBe('slow done')
        await closed
        expect(goaway).toBe(http2.constants.NGHTTP2_NO_ERROR)
      } finally {
        session.destroy()
        await own.close().catch(() => {}) // already closed when the test got that far
      }
    })

    it('counts streams toward maxKeepAliveRequests and then sends GOAWAY', async () => {
      const own = await start({ maxKeepAliveRequests: 3 })
      const url = `${variant.tls ? 'https' : 'http'}://127.0.0.1:${own.port}`
      const session = http2.connect(url, { ca: certs?.ca, servername: 'localhost' })
      session.on('error', () => {})
      let goaway = false
      session.on('goaway', () => {
        goaway = true
      })
      try {
        for (let i = 0; i < 3; i++) {
          const r = await request(session, { ':path': `/echo/${i}` })
          expect(r.headers[':status']).toBe(200)
        }
        await waitFor(() => goaway, 3000, 10)
        expect(goaway).toBe(true)
      } finally {
        session.destroy()
        await own.close()
      }
    })

    it('sends GOAWAY to a connection idle past keepAliveTimeout', async () => {
      const own = await start({ keepAliveTimeout: 0.3 })
      const url = `${variant.tls ? 'https' : 'http'}://127.0.0.1:${own.port}`
      const session = http2.connect(url, { ca: certs?.ca, servername: 'localhost' })
      session.on('error', () => {})
      let goaway = false
      session.on('goaway', () => {
        goaway = true
      })
      try {
        await request(session, { ':path': '/echo/1' })
        await waitFor(() => goaway, 3000, 10)
        expect(goaway).toBe(true)
      } finally {
        session.destroy()
        await own.close()
      }
    })
  })
}

// ---------------------------------------------------------------------------
// Hostile frame sequences, written by hand on a cleartext (h2c) socket.



const SETTINGS = (payload = Buffer.alloc(0)): Buffer => frame(0x4, 0, 0, payload)
const PING = (): Buffer => frame(0x6, 0, 0, Buffer.alloc(8, 7))
/** HPACK for GET http://a/ : static-table indexes plus a literal authority. */
const GET_BLOCK = Buffer.from([0x82, 0x86, 0x84, 0x41, 0x01, 0x61])
const HEADERS = (stream: number, flags = 0x5, block = GET_BLOCK): Buffer => frame(0x1, flags, stream, block)
const RST = (stream: number): Buffer => frame(0x3, 0, stream, Buffer.from([0, 0, 0, 8]))

interface RawOutcome {
  closed: boolean
  goaway: number | undefined
  frames: number[]
}

/** Writes `data` after the preface and reads frames until close or timeout. */
function raw(port: number, data: Buffer | Buffer[], timeoutMs = 3000): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1')
    let buf = Buffer.alloc(0)
    const frames: number[] = []
    let goaway: number | undefined
    let done = false
    const finish = (closed: boolean): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      sock.destroy()
      resolve({ closed, goaway, frames })
    }
    const timer = setTimeout(() => finish(false), timeoutMs)
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c])
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3)
        if (buf.length < 9 + len) break
        const type = buf[3] as number
        frames.push(type)
        if (type === 0x7 && goaway === undefined) goaway = buf.readUInt32BE(9 + 4)
        buf = buf.subarray(9 + len)
      }
    })
    sock.on('error', () => {})
    sock.on('close', () => finish(true))
    sock.on('connect', () => {
      sock.write(PREFACE)
      for (const d of Array.isArray(data) ? data : [data]) sock.write(d)
    })
  })
}

describe('HTTP/2 bad input (h2c, raw frames)', () => {
  let server: Server
  beforeAll(async () => {
    server = await listen(makeApp(), { keepAliveTimeout: 1 })
  })
  afterAll(() => server?.close())

  /** A well-behaved client on its own connection is still served. */
  async function stillServing(): Promise<void> {
    const session = http2.connect(`http://127.0.0.1:${server.port}`)
    session.on('error', () => {})
    try {
      const r = await request(session, { ':path': '/echo/5' })
      expect(JSON.parse(r.body.toString())).toEqual({ n: '5', version: '2' })
    } finally {
      session.close()
    }
  }

  it('answers a DATA frame on stream 0 with GOAWAY(PROTOCOL_ERROR)', async () => {
    const out = await raw(server.port, [SETTINGS(), frame(0x0, 0, 0, Buffer.from('x'))])
    expect(out.goaway).toBe(http2.constants.NGHTTP2_PROTOCOL_ERROR)
    expect(out.closed).toBe(true)
    await stillServing()
  })

  it('answers a frame larger than SETTINGS_MAX_FRAME_SIZE with GOAWAY(FRAME_SIZE_ERROR)', async () => {
    const head = Buffer.from([0x10, 0x00, 0x00, 0x0, 0x0, 0, 0, 0, 1]) // 1 MiB DATA frame header
    const out = await raw(server.port, [SETTINGS(), head, Buffer.alloc(70_000)])
    expect(out.goaway).toBe(http2.constants.NGHTTP2_FRAME_SIZE_ERROR)
    expect(out.closed).toBe(true)
    await stillServing()
  })

  // The h2 crate reports these two as PROTOCOL_ERROR (RFC 9113 asks for
  // FRAME_SIZE_ERROR and COMPRESSION_ERROR); the connection ends either way.
  it('answers a SETTINGS frame of bad length with GOAWAY(PROTOCOL_ERROR)', async () => {
    const out = await raw(server.port, [SETTINGS(Buffer.alloc(5))])
    expect(out.goaway).toBe(http2.constants.NGHTTP2_PROTOCOL_ERROR)
    expect(out.closed).toBe(true)
    await stillServing()
  })

  it('answers an undecodable header block with GOAWAY(PROTOCOL_ERROR)', async () => {
    const out = await raw(server.port, [SETTINGS(), HEADERS(1, 0x5, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))])
    expect(out.goaway).toBe(http2.constants.NGHTTP2_PROTOCOL_ERROR)
    expect(out.closed).toBe(true)
    await stillServing()
  })

  it('ends a CONTINUATION flood past the header limit with GOAWAY(ENHANCE_YOUR_CALM)', async () => {
    const junk = Buffer.concat([Buffer.from([0x40, 0x05]), Buffer.from('x-aaa'), Buffer.from([0x7f, 0x81, 0x7f]), Buffer.alloc(255, 0x62)])
    const flood = [SETTINGS(), HEADERS(1, 0x1, GET_BLOCK)]
    for (let i = 0; i < 100; i++) flood.push(frame(0x9, 0, 1, junk)) // 27 KB > maxHeaderSize
    const out = await raw(server.port, flood, 5000)
    expect(out.goaway).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM)
    expect(out.closed).toBe(true)
    await stillServing()
  })

  it('survives a rapid-reset flood (HEADERS then RST_STREAM, 5000 times) and leaks nothing', async () => {
    const flood = [SETTINGS()]
    for (let i = 0; i < 5000; i++) flood.push(HEADERS(2 * i + 1), RST(2 * i + 1))
    const out = await raw(server.port, flood, 5000)
    // limits.md: more than 64 streams opened and reset before the server
    // accepts them end the connection with GOAWAY(ENHANCE_YOUR_CALM).
    expect(out.goaway).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM)
    expect(out.closed).toBe(true)
    await stillServing()
    await waitFor(() => server.stats().pending === 0, 3000, 10)
    expect(server.stats().pending).toBe(0)
  }, 15_000)

  it('answers a PING flood without starving other connections', async () => {
    const flood = [SETTINGS()]
    for (let i = 0; i < 20_000; i++) flood.push(PING())
    const pending = raw(server.port, flood, 2000)
    await stillServing()
    const out = await pending
    expect(out.frames.filter((t) => t === 0x6).length).toBeGreaterThan(0)
  })

  it('answers a SETTINGS flood without starving other connections', async () => {
    const flood = []
    for (let i = 0; i < 20_000; i++) flood.push(SETTINGS(Buffer.from([0, 4, 0, 1, 0, 0])))
    const pending = raw(server.port, flood, 2000)
    await stillServing()
    const out = await pending
    expect(out.frames.filter((t) => t === 0x4).length).toBeGreaterThan(1)
  })

  it('closes a connection whose preface never completes the handshake', async () => {
    const out = await new Promise<boolean>((resolve) => {
      const s = net.connect(server.port, '127.0.0.1', () => s.write(PREFACE.subarray(0, 10)))
      s.on('error', () => {})
      s.on('close', () => resolve(true))
      setTimeout(() => {
        s.destroy()
        resolve(false)
      }, 4000)
    })
    expect(out).toBe(true)
    await stillServing()
  })
})
