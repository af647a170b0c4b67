/**
 * WebSocket over HTTP/2 (RFC 8441): node:http2 as an independent client
 * that reads the server's SETTINGS_ENABLE_CONNECT_PROTOCOL, opens sockets
 * with an extended CONNECT (`:protocol websocket`) and frames WebSocket
 * messages itself on the stream; over h2c and over TLS (ALPN h2). And
 * RFC 9220 (over HTTP/3), which the h3 crate cannot carry yet: the aioquic
 * client shows it is refused cleanly.
 */
import http2 from 'node:http2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server, type WebSocketConnection } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import {
  closePayload,
  deflateMessage,
  echoWebSocket,
  FrameReader,
  h2Request,
  h3,
  inflateMessage,
  listen,
  requireTool,
  until,
  wsFrame,
  type H3Response,
  type WireFrame,
} from './helpers/index.js'

interface H2Socket {
  stream: http2.ClientHttp2Stream
  status: number
  headers: http2.IncomingHttpHeaders
  reader: FrameReader
  send(...frames: Buffer[]): void
  next(): Promise<WireFrame>
  /** The next data frame, with a compressed payload inflated. */
  message(): Promise<{ opcode: number; rsv1: boolean; data: Buffer }>
}

/** Opens a session and waits for the server's first SETTINGS. */
function connect(url: string, ca?: string): Promise<{ session: http2.ClientHttp2Session; settings: http2.Settings }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, ca ? { ca } : {})
    session.once('remoteSettings', (settings) => resolve({ session, settings }))
    session.once('error', reject)
  })
}

/** An extended CONNECT; resolves with the response head (any status). */
function openWs(
  session: http2.ClientHttp2Session,
  authority: string,
  path: string,
  extra: http2.OutgoingHttpHeaders = {},
  scheme = 'http',
): Promise<H2Socket> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': scheme,
      ':path': path,
      ':authority': authority,
      'sec-websocket-version': '13',
      ...extra,
    })
    const reader = new FrameReader()
    stream.on('data', (d: Buffer) => reader.push(d))
    stream.on('end', () => reader.end())
    stream.on('close', () => reader.end())
    stream.once('error', () => reader.end())
    stream.once('response', (headers) => {
      const next = () => reader.next()
      resolve({
        stream,
        status: Number(headers[':status']),
        headers,
        reader,
        send: (...frames) => {
          for (const f of frames) stream.write(f)
        },
        next,
        async message() {
          for (;;) {
            const f = await next()
            if (f.opcode === 9 || f.opcode === 10) continue
            return { opcode: f.opcode, rsv1: f.rsv1, data: f.rsv1 ? inflateMessage(f.payload) : f.payload }
          }
        },
      })
    })
    stream.once('error', reject)
  })
}

const haveOpenssl = requireTool('openssl', 'test certificates for WebSocket over TLS HTTP/2')
let certs: TestCerts | undefined
beforeAll(() => {
  if (haveOpenssl) certs = makeCerts()
})
afterAll(() => certs?.cleanup())

/** What the server saw of each socket: version, then how it closed. */
interface Seen {
  httpVersion: string
  path: string
  closed?: { code: number; reason: string }
}

function makeApp(seen: Seen[]): App {
  const app = new App()
  app.addMiddleware(async (req, next) => {
    if (req.path === '/private' && req.headers.get('upgrade') === 'websocket' && req.query.get('token') !== 'yes') {
      return Response.text('Unauthorized', 401)
    }
    return next(req)
  })
  const track = (ws: WebSocketConnection) => {
    const s: Seen = { httpVersion: ws.httpVersion, path: ws.path }
    seen.push(s)
    void ws.closedPromise.then((c) => (s.closed = c))
  }
  app.websocket('/echo', (ws) => {
    track(ws)
    return ws.onMessage((m) => {
      if (m.type === 'text' && m.data === 'close me') void ws.close(4001, 'as asked')
      else if (m.type === 'text') void ws.sendText(m.data)
      else void ws.sendBinary(m.data)
    })
  })
  app.websocket('/private', async (ws) => {
    track(ws)
    await ws.sendText('welcome')
    await ws.closedPromise
  })
  app.websocket('/room', async (ws) => {
    track(ws)
    ws.subscribe('room')
    await ws.sendText('joined')
    await ws.closedPromise
  })
  echoWebSocket(app, '/plain')
  app.get('/hello', () => Response.text('hello'))
  return app
}

const variants = [
  { name: 'h2c', tls: false },
  { name: 'TLS, ALPN h2', tls: true },
]

