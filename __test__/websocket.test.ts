/**
 * WebSocket: the `ws` package is the independent client; a raw TCP socket
 * sends what well-behaved clients refuse to (unmasked frames, bad UTF-8, …).
 */
import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { App, Response, WebSocketClosedError, type Server, type WebSocketConnection } from '../ts/index.js'
import { listen } from './helpers/index.js'
import { sleep, until } from './helpers/wait.js'

const servers: Server[] = []
const clients: WebSocket[] = []

afterEach(async () => {
  for (const c of clients.splice(0)) c.terminate()
  await Promise.all(servers.splice(0).map((s) => s.close({ timeout: 1 })))
})

async function start(app: App, opts: Parameters<typeof listen>[1] = {}): Promise<Server> {
  const s = await listen(app, opts)
  servers.push(s)
  return s
}

interface Msg {
  data: Buffer
  binary: boolean
}

/**
 * A `ws` client whose messages and close are recorded from the first byte
 * (frames that arrive with the 101 are emitted before `open` resolves).
 */
interface Client {
  ws: WebSocket
  msgs: Msg[]
  next(): Promise<Msg>
  closed: Promise<{ code: number; reason: string }>
}

function connect(server: Server, path: string, opts: WebSocket.ClientOptions = {}): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}${path}`, opts)
    clients.push(ws)
    const msgs: Msg[] = []
    let read = 0
    let wake: (() => void) | undefined
    ws.on('message', (data, binary) => {
      msgs.push({ data: data as Buffer, binary })
      wake?.()
    })
    const closed = new Promise<{ code: number; reason: string }>((r) =>
      ws.once('close', (code, reason) => r({ code, reason: reason.toString() })),
    )
    const next = async (): Promise<Msg> => {
      while (read >= msgs.length) await new Promise<void>((r) => (wake = r))
      return msgs[read++] as Msg
    }
    ws.once('open', () => resolve({ ws, msgs, next, closed }))
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
  })
}

/** Upgrade failure as seen by the client: the HTTP status and body. */
function refusal(server: Server, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const c = new WebSocket(`ws://127.0.0.1:${server.port}${path}`, { headers })
    c.once('open', () => reject(new Error('upgrade unexpectedly accepted')))
    c.once('error', () => {})
    c.once('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
  })
}


function echoApp(): App {
  const app = new App()
  app.websocket('/echo', async (ws) => {
    for await (const msg of ws) {
      if (msg.type === 'text') await ws.sendText(msg.data)
      else await ws.sendBinary(msg.data)
    }
  }, { maxMessageSize: 20 * 1024 * 1024 })
  return app
}

describe('websocket: messages', () => {
  it('echoes text and binary, with path params, query and headers of the upgrade', async () => {
    const app = new App()
    let seen: { params: Record<string, string>; q: string | null; h: string | null; path: string; v: string } | undefined
    app.websocket('/rooms/{room}', async (ws) => {
      seen = { params: ws.pathParams, q: ws.query.get('user'), h: ws.headers.get('x-token'), path: ws.path, v: ws.httpVersion }
      for (;;) {
        const msg = await ws.receive()
        if (msg.type === 'text') await ws.sendText(`text:${msg.data}`)
        else await ws.sendBinary(Buffer.concat([Buffer.from('bin:'), msg.data]))
      }
    })
    const server = await start(app)
    const c = await connect(server, '/rooms/blue?user=ann', { headers: { 'x-token': 'abc' } })
    c.ws.send('héllo ✓')
    const t = await c.next()
    expect(t.binary).toBe(false)
    expect(t.data.toString()).toBe('text:héllo ✓')
    c.ws.send(Buffer.from([0, 1, 2, 255]))
    const b = await c.next()
    expect(b.binary).toBe(true)
    expect([...b.data]).toEqual([...Buffer.from('bin:'), 0, 1, 2, 255])
    expect(seen).toEqual({ params: { room: 'blue' }, q: 'ann', h: 'abc', path: '/rooms/blue', v: '1.1' })
  })

  it('carries 1 MB and 16 MB messages intact', async () => {
    const server = await start(echoApp())
    const c = await connect(server, '/echo', { maxPayload: 32 * 1024 * 1024 })
    for (const size of [1024 * 1024, 16 * 1024 * 1024]) {
      const payload = Buffer.alloc(size)
      for (let i = 0; i < size; i += 4096) payload[i] = (i / 4096) & 0xff
      c.ws.send(payload)
      const back = await c.next()
      expect(back.data.length).toBe(size)
      expect(back.data.equals(payload)).toBe(true)
    }
  }, 30_000)

  it('keeps 10,000 messages in order both ways', async () => {
    const server = await start(echoApp())
    const c = await connect(server, '/echo')
    for (let i = 0; i < 10_000; i++) c.ws.send(String(i))
    await until(() => c.msgs.length === 10_000, 20_000)
    expect(c.msgs.map((m) => m.data.toString())).toEqual(Array.from({ length: 10_000 }, (_, i) => String(i)))
  }, 30_000)

  it('runs the guide\'s batching and binary examples', async () => {
    const app = new App()
    app.websocket('/ws', async (ws) => {
      const items = [{ id: 1 }, { id: 2 }, { id: 3 }]
      // Batch messages: one JSON array instead of one message per item.
      await ws.sendText(JSON.stringify(items))
      // Binary messages (a compact hand-rolled encoding stands in for MessagePack).
      const binaryData = Buffer.from(Uint32Array.from(items.map((i) => i.id)).buffer)
      await ws.sendBinary(binaryData)
    })
    const server = await start(app)
    const c = await connect(server, '/ws')
    const closed = await c.closed
    const msgs = c.msgs
    expect(JSON.parse(msgs[0]!.data.toString())).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }])
    expect(msgs[1]!.binary).toBe(true)
    expect([...new Uint32Array(new Uint8Array(msgs[1]!.data).buffer)]).toEqual([1, 2, 3])
    // A handler that returns closes normally.
    expect(closed.code).toBe(1000)
  })
})

