/**
 * permessage-deflate (RFC 7692): the `ws` package and Python's `websockets`
 * as independent clients that negotiate it, and a raw TCP client that
 * looks at the frames themselves (RSV1, compressed sizes, fragments,
 * decompression bombs).
 */
import { spawn } from 'node:child_process'
import net from 'node:net'
import zlib from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { App, type Server, type WebSocketOptions } from '../ts/index.js'
import { native } from '../ts/native.js'
import { deflateMessage, echoWebSocket, FrameReader, inflateMessage, listen, requireTool, wsFrame, type WireFrame } from './helpers/index.js'
import { until } from './helpers/wait.js'

const servers: Server[] = []
const clients: WebSocket[] = []
const sockets: net.Socket[] = []

afterEach(async () => {
  for (const c of clients.splice(0)) c.terminate()
  for (const s of sockets.splice(0)) s.destroy()
  await Promise.all(servers.splice(0).map((s) => s.close({ timeout: 1 })))
})

/** An echo server on `/echo` with the given WebSocket options. */
async function echoServer(opts: WebSocketOptions = {}): Promise<Server> {
  const app = new App()
  echoWebSocket(app, '/echo', opts)
  const s = await listen(app)
  servers.push(s)
  return s
}

/** Repetitive JSON like chat or dashboard traffic, exactly `n` bytes. */
function json(n: number, seed = 0): string {
  const items: string[] = []
  let len = 0
  for (let i = 0; len < n; i++) {
    const item = JSON.stringify({ id: seed + i, user: `user${(seed + i) % 7}`, text: 'hello from the dashboard', ok: true })
    items.push(item)
    len += item.length + 1
  }
  return `[${items.join(',')}]`.slice(0, n)
}

type Client = WebSocket & {
  /** The `Sec-WebSocket-Extensions` of the 101 ('' without one). */
  agreed: string
  /** The next message, recorded from the first byte on. */
  next(): Promise<{ data: Buffer; binary: boolean }>
}

function open(server: Server, path: string, opts: WebSocket.ClientOptions): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}${path}`, opts)
    clients.push(ws)
    let agreed = ''
    const queue: { data: Buffer; binary: boolean }[] = []
    let wake: (() => void) | undefined
    // Frames that come with the 101 are emitted before `open`: listen now.
    ws.on('message', (data, binary) => {
      queue.push({ data: data as Buffer, binary })
      wake?.()
    })
    const next = async () => {
      while (queue.length === 0) await new Promise<void>((r) => (wake = r))
      return queue.shift() as { data: Buffer; binary: boolean }
    }
    ws.once('upgrade', (res) => (agreed = String(res.headers['sec-websocket-extensions'] ?? '')))
    ws.once('open', () => resolve(Object.assign(ws, { agreed, next })))
    ws.once('error', reject)
  })
}

// ---- a raw client: the frames as they are on the wire ----

const frame = wsFrame
const inflate = inflateMessage

/** RFC 7692 section 7.2.1: raw deflate, sync flush, tail removed. */
const deflate = deflateMessage

interface Raw {
  /** The `Sec-WebSocket-Extensions` of the 101, or '' without one. */
  extensions: string
  send(...frames: Buffer[]): void
  next(): Promise<WireFrame>
  /** Bytes received after the 101. */
  bytes(): number
}

function rawConnect(port: number, path: string, offer?: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    sockets.push(s)
    let head = Buffer.alloc(0)
    const reader = new FrameReader()
    let upgraded = false
    s.on('error', reject)
    s.on('data', (d) => {
      if (upgraded) return reader.push(d)
      head = Buffer.concat([head, d])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      const text = head.subarray(0, end).toString('latin1')
      if (!text.startsWith('HTTP/1.1 101')) return reject(new Error(`no upgrade: ${text}`))
      upgraded = true
      reader.push(head.subarray(end + 4))
      const ext = /\r\nsec-websocket-extensions: *([^\r]*)/i.exec(text)
      resolve({
        extensions: ext?.[1] ?? '',
        send: (...frames) => {
          for (const f of frames) s.write(f)
        },
        bytes: () => reader.total,
        next: () => reader.next(),
      })
    })
    s.write(
      `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
        (offer ? `Sec-WebSocket-Extensions: ${offer}\r\n` : '') +
        '\r\n',
    )
  })
}

function closeCode(f: WireFrame): number {
  expect(f.opcode).toBe(8)
  return f.payload.readUInt16BE(0)
}

