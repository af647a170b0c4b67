/**
 * Binary WebSocket messages (guide: "Binary Messages"): a fixed binary
 * layout instead of JSON text. The guide uses MessagePack; a hand-written
 * layout needs no dependency and shows the same idea (with
 * `npm install @msgpack/msgpack`, `encode(data)` gives you MessagePack).
 *
 *   npx tsx examples/websocket-binary.ts
 *
 * Send any message to `/ws`; the reply is one binary message: u32 count,
 * then per reading a f64 timestamp (ms) and a f64 value, little-endian.
 */
import { run, websocket, type WebSocketConnection } from 'httpy'

interface Reading {
  at: number
  value: number
}

/** Serialises readings into 4 + 16·n bytes (JSON would need about 40·n). */
function pack(readings: readonly Reading[]): Buffer {
  const buf = Buffer.allocUnsafe(4 + 16 * readings.length)
  buf.writeUInt32LE(readings.length, 0)
  readings.forEach((r, i) => {
    buf.writeDoubleLE(r.at, 4 + 16 * i)
    buf.writeDoubleLE(r.value, 12 + 16 * i)
  })
  return buf
}

websocket('/ws', async (ws: WebSocketConnection) => {
  for await (const _msg of ws) {
    const now = Date.now()
    const data = Array.from({ length: 100 }, (_, i) => ({ at: now - i * 1000, value: Math.sin(i / 10) }))
    // Send as a binary message.
    await ws.sendBinary(pack(data))
  }
})

const host = process.env.HOST ?? '127.0.0.1'
await run({ host, port: Number(process.env.PORT ?? 8080) })
