/**
 * WebSocket helpers: an echo route (text back as text, binary as binary),
 * the peer every conformance and compression test talks to; and a raw
 * client's pieces (masked frames, permessage-deflate, a frame parser) for
 * tests that look at the frames themselves.
 */
import zlib from 'node:zlib'
import type { App, WebSocketOptions } from '../../ts/index.js'

export function echoWebSocket(app: App, path: string, opts: WebSocketOptions = {}): void {
  app.websocket(
    path,
    (ws) =>
      ws.onMessage((m) => {
        if (m.type === 'text') void ws.sendText(m.data)
        else void ws.sendBinary(m.data)
      }),
    opts,
  )
}

/** One WebSocket frame as it is on the wire (after the mask, if any). */
export interface WireFrame {
  fin: boolean
  rsv1: boolean
  opcode: number
  payload: Buffer
}

/** A masked client frame (any size). */
export function wsFrame(opcode: number, payload: Buffer, o: { fin?: boolean; rsv1?: boolean } = {}): Buffer {
  const { fin = true, rsv1 = false } = o
  const len = payload.length
  const head = [(fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode]
  if (len < 126) head.push(0x80 | len)
  else if (len < 65536) head.push(0x80 | 126, len >> 8, len & 0xff)
  else {
    head.push(0x80 | 127)
    const l = Buffer.alloc(8)
    l.writeBigUInt64BE(BigInt(len))
    head.push(...l)
  }
  const key = Buffer.from([9, 8, 7, 6])
  const body = Buffer.alloc(len)
  for (let i = 0; i < len; i++) body[i] = (payload[i] as number) ^ (key[i & 3] as number)
  return Buffer.concat([Buffer.from(head), key, body])
}

/** A close frame's payload: the code, then the reason. */
export function closePayload(code: number, reason = ''): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(code)
  return Buffer.concat([b, Buffer.from(reason)])
}

/** RFC 7692 section 7.2.1: raw deflate, sync flush, tail removed. */
export function deflateMessage(data: Buffer): Buffer {
  const z = zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH })
  if (!z.subarray(-4).equals(Buffer.from([0, 0, 0xff, 0xff]))) throw new Error('deflate: no sync flush tail')
  return z.subarray(0, -4)
}

export function inflateMessage(data: Buffer): Buffer {
  return zlib.inflateRawSync(Buffer.concat([data, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: zlib.constants.Z_SYNC_FLUSH })
}

/**
 * Parses the server's (unmasked) frames out of the bytes pushed into it,
 * whatever the transport: a TCP socket or an HTTP/2 stream.
 */
export class FrameReader {
  #buf: Buffer = Buffer.alloc(0)
  #wake: (() => void) | undefined
  #ended = false
  /** Bytes pushed so far. */
  total = 0

  push(d: Buffer): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d
    this.total += d.length
    this.#wake?.()
  }

  /** The transport ended: `next()` rejects once the buffer is used up. */
  end(): void {
    this.#ended = true
    this.#wake?.()
  }

  get ended(): boolean {
    return this.#ended
  }

  async next(): Promise<WireFrame> {
    for (;;) {
      const buf = this.#buf
      if (buf.length >= 2) {
        let len = (buf[1] as number) & 0x7f
        let o = 2
        if (len === 126) {
          if (buf.length < 4) len = -1
          else {
            len = buf.readUInt16BE(2)
            o = 4
          }
        } else if (len === 127) {
          if (buf.length < 10) len = -1
          else {
            len = Number(buf.readBigUInt64BE(2))
            o = 10
          }
        }
        if (len >= 0 && buf.length >= o + len) {
          const b0 = buf[0] as number
          const f = { fin: (b0 & 0x80) !== 0, rsv1: (b0 & 0x40) !== 0, opcode: b0 & 0x0f, payload: buf.subarray(o, o + len) }
          this.#buf = buf.subarray(o + len)
          return f
        }
      }
      if (this.#ended) throw new Error('the transport ended')
      await new Promise<void>((r) => (this.#wake = r))
    }
  }
}