describe('websocket: wss://', () => {
  it('echoes over TLS with the self-signed certificate, and scheme is https', async () => {
    const app = new App()
    let scheme = ''
    app.websocket('/secure', async (ws) => {
      scheme = ws.request.scheme
      for await (const m of ws) if (m.type === 'text') await ws.sendText(`secure:${m.data}`)
    })
    const server = await start(app, { tls: 'self-signed' })
    const ws = new WebSocket(`wss://127.0.0.1:${server.port}/secure`, { rejectUnauthorized: false })
    clients.push(ws)
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    const reply = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())))
    ws.send('hello')
    expect(await reply).toBe('secure:hello')
    expect(scheme).toBe('https')
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)))
    ws.close(1000)
    expect(await closed).toBe(1000)
    await until(() => server.stats().websocketsOpen === 0)
  })
})

describe('websocket: close', () => {
  it('reports the client\'s close code and reason to receive() and closedPromise', async () => {
    const app = new App()
    let err: unknown
    let conn: WebSocketConnection | undefined
    app.websocket('/ws', async (ws) => {
      conn = ws
      try {
        await ws.receive()
      } catch (e) {
        err = e
      }
    })
    const server = await start(app)
    const c = await connect(server, '/ws')
    c.ws.close(4001, 'client bye')
    expect(await c.closed).toEqual({ code: 4001, reason: 'client bye' })
    await until(() => err !== undefined)
    expect(err).toBeInstanceOf(WebSocketClosedError)
    expect((err as WebSocketClosedError).code).toBe(4001)
    expect((err as WebSocketClosedError).reason).toBe('client bye')
    expect(conn!.closed).toBe(true)
    expect(await conn!.closedPromise).toEqual({ code: 4001, reason: 'client bye' })
    expect(await conn!.sendText('late')).toBe(false)
  })

  it('sends the server\'s close code and reason to the client', async () => {
    const app = new App()
    app.websocket('/ws', async (ws) => {
      await ws.sendText('before close')
      await ws.close(4002, 'server bye')
      expect(ws.closed).toBe(true)
    })
    const server = await start(app)
    const c = await connect(server, '/ws')
    expect((await c.next()).data.toString()).toBe('before close')
    expect(await c.closed).toEqual({ code: 4002, reason: 'server bye' })
  })

  it('closes with 1011 and calls onError when the handler throws', async () => {
    const app = new App()
    app.websocket('/ws', async (ws) => {
      await ws.receive()
      throw new Error('boom')
    })
    const errors: unknown[] = []
    const server = await start(app, { onError: (e) => errors.push(e) })
    const c = await connect(server, '/ws')
    c.ws.send('go')
    expect((await c.closed).code).toBe(1011)
    expect((errors[0] as Error).message).toBe('boom')
    // The server keeps serving.
    const c2 = await connect(server, '/ws')
    expect(c2.ws.readyState).toBe(WebSocket.OPEN)
  })

  it('rejects invalid close codes and oversized reasons with a TypeError', async () => {
    const app = new App()
    const errors: string[] = []
    app.websocket('/ws', async (ws) => {
      for (const [code, reason] of [[1005, ''], [999, ''], [5000, ''], [1000, 'x'.repeat(124)]] as [number, string][]) {
        try {
          await ws.close(code, reason)
        } catch (e) {
          errors.push((e as { code: string }).code)
        }
      }
      await ws.close(1000)
    })
    const server = await start(app)
    const c = await connect(server, '/ws')
    expect((await c.closed).code).toBe(1000)
    expect(errors).toEqual(Array(4).fill('ERR_HTTPY_INVALID_OPTION'))
  })

  it('frees everything when a client vanishes without a close frame', async () => {
    const app = new App()
    let err: WebSocketClosedError | undefined
    app.websocket('/ws', async (ws) => {
      ws.subscribe('news')
      try {
        for (;;) await ws.receive()
      } catch (e) {
        err = e as WebSocketClosedError
      }
    })
    const server = await start(app)
    const c = await connect(server, '/ws')
    await until(() => server.stats().websocketsOpen === 1)
    expect(app.publish('news', 'hi')).toBe(1)
    c.ws.terminate()
    await until(() => err !== undefined)
    expect(err!.code).toBe(1006)
    await until(() => server.stats().websocketsOpen === 0)
    expect(app.publish('news', 'anyone?')).toBe(0)
    expect(server.stats().connectionsOpen).toBe(0)
  })

  it('closes open connections with 1001 on server close', async () => {
    const app = echoApp()
    const server = await start(app)
    const c = await connect(server, '/echo')
    await server.close({ timeout: 5 })
    expect((await c.closed).code).toBe(1001)
  })
})