describe('websocket deflate: negotiation', () => {
  it('answers the ws client\'s offer per mode, and offers nothing with compression: false', async () => {
    const shared = await echoServer()
    const a = await open(shared, '/echo', { perMessageDeflate: true })
    expect(a.agreed).toBe('permessage-deflate; server_no_context_takeover; client_no_context_takeover')
    const dedicated = await echoServer({ compression: 'dedicated' })
    const b = await open(dedicated, '/echo', { perMessageDeflate: true })
    expect(b.agreed).toBe('permessage-deflate')
    const c = await open(dedicated, '/echo', { perMessageDeflate: { serverNoContextTakeover: true, serverMaxWindowBits: 10 } })
    expect(c.agreed).toBe('permessage-deflate; server_no_context_takeover; server_max_window_bits=10')
    const off = await echoServer({ compression: false })
    const d = await open(off, '/echo', { perMessageDeflate: true })
    expect(d.agreed).toBe('')
    // Without an offer, or with only offers it cannot honour, nothing is agreed.
    expect((await rawConnect(shared.port, '/echo')).extensions).toBe('')
    expect((await rawConnect(shared.port, '/echo', 'permessage-deflate; server_max_window_bits=20, x-foo')).extensions).toBe('')
    // Every one of them still echoes.
    for (const ws of [a, b, c, d]) {
      ws.send(json(2000))
      expect((await ws.next()).data.toString()).toBe(json(2000))
    }
  })

  it('rejects bad compression options with a stable code', () => {
    const app = new App()
    const h = () => {}
    expect(() => app.websocket('/a', h, { compression: 'yes' as never })).toThrow(/compression.*'shared' or 'dedicated'/)
    expect(() => app.websocket('/b', h, { threshold: -1 })).toThrow(/threshold/)
    for (const bad of [0, 10, 2.5, '6', null]) {
      expect(() => app.websocket('/l', h, { compressionLevel: bad as never })).toThrow(/"compressionLevel" must be an integer from 1 \(fastest\) to 9/)
    }
    let err: unknown
    try {
      app.websocket('/c', h, { compression: true as never })
    } catch (e) {
      err = e
    }
    expect((err as { code?: string } | undefined)?.code).toBe('ERR_HTTPY_INVALID_OPTION')
  })
})

