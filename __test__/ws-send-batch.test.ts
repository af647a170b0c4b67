/**
 * A batch of WebSocket sends the core refuses. The JS side encodes each
 * event-loop turn's small messages into one buffer for `wsSendBatch`; the
 * encoding cannot produce a malformed one, so the test corrupts one on its
 * way into the real native call (cut short by a byte, as a bug in the
 * encoder would). The core's refusal must reach the server's `onError`,
 * naming the call, and must not escape from the `setImmediate` flush as an
 * uncaught exception; the connection and the server keep working.
 */
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { native } from '../ts/native.js'
import { App, type Server } from '../ts/index.js'
import { listen } from './helpers/index.js'
import { until } from './helpers/wait.js'

const proto = native.NativeServer.prototype
const realSendBatch = proto.wsSendBatch
afterEach(() => {
  proto.wsSendBatch = realSendBatch
})

describe('wsSendBatch refused by the core', () => {
  it('goes to onError, not to an uncaught exception, and the server keeps serving', async () => {
    const errors: Array<{ err: unknown; req: unknown }> = []
    const uncaught: unknown[] = []
    const onUncaught = (e: unknown) => uncaught.push(e)
    process.on('uncaughtException', onUncaught)
    const app = new App()
    app.websocket('/echo', async (ws) => {
      for await (const m of ws) if (m.type === 'text') await ws.sendText(m.data)
    })
    let server: Server | undefined
    try {
      server = await listen(app, { onError: (err, req) => void errors.push({ err, req }) })
      let corrupt = 1
      proto.wsSendBatch = function (this: typeof proto, batch: Uint8Array) {
        if (corrupt > 0) {
          corrupt--
          return realSendBatch.call(this, batch.subarray(0, batch.length - 1))
        }
        return realSendBatch.call(this, batch)
      }
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/echo`)
      const got: string[] = []
      ws.on('message', (d) => got.push(d.toString()))
      await new Promise((r, j) => ws.once('open', r).once('error', j))
      ws.send('lost')
      await until(() => errors.length > 0, 5000)
      const { err, req } = errors[0] as { err: Error & { code?: string }; req: unknown }
      expect(err.code).toBe('ERR_HTTPY_INTERNAL')
      expect(err.message).toMatch(/wsSendBatch: truncated payload at byte 0/)
      expect(req).toBeUndefined()
      // The same connection still echoes, and a new one is served.
      ws.send('after')
      await until(() => got.includes('after'), 5000)
      expect(got).toEqual(['after'])
      ws.close()
      const ws2 = new WebSocket(`ws://127.0.0.1:${server.port}/echo`)
      await new Promise((r, j) => ws2.once('open', r).once('error', j))
      ws2.send('second')
      const reply = await new Promise<string>((r) => ws2.once('message', (d) => r(d.toString())))
      expect(reply).toBe('second')
      ws2.close()
      expect(uncaught).toEqual([])
      expect(server.stats().panics).toBe(0)
    } finally {
      process.off('uncaughtException', onUncaught)
      await server?.close()
    }
  })

  it('cuts the run of messages for each connection from one buffer: every payload lands on its own socket, intact', async () => {
    const ids = new Map<string, number>()
    const app = new App()
    app.websocket('/echo', (ws) => {
      ids.set(ws.query.get('name') as string, ws.request._id)
      return ws.onMessage((m) => void (m.type === 'text' ? ws.sendText(m.data) : ws.sendBinary(m.data)))
    })
    const server = await listen(app)
    try {
      let self: unknown
      proto.wsSendBatch = function (this: typeof proto, batch: Uint8Array) {
        self = this
        return realSendBatch.call(this, batch)
      }
      const open = async (name: string) => {
        const ws = new WebSocket(`ws://127.0.0.1:${server.port}/echo?name=${name}`)
        const got: string[] = []
        ws.on('message', (d, binary) => got.push(binary ? `bin:${(d as Buffer).toString('hex')}` : d.toString()))
        await new Promise((r, j) => ws.once('open', r).once('error', j))
        return { ws, got }
      }
      const a = await open('a')
      const b = await open('b')
      a.ws.send('hello')
      await until(() => a.got.length === 1 && self !== undefined, 5000)
      // The batch layout of `WsSendAt`: u8 kind | u32 id | u32 length | payload.
      const msg = (kind: number, id: number, payload: Buffer) => {
        const head = Buffer.alloc(9)
        head[0] = kind
        head.writeUInt32LE(id, 1)
        head.writeUInt32LE(payload.length, 5)
        return Buffer.concat([head, payload])
      }
      const [A, B] = [ids.get('a') as number, ids.get('b') as number]
      const text = (id: number, s: string) => msg(0, id, Buffer.from(s))
      // Runs: a ×3 (text, binary, text), b ×1, a ×1, then b ×2 whose first
      // message is not UTF-8: what precedes the fault is sent, the rest not.
      const parts = [text(A, 'a1'), msg(1, A, Buffer.from([1, 2, 3])), text(A, 'a2 é'), text(B, 'b1'), text(A, ''), text(A, 'a3')]
      const faultAt = Buffer.concat(parts).length
      parts.push(msg(0, B, Buffer.from([0x62, 0xff])), text(B, 'never'))
      expect(() => realSendBatch.call(self as typeof proto, Buffer.concat(parts))).toThrow(
        `wsSendBatch: text message is not UTF-8 at byte ${faultAt}`,
      )
      await until(() => a.got.length === 6 && b.got.length === 1, 5000)
      expect(a.got).toEqual(['hello', 'a1', 'bin:010203', 'a2 é', '', 'a3'])
      b.ws.send('after')
      await until(() => b.got.length === 2, 5000)
      expect(b.got).toEqual(['b1', 'after'])
      a.ws.close()
      b.ws.close()
    } finally {
      await server.close()
    }
  })
})