describe('websocket: upgrade and middleware', () => {
  it('lets middleware refuse the upgrade with a normal response', async () => {
    const app = new App()
    const seen: string[] = []
    app.use(async (req, next) => {
      seen.push(`${req.method} ${req.path}`)
      if (req.query.get('token') !== 'secret') return Response.text('Unauthorized', 401)
      const res = await next(req)
      res.headers.set('x-checked', 'yes')
      return res
    })
    app.websocket('/ws', async (ws) => {
      await ws.sendText('welcome')
    })
    const server = await start(app)
    expect(await refusal(server, '/ws')).toEqual({ status: 401, body: 'Unauthorized' })
    const upgradeHeaders = new Promise<Record<string, string | string[] | undefined>>((resolve, reject) => {
      const c = new WebSocket(`ws://127.0.0.1:${server.port}/ws?token=secret`)
      clients.push(c)
      c.once('upgrade', (res) => resolve(res.headers))
      c.once('error', reject)
    })
    expect((await upgradeHeaders)['x-checked']).toBe('yes')
    expect(seen).toEqual(['GET /ws', 'GET /ws'])
  })

  it('answers 404 to an upgrade without a WebSocket route and 426 to plain HTTP on a WebSocket route', async () => {
    const app = new App()
    app.get('/page', () => Response.text('page'))
    app.websocket('/ws', async () => {})
    const server = await start(app)
    expect((await refusal(server, '/nowhere')).status).toBe(404)
    expect((await refusal(server, '/page')).status).toBe(404)
    const plain = await fetch(`${server.url}/ws`)
    expect(plain.status).toBe(426)
    expect(plain.headers.get('upgrade')).toBe('websocket')
    expect(await (await fetch(`${server.url}/page`)).text()).toBe('page')
  })

  it('refuses a handshake with a wrong version or key', async () => {
    const app = new App()
    app.websocket('/ws', async () => {})
    const server = await start(app)
    const head = (extra: string) =>
      `GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${extra}\r\n`
    const v = await rawExchange(server.port, head('Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n'))
    expect(v).toMatch(/^HTTP\/1\.1 426/)
    expect(v.toLowerCase()).toContain('sec-websocket-version: 13')
    const k = await rawExchange(server.port, head('Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n'))
    expect(k).toMatch(/^HTTP\/1\.1 400/)
  })

  it('rejects bad registrations and options with a stable code', () => {
    const app = new App()
    expect(() => app.websocket('no-slash', async () => {})).toThrow(expect.objectContaining({ code: 'ERR_HTTPY_INVALID_ROUTE' }))
    expect(() => app.websocket('/ws', 'nope' as never)).toThrow(expect.objectContaining({ code: 'ERR_HTTPY_INVALID_ROUTE' }))
    expect(() => app.websocket('/ws', async () => {}, { heartbeat: -1 })).toThrow(expect.objectContaining({ code: 'ERR_HTTPY_INVALID_OPTION' }))
    expect(() => app.websocket('/ws', async () => {}, { bogus: 1 } as never)).toThrow(expect.objectContaining({ code: 'ERR_HTTPY_INVALID_OPTION' }))
    app.websocket('/ws', async () => {})
    expect(() => app.websocket('/ws', async () => {})).toThrow(expect.objectContaining({ code: 'ERR_HTTPY_INVALID_ROUTE' }))
    expect(() => app.route('WEBSOCKET', '/x', () => Response.text('x'))).toThrow(expect.objectContaining({ code: 'ERR_HTTPY_INVALID_ROUTE' }))
  })
})