describe('websocket deflate: messages', () => {
  it('echoes text and binary compressed both ways with the ws client, in shared and dedicated mode', async () => {
    for (const compression of ['shared', 'dedicated'] as const) {
      const server = await echoServer({ compression })
      const ws = await open(server, '/echo', { perMessageDeflate: { threshold: 0 } })
      for (let i = 0; i < 30; i++) {
        const text = json(500 + i * 97, i)
        ws.send(text)
        expect((await ws.next()).data.toString()).toBe(text)
        const bin = Buffer.from(json(3000, i))
        ws.send(bin)
        const m = await ws.next()
        expect(m.binary).toBe(true)
        expect(m.data.equals(bin)).toBe(true)
      }
      // A large message (several socket reads, inflated in steps).
      const big = json(3_000_000)
      ws.send(big)
      expect((await ws.next()).data.toString()).toBe(big)
    }
  }, 30_000)

  it('sends RSV1 frames that are smaller on the wire, and short messages uncompressed', async () => {
    const server = await echoServer({ threshold: 256 })
    const raw = await rawConnect(server.port, '/echo', 'permessage-deflate; client_max_window_bits')
    expect(raw.extensions).toContain('server_no_context_takeover')
    const msg = Buffer.from(json(1024))
    raw.send(frame(1, deflate(msg), { rsv1: true }))
    const f = await raw.next()
    expect({ rsv1: f.rsv1, fin: f.fin, opcode: f.opcode }).toEqual({ rsv1: true, fin: true, opcode: 1 })
    expect(f.payload.length).toBeLessThan(msg.length / 3)
    expect(inflate(f.payload).equals(msg)).toBe(true)
    // Under the threshold: plain, even though the client sent it compressed.
    raw.send(frame(2, deflate(Buffer.from('short')), { rsv1: true }))
    const s = await raw.next()
    expect({ rsv1: s.rsv1, opcode: s.opcode, data: s.payload.toString() }).toEqual({ rsv1: false, opcode: 2, data: 'short' })
    // An uncompressed message from the client is fine too.
    raw.send(frame(1, msg))
    expect(inflate((await raw.next()).payload).equals(msg)).toBe(true)
  })

  it('compressionLevel trades CPU for bytes, per route, on echo and on a topic shared by both', async () => {
    const app = new App()
    for (const level of [1, 9]) {
      app.websocket(`/l${level}`, (ws) => {
        ws.subscribe('t')
        return ws.onMessage((m) => {
          if (m.type === 'text' && m.data.startsWith('pub:')) app.publish('t', m.data.slice(4))
          else void ws.sendText(m.type === 'text' ? m.data : m.data.toString())
        })
      }, { compressionLevel: level, compression: level === 1 ? 'shared' : 'dedicated' })
    }
    const server = await listen(app)
    servers.push(server)
    const msg = Buffer.from(json(1024))
    const fast = await rawConnect(server.port, '/l1', 'permessage-deflate')
    const small = await rawConnect(server.port, '/l9', 'permessage-deflate; server_no_context_takeover')
    expect(small.extensions).toContain('server_no_context_takeover')
    const sizes: number[] = []
    for (const raw of [fast, small]) {
      raw.send(frame(1, deflate(msg), { rsv1: true }))
      const f = await raw.next()
      expect(f.rsv1).toBe(true)
      expect(inflate(f.payload).equals(msg)).toBe(true)
      sizes.push(f.payload.length)
    }
    // zlib level 1 (static Huffman codes) against 9 (dynamic codes, longer matches).
    expect(sizes[1]).toBeLessThan((sizes[0] as number) * 0.95)
    // A publish reaches both routes, each compressed at its own level (the
    // copy made for one level is not handed to the other).
    await until(() => app.subscriberCount('t') === 2)
    fast.send(frame(1, Buffer.concat([Buffer.from('pub:'), msg])))
    const got = [await fast.next(), await small.next()]
    for (const f of got) expect(inflate(f.payload).equals(msg)).toBe(true)
    expect(got.map((f) => f.payload.length)).toEqual(sizes)
  })

  it('compressionLevel 6 sends no more bytes than zlib level 6 (what ws and uWebSockets.js send)', async () => {
    const server = await echoServer({ compressionLevel: 6 })
    const raw = await rawConnect(server.port, '/echo', 'permessage-deflate; server_no_context_takeover; client_no_context_takeover')
    // The documents of bench/ws-compressed.mjs: 64 chat-like JSON arrays of 1 KB.
    const docs = Array.from({ length: 64 }, (_, d) => {
      const items: object[] = []
      for (let i = 0; JSON.stringify(items).length < 1100; i++) {
        const text = i % 3 ? 'hello from the dashboard' : `status ${d}/${i} ok`
        items.push({ id: d * 100 + i, user: `user${(d + i) % 13}`, room: `room-${d % 5}`, text, ts: 1765000000 + d * 60 + i })
      }
      return Buffer.from(JSON.stringify(items).slice(0, 1023) + ']')
    })
    let ours = 0
    let zlibs = 0
    for (const doc of docs) {
      raw.send(frame(1, deflate(doc), { rsv1: true }))
      const f = await raw.next()
      expect(inflate(f.payload).equals(doc)).toBe(true)
      ours += f.payload.length
      zlibs += deflate(doc).length
    }
    // zlib-ng's own level 6 (its "medium" strategy) sent 11 bytes more here.
    expect(ours).toBeLessThanOrEqual(zlibs)
  })

  it('inflates a compressed message split into fragments with a ping between them', async () => {
    const server = await echoServer()
    const raw = await rawConnect(server.port, '/echo', 'permessage-deflate')
    const msg = Buffer.from(json(20_000))
    const z = deflate(msg)
    const third = Math.ceil(z.length / 3)
    raw.send(
      frame(1, z.subarray(0, third), { fin: false, rsv1: true }),
      frame(9, Buffer.from('between')),
      frame(0, z.subarray(third, 2 * third), { fin: false }),
      frame(0, z.subarray(2 * third)),
    )
    const pong = await raw.next()
    expect({ opcode: pong.opcode, data: pong.payload.toString() }).toEqual({ opcode: 10, data: 'between' })
    const echo = await raw.next()
    expect(echo.rsv1).toBe(true)
    expect(inflate(echo.payload).equals(msg)).toBe(true)
  })

  it('keeps the compression history between messages in dedicated mode (context takeover), not in shared mode', async () => {
    const sizes: Record<string, number[]> = {}
    for (const compression of ['dedicated', 'shared'] as const) {
      const server = await echoServer({ compression })
      const raw = await rawConnect(server.port, '/echo', 'permessage-deflate')
      const msg = Buffer.from(json(1024))
      // The client keeps its own history too when allowed: one inflater on
      // each side, as a browser does.
      const client = zlib.createDeflateRaw()
      const inflater = zlib.createInflateRaw()
      const chunks: Buffer[] = []
      inflater.on('data', (d: Buffer) => chunks.push(d))
      const clientTakeover = !raw.extensions.includes('client_no_context_takeover')
      sizes[compression] = []
      for (let i = 0; i < 5; i++) {
        let z: Buffer
        if (clientTakeover) {
          client.write(msg)
          z = await new Promise<Buffer>((r) => client.flush(zlib.constants.Z_SYNC_FLUSH, () => r(client.read() as Buffer)))
          z = z.subarray(0, -4)
        } else {
          z = deflate(msg)
        }
        raw.send(frame(1, z, { rsv1: true }))
        const f = await raw.next()
        expect(f.rsv1).toBe(true)
        sizes[compression].push(f.payload.length)
        chunks.length = 0
        if (compression === 'dedicated') {
          inflater.write(Buffer.concat([f.payload, Buffer.from([0, 0, 0xff, 0xff])]))
          await new Promise<void>((r) => inflater.flush(zlib.constants.Z_SYNC_FLUSH, () => r()))
          expect(Buffer.concat(chunks).equals(msg)).toBe(true)
        } else {
          expect(inflate(f.payload).equals(msg)).toBe(true)
        }
      }
      client.close()
      inflater.close()
    }
    // With history the repeats cost a few bytes; without it every copy costs the same.
    const [d0, ...dRest] = sizes.dedicated as number[]
    for (const n of dRest) expect(n).toBeLessThan((d0 as number) / 4)
    expect(new Set(sizes.shared).size).toBe(1)
  })
})

