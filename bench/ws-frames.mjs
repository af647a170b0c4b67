// The raw WebSocket client pieces the bench load generators share
// (bench/ws-load.mjs, bench/ws-compressed.mjs): an opening handshake on
// node:net, and a frame counter over the bytes that follow it.
import net from 'node:net'
import { randomBytes } from 'node:crypto'

/** Opens a WebSocket on 127.0.0.1:`port`; `offer` is a Sec-WebSocket-Extensions value. */
export function open(port, path, offer) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    s.setNoDelay(true)
    let head = Buffer.alloc(0)
    const onData = (d) => {
      head = Buffer.concat([head, d])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      s.off('data', onData)
      const text = head.subarray(0, end).toString('latin1')
      if (!text.startsWith('HTTP/1.1 101')) return reject(new Error(`no upgrade: ${text.slice(0, 60)}`))
      const agreed = /\r\nsec-websocket-extensions: *([^\r]*)/i.exec(text)?.[1] ?? ''
      resolve({ s, agreed, rest: head.subarray(end + 4) })
    }
    s.on('data', onData)
    s.once('error', reject)
    s.write(
      `GET ${path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
        (offer ? `Sec-WebSocket-Extensions: ${offer}\r\n` : '') +
        '\r\n',
    )
  })
}

/**
 * Calls `onFrames(n, compressed, first)` for the data frames of each read:
 * their count, how many had RSV1, and the first one's flag and payload.
 */
export function counter(onFrames) {
  let pending = Buffer.alloc(0)
  return (d) => {
    const buf = pending.length ? Buffer.concat([pending, d]) : d
    let at = 0
    let n = 0
    let packed = 0
    let first
    for (;;) {
      if (buf.length - at < 2) break
      let len = buf[at + 1] & 0x7f
      let h = 2
      if (len === 126) {
        if (buf.length - at < 4) break
        len = buf.readUInt16BE(at + 2)
        h = 4
      } else if (len === 127) {
        if (buf.length - at < 10) break
        len = Number(buf.readBigUInt64BE(at + 2))
        h = 10
      }
      if (buf.length - at < h + len) break
      if ((buf[at] & 0x0f) <= 2) {
        n++
        if (buf[at] & 0x40) packed++
        first ??= { rsv1: (buf[at] & 0x40) !== 0, payload: buf.subarray(at + h, at + h + len) }
      }
      at += h + len
    }
    pending = at < buf.length ? Buffer.from(buf.subarray(at)) : Buffer.alloc(0)
    if (n) onFrames(n, packed, first)
  }
}