/** Sends raw bytes and returns everything received until close or timeout. */
function rawExchange(port: number, data: string, ms = 2000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const t = setTimeout(() => s.destroy(), ms)
    s.on('data', (d) => chunks.push(d))
    s.on('error', () => {})
    s.on('close', () => {
      clearTimeout(t)
      resolve(Buffer.concat(chunks).toString('latin1'))
    })
    s.write(data)
  })
}

/** A client frame; masked unless told otherwise. */
function frame(opcode: number, payload: Buffer, o: { mask?: boolean; fin?: boolean; rsv?: number } = {}): Buffer {
  const { mask = true, fin = true, rsv = 0 } = o
  const len = payload.length
  const head: number[] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
  const m = mask ? 0x80 : 0
  if (len < 126) head.push(m | len)
  else if (len < 65536) head.push(m | 126, len >> 8, len & 0xff)
  else throw new Error('test frames stay small')
  if (!mask) return Buffer.concat([Buffer.from(head), payload])
  const key = Buffer.from([1, 2, 3, 4])
  const body = Buffer.from(payload.map((b, i) => b ^ (key[i % 4] as number)))
  return Buffer.concat([Buffer.from(head), key, body])
}

/** Server frames (unmasked) found in `buf`. */
function parseFrames(buf: Buffer): { opcode: number; payload: Buffer }[] {
  const out: { opcode: number; payload: Buffer }[] = []
  let at = 0
  while (at + 2 <= buf.length) {
    const opcode = (buf[at] as number) & 0x0f
    let len = (buf[at + 1] as number) & 0x7f
    let o = at + 2
    if (len === 126) {
      len = buf.readUInt16BE(o)
      o += 2
    } else if (len === 127) {
      len = Number(buf.readBigUInt64BE(o))
      o += 8
    }
    out.push({ opcode, payload: buf.subarray(o, o + len) })
    at = o + len
  }
  return out
}

/**
 * Completes the handshake on a raw socket, writes `frames`, and returns the
 * close code the server sent (null if none) once it closes the socket.
 */