describe('websocket deflate: limits and bad input', () => {
  it('stops a decompression bomb at maxMessageSize with 1009 and keeps serving', async () => {
    const server = await echoServer({ maxMessageSize: 1024 * 1024 })
    const raw = await rawConnect(server.port, '/echo', 'permessage-deflate')
    // 64 MiB of zeros deflate to about 64 KiB.
    const bomb = deflate(Buffer.alloc(64 * 1024 * 1024))
    expect(bomb.length).toBeLessThan(100_000)
    raw.send(frame(2, bomb, { rsv1: true }))
    const f = await raw.next()
    expect(closeCode(f)).toBe(1009)
    expect(f.payload.subarray(2).toString()).toBe('message too big')
    await until(() => server.stats().websocketsOpen === 0)
    // Exactly at the limit is fine.
    const ok = await rawConnect(server.port, '/echo', 'permessage-deflate')
    ok.send(frame(2, deflate(Buffer.alloc(1024 * 1024, 1)), { rsv1: true }))
    expect(inflate((await ok.next()).payload).length).toBe(1024 * 1024)
  })

  it('closes with 1007 on corrupt compressed data and with 1002 on RSV1 where it does not belong', async () => {
    const server = await echoServer()
    const corrupt = await rawConnect(server.port, '/echo', 'permessage-deflate')
    corrupt.send(frame(1, Buffer.alloc(64, 0xff), { rsv1: true }))
    expect(closeCode(await corrupt.next())).toBe(1007)
    const notAgreed = await rawConnect(server.port, '/echo')
    notAgreed.send(frame(1, deflate(Buffer.from(json(500))), { rsv1: true }))
    expect(closeCode(await notAgreed.next())).toBe(1002)
    const onPing = await rawConnect(server.port, '/echo', 'permessage-deflate')
    onPing.send(frame(9, Buffer.from('x'), { rsv1: true }))
    expect(closeCode(await onPing.next())).toBe(1002)
    const onContinuation = await rawConnect(server.port, '/echo', 'permessage-deflate')
    const z = deflate(Buffer.from(json(500)))
    onContinuation.send(frame(1, z.subarray(0, 10), { fin: false, rsv1: true }), frame(0, z.subarray(10), { rsv1: true }))
    expect(closeCode(await onContinuation.next())).toBe(1002)
    await until(() => server.stats().websocketsOpen === 0)
  })
})

