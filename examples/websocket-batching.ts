/**
 * WebSocket message batching (guide: "Message Batching"): one message
 * carrying many items instead of one message per item — one frame, one
 * syscall, one JSON parse on the other side.
 *
 *   npx tsx examples/websocket-batching.ts
 *   npx wscat -c ws://127.0.0.1:8080/ws    # then type: 50
 *
 * Send a number n; the reply is one text message holding n items.
 * `/ws/unbatched` answers the same with n separate messages, for comparison.
 */
import { run, websocket, type WebSocketConnection } from 'httpy'

function makeItems(n: number): { id: number; value: string }[] {
  return Array.from({ length: n }, (_, i) => ({ id: i, value: `item ${i}` }))
}

function count(data: string): number {
  const n = Number.parseInt(data, 10)
  return Number.isInteger(n) && n >= 0 && n <= 100_000 ? n : 0
}

// Batch messages: one send for all items.
websocket('/ws', async (ws: WebSocketConnection) => {
  for await (const msg of ws) {
    if (msg.type !== 'text') continue
    await ws.sendText(JSON.stringify(makeItems(count(msg.data))))
  }
})

// Instead of sending many small messages (inefficient; kept for comparison).
websocket('/ws/unbatched', async (ws: WebSocketConnection) => {
  for await (const msg of ws) {
    if (msg.type !== 'text') continue
    for (const item of makeItems(count(msg.data))) await ws.sendText(JSON.stringify(item))
  }
})

const host = process.env.HOST ?? '127.0.0.1'
await run({ host, port: Number(process.env.PORT ?? 8080) })