function rawSession(port: number, path: string, frames: Buffer[], ms = 4000): Promise<{ code: number | null; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    let buf = Buffer.alloc(0)
    let upgraded = false
    let closed = false
    const t = setTimeout(() => s.destroy(), ms)
    s.on('error', () => {})
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = buf.subarray(0, end).toString('latin1')
        if (!head.startsWith('HTTP/1.1 101')) {
          reject(new Error(`no upgrade: ${head}`))
          return
        }
        upgraded = true
        buf = buf.subarray(end + 4)
        for (const f of frames) s.write(f)
      }
    })
    s.on('end', () => (closed = true))
    s.on('close', () => {
      clearTimeout(t)
      const close = parseFrames(buf).find((f) => f.opcode === 8)
      resolve({ code: close && close.payload.length >= 2 ? close.payload.readUInt16BE(0) : null, closed })
    })
    s.write(
      `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    )
  })
}

describe('websocket: bad input', () => {
  it('closes with the RFC 6455 code for each protocol violation and frees the connection', async () => {
    const app = new App()
    const closes: number[] = []
    app.websocket('/ws', async (ws) => {
      try {
        for (;;) await ws.receive()
      } catch (e) {
        closes.push((e as WebSocketClosedError).code)
      }
    })
    const server = await start(app)
    const cases: [string, Buffer[], number][] = [
      ['unmasked frame', [frame(1, Buffer.from('hi'), { mask: false })], 1002],
      ['invalid UTF-8 in text', [frame(1, Buffer.from([0x68, 0xff, 0xfe]))], 1007],
      ['invalid UTF-8 across fragments', [frame(1, Buffer.from([0xe2, 0x82]), { fin: false }), frame(0, Buffer.from([0x28]))], 1007],
      ['reserved bit set', [frame(1, Buffer.from('hi'), { rsv: 4 })], 1002],
      ['oversized control frame', [frame(9, Buffer.alloc(126))], 1002],
      ['fragmented control frame', [frame(9, Buffer.from('p'), { fin: false })], 1002],
      ['continuation without a start', [frame(0, Buffer.from('x'))], 1002],
      ['new message inside a fragmented one', [frame(1, Buffer.from('a'), { fin: false }), frame(1, Buffer.from('b'))], 1002],
      ['unknown opcode', [frame(3, Buffer.from('x'))], 1002],
    ]
    for (const [name, frames, code] of cases) {
      const r = await rawSession(server.port, '/ws', frames)
      expect({ name, code: r.code, closed: r.closed }).toEqual({ name, code, closed: true })
    }
    await until(() => closes.length === cases.length)
    expect(closes).toEqual(cases.map((c) => c[2]))
    await until(() => server.stats().websocketsOpen === 0)
    // Still serving.
    expect((await rawSession(server.port, '/ws', [frame(8, Buffer.from([0x03, 0xe8]))])).code).toBe(1000)
  }, 60_000)

  it('closes with 1009 when a message exceeds maxMessageSize', async () => {
    const app = new App()
    let got = ''
    app.websocket('/ws', async (ws) => {
      for await (const m of ws) if (m.type === 'text') got += m.data
    }, { maxMessageSize: 1024 })
    const server = await start(app)
    const c = await connect(server, '/ws')
    c.ws.send('x'.repeat(1024))
    c.ws.send('y'.repeat(1025))
    expect((await c.closed).code).toBe(1009)
    expect(got).toBe('x'.repeat(1024))
  })

  it('applies the server-wide websocket options as defaults', async () => {
    const app = new App()
    app.websocket('/ws', async (ws) => {
      for await (const _ of ws) void _
    })
    const server = await start(app, { websocket: { maxMessageSize: 100 } })
    const c = await connect(server, '/ws')
    c.ws.send('z'.repeat(101))
    expect((await c.closed).code).toBe(1009)
    await expect(listen(new App(), { websocket: { maxMessageSize: 0 } })).rejects.toMatchObject({ code: 'ERR_HTTPY_INVALID_OPTION' })
  })
})

describe('websocket: ping, pong and heartbeat', () => {
  it('answers client pings automatically and delivers server pings', async () => {
    const app = new App()
    app.websocket('/ws', async (ws) => {
      await ws.receive()
      await ws.ping('from-server')
      await ws.receive()
    })
    const server = await start(app)
    const c = await connect(server, '/ws')
    const pong = new Promise<string>((r) => c.ws.once('pong', (d) => r(d.toString())))
    c.ws.ping('from-client')
    expect(await pong).toBe('from-client')
    const ping = new Promise<string>((r) => c.ws.once('ping', (d) => r(d.toString())))
    c.ws.send('go')
    expect(await ping).toBe('from-server')
  })

  it('heartbeat pings a live peer and drops a silent one', async () => {
    const app = new App()
    const ends: { code: number; reason: string }[] = []
    app.websocket('/hb', async (ws) => {
      try {
        for (;;) await ws.receive()
      } catch (e) {
        ends.push({ code: (e as WebSocketClosedError).code, reason: (e as WebSocketClosedError).reason })
      }
    }, { heartbeat: 0.2 })
    const server = await start(app)
    // The ws client answers pings: it stays connected.
    const live = await connect(server, '/hb')
    let pings = 0
    live.ws.on('ping', () => pings++)
    // A raw client that never answers is dropped after about two intervals.
    const started = Date.now()
    const silent = await rawSession(server.port, '/hb', [], 5000)
    const took = Date.now() - started
    expect(silent.closed).toBe(true)
    expect(took).toBeGreaterThanOrEqual(300)
    expect(took).toBeLessThan(2500)
    // The handler learns of the drop through an event that can reach the
    // JS thread just after the client sees its socket closed.
    await until(() => ends.length > 0)
    expect(ends).toEqual([{ code: 1006, reason: 'heartbeat timeout' }])
    await until(() => pings >= 3)
    expect(live.ws.readyState).toBe(WebSocket.OPEN)
    await until(() => server.stats().websocketsOpen === 1)
  })

  it('runs the guide\'s hand-written heartbeat (setInterval + ping)', async () => {
    const app = new App()
    let finished = false
    // The guide's websocket_handler / send_heartbeat, with a short interval.
    app.websocket('/ws', async (ws) => {
      const heartbeat = setInterval(() => {
        if (!ws.closed) void ws.ping(Buffer.from('ping'))
      }, 50)
      try {
        for (;;) {
          const msg = await ws.receive()
          void msg // process message...
        }
      } catch (e) {
        if (!(e instanceof WebSocketClosedError)) console.error('WebSocket error:', e)
      } finally {
        clearInterval(heartbeat)
        if (!ws.closed) await ws.close()
        finished = true
      }
    })
    const server = await start(app)
    const c = await connect(server, '/ws')
    const payloads: string[] = []
    c.ws.on('ping', (d) => payloads.push(d.toString()))
    await until(() => payloads.length >= 3)
    expect(new Set(payloads)).toEqual(new Set(['ping']))
    c.ws.close(1000)
    await until(() => finished)
  })

  it('closes an idle connection with 1001 after idleTimeout', async () => {
    const app = new App()
    app.websocket('/ws', async (ws) => {
      for await (const _ of ws) void _
    }, { idleTimeout: 0.3 })
    const server = await start(app)
    const c = await connect(server, '/ws')
    const t0 = Date.now()
    const closed = await c.closed
    expect(closed).toEqual({ code: 1001, reason: 'idle timeout' })
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250)
  })

  it('idleTimeout counts from the last frame: messages keep a socket open past it, silence then closes it', async () => {
    const app = new App()
    app.websocket('/ws', async (ws) => {
      for await (const _ of ws) void _
    }, { idleTimeout: 0.3 })
    const server = await start(app)
    const c = await connect(server, '/ws')
    let closedAt = 0
    void c.closed.then(() => { closedAt = Date.now() })
    // Twice the timeout of traffic, a message every 100 ms: the one timer
    // set at the start fires meanwhile and must be moved, not obeyed.
    for (let i = 0; i < 6; i++) {
      c.ws.send(`m${i}`)
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(closedAt).toBe(0)
    const last = Date.now() - 100
    const closed = await c.closed
    expect(closed).toEqual({ code: 1001, reason: 'idle timeout' })
    expect(closedAt - last).toBeGreaterThanOrEqual(250)
    expect(closedAt - last).toBeLessThan(1500)
  })
})

describe('websocket: flow control', () => {
  it('send promises wait while a client stops reading, so queued data stays bounded', async () => {
    const app = new App()
    let sent = 0
    let stopped = false
    const chunk = 'x'.repeat(64 * 1024)
    app.websocket('/flood', async (ws) => {
      while (!stopped && (await ws.sendText(chunk))) sent++
      await ws.sendText('end')
    }, { highWaterMark: 256 * 1024 })
    const server = await start(app)
    // Uncompressed: the point is bytes piling up on the wire, and 64 KiB of
    // 'x' deflates to a few hundred bytes.
    const c = await connect(server, '/flood', { perMessageDeflate: false })
    c.ws.pause() // stop reading the socket
    await sleep(700)
    const first = sent
    await sleep(500)
    // The sender is stalled, not buffering: nothing more was accepted, and
    // what was accepted is what the socket buffers plus the high-water mark
    // hold (far below what an unbounded loop sends in a second).
    expect(sent).toBe(first)
    expect(sent * chunk.length).toBeLessThan(24 * 1024 * 1024)
    stopped = true
    c.ws.resume()
    await until(() => c.msgs.at(-1)?.data.toString() === 'end', 20_000)
    // Everything that was accepted arrived.
    expect(c.msgs.length).toBe(sent + 1)
  }, 30_000)

  it('closes with 1008 a connection whose unawaited sends pass maxBackpressure', async () => {
    const app = new App()
    let info: { code: number; reason: string } | undefined
    const results: boolean[] = []
    app.websocket('/flood', async (ws) => {
      const chunk = Buffer.alloc(64 * 1024)
      const all: Promise<boolean>[] = []
      for (let i = 0; i < 256 && !ws.closed; i++) all.push(ws.sendBinary(chunk))
      results.push(...(await Promise.all(all)))
      info = await ws.closedPromise
    }, { highWaterMark: 64 * 1024, maxBackpressure: 1024 * 1024 })
    const server = await start(app)
    const c = await connect(server, '/flood')
    c.ws.pause()
    await until(() => info !== undefined, 10_000)
    expect(info).toEqual({ code: 1008, reason: 'backpressure limit exceeded' })
    expect(results).toContain(false)
    await until(() => server.stats().websocketsOpen === 0)
  }, 20_000)

  it('stops reading from a client while the handler is not receiving', async () => {
    const app = new App()
    let reading = false
    let count = 0
    let last = -1
    let inOrder = true
    app.websocket('/slow', async (ws) => {
      while (!reading) await sleep(20)
      for await (const m of ws) {
        const n = (m.data as Buffer).readUInt32BE(0)
        if (n !== last + 1) inOrder = false
        last = n
        if (++count === 512) await ws.sendText('done')
      }
    }, { highWaterMark: 64 * 1024 })
    const server = await start(app)
    // Uncompressed, so that 32 MiB really travel (zeros deflate to nothing).
    const c = await connect(server, '/slow', { perMessageDeflate: false })
    const msg = Buffer.alloc(64 * 1024)
    for (let i = 0; i < 512; i++) {
      const m = Buffer.from(msg)
      m.writeUInt32BE(i, 0)
      c.ws.send(m)
    }
    // 32 MiB sent; the server reads only up to its high-water mark, so most
    // of it is still waiting in the client's socket.
    await sleep(700)
    expect(c.ws.bufferedAmount).toBeGreaterThan(8 * 1024 * 1024)
    reading = true
    expect((await c.next()).data.toString()).toBe('done')
    expect(count).toBe(512)
    expect(inOrder).toBe(true)
  }, 30_000)
})

describe('websocket: pub/sub and many connections', () => {
  it('publishes to 500 subscribers from Rust, and unsubscribe stops delivery', async () => {
    const app = new App()
    app.websocket('/chat/{room}', async (ws) => {
      ws.subscribe(ws.pathParams.room as string)
      for await (const m of ws) {
        if (m.type === 'text' && m.data === 'leave') ws.unsubscribe(ws.pathParams.room as string)
        if (m.type === 'text' && m.data === 'leave') await ws.sendText('left')
      }
    })
    const server = await start(app)
    const subs = await Promise.all(Array.from({ length: 500 }, () => connect(server, '/chat/lobby')))
    const other = await connect(server, '/chat/other')
    expect(app.publish('lobby', 'hello everyone')).toBe(500)
    expect(app.publish('lobby', Buffer.from([1, 2, 3]))).toBe(500)
    await until(() => subs.every((s) => s.msgs.length === 2), 20_000)
    for (const s of subs) {
      expect(s.msgs[0]).toEqual({ data: Buffer.from('hello everyone'), binary: false })
      expect(s.msgs[1]).toEqual({ data: Buffer.from([1, 2, 3]), binary: true })
    }
    expect(other.msgs).toEqual([])
    const leaver = subs[0] as Client
    leaver.ws.send('leave')
    await until(() => leaver.msgs.at(-1)?.data.toString() === 'left')
    expect(app.publish('lobby', 'again')).toBe(499)
    expect(app.publish('nobody-here', 'x')).toBe(0)
  }, 60_000)

  it('publishes from a timer, in order with sends around them, in one turn or across turns', async () => {
    // A publish queues without waking the subscribers' writers; the turn's
    // flush wakes them. Caught: a publish with no send or event after it
    // left waiting, or a send overtaking a publish made after it.
    const app = new App()
    app.websocket('/room', async (ws) => {
      ws.subscribe('room')
      for await (const m of ws) {
        if (m.type !== 'text') continue
        void ws.sendText('before')
        app.publish('room', m.data)
        void ws.sendText('after')
      }
    })
    const server = await start(app)
    const [a, b] = await Promise.all([connect(server, '/room'), connect(server, '/room')])
    await until(() => server.stats().websocketsOpen === 2)
    await new Promise<void>((resolve) => setTimeout(() => (app.publish('room', 'tick'), resolve()), 5))
    await until(() => a.msgs.length === 1 && b.msgs.length === 1)
    a.ws.send('p1')
    await until(() => a.msgs.length === 4 && b.msgs.length === 2)
    const text = (c: Client) => c.msgs.map((m) => m.data.toString())
    expect(text(a)).toEqual(['tick', 'before', 'p1', 'after'])
    expect(text(b)).toEqual(['tick', 'p1'])
  })

  it('serves 1,000 concurrent connections and returns to baseline when they close', async () => {
    const server = await start(echoApp())
    const before = server.stats()
    const conns = await Promise.all(Array.from({ length: 1000 }, () => connect(server, '/echo')))
    await until(() => server.stats().websocketsOpen === 1000, 20_000)
    conns.forEach((c, i) => c.ws.send(`m${i}`))
    await until(() => conns.every((c) => c.msgs.length === 1), 20_000)
    conns.forEach((c, i) => expect(c.msgs[0]!.data.toString()).toBe(`m${i}`))
    // Half leave politely, half vanish.
    conns.forEach((c, i) => (i % 2 ? c.ws.close(1000) : c.ws.terminate()))
    await until(() => server.stats().websocketsOpen === 0, 20_000)
    const after = server.stats()
    expect(after.connectionsOpen).toBe(before.connectionsOpen)
    expect(after.pending).toBe(0)
    expect(after.heldResponders).toBe(0)
    expect(after.websocketsTotal).toBe(1000)
  }, 90_000)
})

describe('websocket: connection limit', () => {
  it('issue-6 regression: upgraded connections keep their maxConnections slot', async () => {
    const app = echoApp()
    app.get('/ok', () => Response.text('ok'))
    const server = await start(app, { maxConnections: 2, keepAliveTimeout: 10 })
    const a = await connect(server, '/echo')
    const b = await connect(server, '/echo')
    await until(() => server.stats().websocketsOpen === 2)

    // A third client is accepted by the kernel but not served while both
    // WebSockets hold their slots...
    const c = net.connect(server.port, '127.0.0.1')
    let text = ''
    c.on('data', (d: Buffer) => (text += d.toString('latin1')))
    c.on('error', () => {})
    c.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n')
    await sleep(400)
    expect(text).toBe('')

    // ...and is as soon as one of them closes.
    a.ws.close(1000)
    await until(() => text.includes('\r\n\r\nok'), 3000)
    expect(text.startsWith('HTTP/1.1 200')).toBe(true)
    b.ws.send('still here')
    expect((await b.next()).data.toString()).toBe('still here')
    c.destroy()
  })
})

describe('websocket: onMessage listener', () => {
  it('echoes through a synchronous listener, in order, including messages queued before it was set', async () => {
    const app = new App()
    app.websocket('/late', async (ws) => {
      // Let the client's first messages queue up before the listener exists.
      await sleep(200)
      return ws.onMessage((m) => void (m.type === 'text' ? ws.sendText(m.data) : ws.sendBinary(m.data)))
    })
    const server = await start(app)
    const c = await connect(server, '/late')
    for (let i = 0; i < 5; i++) c.ws.send(`early-${i}`)
    await sleep(300)
    for (let i = 0; i < 5; i++) c.ws.send(`late-${i}`)
    c.ws.send(Buffer.from([1, 2, 3]))
    const got: string[] = []
    for (let i = 0; i < 10; i++) got.push((await c.next()).data.toString())
    expect(got).toEqual([...[0, 1, 2, 3, 4].map((i) => `early-${i}`), ...[0, 1, 2, 3, 4].map((i) => `late-${i}`)])
    const bin = await c.next()
    expect(bin.binary).toBe(true)
    expect([...bin.data]).toEqual([1, 2, 3])
  })

  it('a listener that throws closes the connection with 1011 and reports the error', async () => {
    const errors: unknown[] = []
    const app = new App()
    app.websocket('/boom', (ws) =>
      ws.onMessage((m) => {
        if (m.data.toString() === 'boom') throw new Error('listener failed')
        void ws.sendText('ok')
      }),
    )
    const server = await start(app, { onError: (e) => errors.push(e) })
    const c = await connect(server, '/boom')
    c.ws.send('fine')
    expect((await c.next()).data.toString()).toBe('ok')
    c.ws.send('boom')
    expect((await c.closed).code).toBe(1011)
    expect((errors[0] as Error).message).toBe('listener failed')
  })

  it('a listener that is not a function is a TypeError naming the method', async () => {
    let err: unknown
    const app = new App()
    app.websocket('/bad', async (ws) => {
      try {
        await ws.onMessage('nope' as never)
      } catch (e) {
        err = e
      }
    })
    const server = await start(app)
    const c = await connect(server, '/bad')
    await c.closed
    expect(err).toMatchObject({ code: 'ERR_HTTPY_INVALID_OPTION', message: expect.stringContaining('onMessage') })
  })

  it('the promise it returns settles when the peer closes, ending the handler', async () => {
    let info: unknown
    const app = new App()
    app.websocket('/end', async (ws) => {
      info = await ws.onMessage(() => {})
    })
    const server = await start(app)
    const c = await connect(server, '/end')
    c.ws.close(4001, 'bye')
    await until(() => info !== undefined)
    expect(info).toMatchObject({ code: 4001, reason: 'bye' })
  })
})