describe('websocket deflate: pub/sub', () => {
  it('delivers a published message compressed to every deflate subscriber and plain to the others', async () => {
    const app = new App()
    app.websocket('/sub', async (ws) => {
      ws.subscribe('news')
      await ws.sendText('ready')
      for await (const _ of ws) void _
    })
    const server = await listen(app)
    servers.push(server)
    const raws = await Promise.all([0, 1, 2].map(() => rawConnect(server.port, '/sub', 'permessage-deflate')))
    const plain = await rawConnect(server.port, '/sub')
    const viaWs = await open(server, '/sub', { perMessageDeflate: true })
    for (const r of [...raws, plain]) expect((await r.next()).payload.toString()).toBe('ready')
    expect((await viaWs.next()).data.toString()).toBe('ready')
    const msg = json(4096)
    expect(app.publish('news', msg)).toBe(5)
    const frames = await Promise.all(raws.map((r) => r.next()))
    for (const f of frames) {
      expect(f.rsv1).toBe(true)
      expect(inflate(f.payload).toString()).toBe(msg)
    }
    // The same compressed bytes for everyone (compressed once).
    expect(new Set(frames.map((f) => f.payload.toString('base64'))).size).toBe(1)
    const p = await plain.next()
    expect({ rsv1: p.rsv1, data: p.payload.toString() }).toEqual({ rsv1: false, data: msg })
    expect((await viaWs.next()).data.toString()).toBe(msg)
  })
})

describe('websocket deflate: a publish is compressed once', () => {
  it('deflates a message published to 24 shared-mode subscribers once, and once per subscriber with dedicated compressors', async () => {
    const app = new App()
    for (const [path, compression] of [['/shared', 'shared'], ['/dedicated', 'dedicated']] as const) {
      app.websocket(
        path,
        async (ws) => {
          ws.subscribe(path.slice(1))
          await ws.sendText('ready')
          for await (const _ of ws) void _
        },
        { compression },
      )
    }
    const server = await listen(app)
    servers.push(server)
    const shared = await Promise.all(Array.from({ length: 24 }, () => rawConnect(server.port, '/shared', 'permessage-deflate')))
    const dedicated = await Promise.all(Array.from({ length: 4 }, () => rawConnect(server.port, '/dedicated', 'permessage-deflate')))
    for (const r of [...shared, ...dedicated]) expect((await r.next()).payload.toString()).toBe('ready')
    const msg = json(2048)
    // Counted once the frames are out: the subscribers' writers compress.
    const deflatedBy = async (topic: string, subs: Raw[]) => {
      const before = native.wsDeflateCount()
      expect(app.publish(topic, msg)).toBe(subs.length)
      for (const f of await Promise.all(subs.map((r) => r.next()))) {
        expect(f.rsv1).toBe(true)
        expect(inflate(f.payload).toString()).toBe(msg)
      }
      return native.wsDeflateCount() - before
    }
    expect(await deflatedBy('shared', shared)).toBe(1)
    // The counter sees every compression: per subscriber here, so a
    // shared publish compressed per subscriber would read 24 above.
    expect(await deflatedBy('dedicated', dedicated)).toBe(4)
  })
})

describe.skipIf(!requireTool('pywebsockets'))('websocket deflate: Python websockets client', () => {
  it('negotiates permessage-deflate by default and echoes compressed text and binary', async () => {
    const server = await echoServer()
    const script = `
import asyncio, json, sys
from websockets.asyncio.client import connect
async def main():
    async with connect(sys.argv[1]) as ws:
        exts = [type(e).__name__ + repr(vars(e)) for e in ws.protocol.extensions]
        text = json.dumps([{"id": i, "text": "hello from python"} for i in range(100)])
        await ws.send(text)
        assert await ws.recv() == text, "text echo"
        data = bytes(range(256)) * 64
        await ws.send(data)
        assert await ws.recv() == data, "binary echo"
        print(json.dumps({"extensions": exts, "header": ws.response.headers.get("Sec-WebSocket-Extensions")}))
asyncio.run(main())
`
    const out = await new Promise<string>((resolve, reject) => {
      const p = spawn('python3', ['-c', script, `ws://127.0.0.1:${server.port}/echo`], { timeout: 20_000 })
      let so = ''
      let se = ''
      p.stdout.on('data', (d: Buffer) => (so += d.toString()))
      p.stderr.on('data', (d: Buffer) => (se += d.toString()))
      p.on('close', (code) => (code === 0 ? resolve(so) : reject(new Error(`python exited ${code}: ${se}`))))
    })
    const r = JSON.parse(out) as { extensions: string[]; header: string }
    expect(r.header).toBe('permessage-deflate; server_no_context_takeover; client_no_context_takeover')
    expect(r.extensions.length).toBe(1)
    expect(r.extensions[0]).toMatch(/PerMessageDeflate/)
  }, 30_000)
})
