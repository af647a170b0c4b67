/**
 * WebSocket: the `ws` package is the independent client; a raw TCP socket
 * sends what well-behaved clients refuse to (unmasked frames, bad UTF-8, …).
 */
import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { App, Response, WebSocketClosedError, type Server, type WebSocketConnection } from '../ts/index.js'
import { listen } from './helpers.js'

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

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time')
    await new Promise((r) => setTimeout(r, 10))
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

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
    let seen: { params: Record<string, string>; q: string | null; h: string | null; path: string } | undefined
    app.websocket('/rooms/{room}', async (ws) => {
      seen = { params: ws.pathParams, q: ws.query.get('user'), h: ws.headers.get('x-token'), path: ws.path }
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
    expect(seen).toEqual({ params: { room: 'blue' }, q: 'ann', h: 'abc', path: '/rooms/blue' })
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