for (const variant of variants) {
  describe.skipIf(variant.tls && !haveOpenssl)(`WebSocket over HTTP/2 (RFC 8441), ${variant.name}`, () => {
    let server: Server
    let session: http2.ClientHttp2Session
    let settings: http2.Settings
    const seen: Seen[] = []
    const app = makeApp(seen)
    let authority = ''
    const scheme = variant.tls ? 'https' : 'http'
    const open = (path: string, extra: http2.OutgoingHttpHeaders = {}) => openWs(session, authority, path, extra, scheme)

    beforeAll(async () => {
      server = await listen(app, {
        ...(variant.tls && certs ? { tls: { cert: certs.certFile, key: certs.keyFile } } : {}),
      })
      authority = `127.0.0.1:${server.port}`
      ;({ session, settings } = await connect(`${scheme}://${authority}`, certs?.ca))
    })
    afterAll(async () => {
      session?.close()
      await server?.close({ timeout: 1 })
    })

    it('announces SETTINGS_ENABLE_CONNECT_PROTOCOL; echoes text and binary, answers pings, closes with the code', async () => {
      expect(settings.enableConnectProtocol).toBe(true)
      const ws = await open('/echo')
      expect(ws.status).toBe(200)
      // No HTTP/1.1 handshake leftovers on an HTTP/2 stream.
      expect(ws.headers['sec-websocket-accept']).toBeUndefined()
      ws.send(wsFrame(1, Buffer.from('héllo')))
      expect(await ws.next()).toMatchObject({ fin: true, opcode: 1, payload: Buffer.from('héllo') })
      ws.send(wsFrame(2, Buffer.from([0, 1, 2, 255])))
      expect(await ws.next()).toMatchObject({ opcode: 2, payload: Buffer.from([0, 1, 2, 255]) })
      ws.send(wsFrame(9, Buffer.from('are you there')))
      expect(await ws.next()).toMatchObject({ opcode: 10, payload: Buffer.from('are you there') })
      ws.send(wsFrame(8, closePayload(4321, 'done')))
      const close = await ws.next()
      expect(close.opcode).toBe(8)
      expect(close.payload.readUInt16BE(0)).toBe(4321)
      // The server's close ends the stream.
      await until(() => ws.reader.ended)
      await until(() => seen.some((x) => x.closed?.code === 4321))
      expect(seen.find((x) => x.closed?.code === 4321)).toMatchObject({ httpVersion: '2', path: '/echo', closed: { code: 4321, reason: 'done' } })
    })

    it('a close from the server reaches the client and ends the stream', async () => {
      const ws = await open('/echo')
      ws.send(wsFrame(1, Buffer.from('close me')))
      const close = await ws.next()
      expect(close.opcode).toBe(8)
      expect(close.payload.readUInt16BE(0)).toBe(4001)
      expect(close.payload.subarray(2).toString()).toBe('as asked')
      ws.send(wsFrame(8, closePayload(4001)))
      await until(() => ws.reader.ended)
    })

    it('a reset stream is close code 1006 on the server, and the connection keeps serving', async () => {
      const before = seen.length
      const ws = await open('/echo')
      ws.send(wsFrame(1, Buffer.from('x')))
      await ws.next()
      const mine = seen[before] as Seen
      expect(mine.httpVersion).toBe('2')
      ws.stream.close(http2.constants.NGHTTP2_CANCEL)
      await until(() => mine.closed !== undefined)
      expect(mine.closed?.code).toBe(1006)
      await until(() => server.stats().websocketsOpen === 0)
      const res = await h2Request(session, { ':path': '/hello' })
      expect(res.status).toBe(200)
    })

    it('a 4 MiB message each way, through the stream flow-control windows', async () => {
      const ws = await open('/echo')
      const big = Buffer.alloc(4 * 1024 * 1024)
      for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff
      ws.send(wsFrame(2, big))
      const back = await ws.next()
      expect(back.opcode).toBe(2)
      expect(back.payload.equals(big)).toBe(true)
      ws.stream.close(http2.constants.NGHTTP2_CANCEL)
    })

    it('negotiates permessage-deflate through sec-websocket-extensions', async () => {
      const ws = await open('/echo', { 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits' })
      expect(ws.headers['sec-websocket-extensions']).toBe('permessage-deflate; server_no_context_takeover; client_no_context_takeover')
      const msg = Buffer.from(JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ id: i, text: 'hello from the dashboard' }))))
      ws.send(wsFrame(1, deflateMessage(msg), { rsv1: true }))
      const f = await ws.next()
      expect(f.rsv1).toBe(true)
      expect(f.payload.length).toBeLessThan(msg.length / 3)
      expect(inflateMessage(f.payload).equals(msg)).toBe(true)
      ws.send(wsFrame(8, closePayload(1000)))
      expect((await ws.next()).opcode).toBe(8)
    })

    it('many sockets on one connection, with pub/sub and plain requests between them', async () => {
      const n = 40
      const sockets = await Promise.all(Array.from({ length: n }, () => open('/room')))
      for (const ws of sockets) expect((await ws.message()).data.toString()).toBe('joined')
      expect(app.subscriberCount('room')).toBe(n)
      expect(app.publish('room', 'news for everyone')).toBe(n)
      for (const ws of sockets) expect((await ws.message()).data.toString()).toBe('news for everyone')
      const echoes = await Promise.all(Array.from({ length: n }, () => open('/plain')))
      echoes.forEach((ws, i) => ws.send(wsFrame(1, Buffer.from(`socket ${i}`))))
      const got = await Promise.all(echoes.map(async (ws) => (await ws.message()).data.toString()))
      expect(got).toEqual(Array.from({ length: n }, (_, i) => `socket ${i}`))
      expect((await h2Request(session, { ':path': '/hello' })).status).toBe(200)
      for (const ws of [...sockets, ...echoes]) ws.stream.close(http2.constants.NGHTTP2_CANCEL)
      await until(() => server.stats().websocketsOpen === 0)
    })

    it('middleware, routing and handshake checks answer the CONNECT with a status', async () => {
      expect((await open('/private')).status).toBe(401)
      const ok = await open('/private?token=yes')
      expect(ok.status).toBe(200)
      expect((await ok.message()).data.toString()).toBe('welcome')
      ok.stream.close(http2.constants.NGHTTP2_CANCEL)
      expect((await open('/nowhere')).status).toBe(404)
      expect((await open('/echo', { 'sec-websocket-version': '8' })).status).toBe(426)
      // A protocol other than websocket is not something this server tunnels.
      const other = await new Promise<number>((resolve, reject) => {
        const s = session.request({ ':method': 'CONNECT', ':protocol': 'webtransport', ':scheme': scheme, ':path': '/echo', ':authority': authority })
        s.once('response', (h) => resolve(Number(h[':status'])))
        s.once('error', reject)
      })
      expect(other).toBe(501)
      expect((await h2Request(session, { ':path': '/hello' })).status).toBe(200)
    })
  })
}

describe('WebSocket over HTTP/2: server shutdown', () => {
  it('closes the socket with 1001, ends its stream, and the server stops', async () => {
    const seen: Seen[] = []
    const server = await listen(makeApp(seen))
    const authority = `127.0.0.1:${server.port}`
    const { session } = await connect(`http://${authority}`)
    try {
      const ws = await openWs(session, authority, '/echo')
      ws.send(wsFrame(1, Buffer.from('hi')))
      expect((await ws.next()).payload.toString()).toBe('hi')
      const closing = server.close({ timeout: 5 })
      const close = await ws.next()
      expect(close.opcode).toBe(8)
      expect(close.payload.readUInt16BE(0)).toBe(1001)
      ws.send(wsFrame(8, closePayload(1001)))
      await until(() => ws.reader.ended)
      await closing
      expect(seen[0]?.closed?.code).toBe(1001)
    } finally {
      session.destroy()
      await server.close({ timeout: 1 })
    }
  })
})

describe.skipIf(!haveOpenssl || !requireTool('aioquic'))('WebSocket over HTTP/3 (RFC 9220): not offered, refused cleanly', () => {
  it('announces no extended CONNECT; one is reset with H3_MESSAGE_ERROR and the connection keeps serving', async () => {
    const server = await listen(makeApp([]), {
      tls: { cert: (certs as TestCerts).certFile, key: (certs as TestCerts).keyFile },
      http3Port: 0,
    })
    try {
      const r = await h3(
        server.http3Port as number,
        [
          { method: 'CONNECT', path: '/echo', headers: { ':protocol': 'websocket', 'sec-websocket-version': '13' } },
          { path: '/hello' },
        ],
        { ca: certs?.ca, sequential: true, timeoutMs: 20_000 },
      )
      // SETTINGS_ENABLE_CONNECT_PROTOCOL (0x08) is not sent: an RFC 9220
      // client does not try, and falls back to HTTP/2 or HTTP/1.1.
      // (h3 sends the setting with the value 0.)
      expect(r.settings[String(0x08)] ?? 0).toBe(0)
      const [connect, hello] = r.responses as [H3Response, H3Response]
      expect(connect.status).toBeNull()
      expect(connect.reset).toBe(0x10e) // H3_MESSAGE_ERROR: `:protocol websocket` is not understood
      expect(hello.status).toBe(200)
      expect(hello.body).toBe('hello')
      expect(server.stats().websocketsTotal).toBe(0)
    } finally {
      await server.close({ timeout: 1 })
    }
  })
})
