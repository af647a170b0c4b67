/**
 * WebSocket heartbeat (guide: "Heartbeat Mechanism"): ping every 30 seconds
 * so proxies and NATs keep an idle connection open, and stop pinging when
 * the connection ends.
 *
 *   npx tsx examples/websocket-heartbeat.ts
 *   npx wscat -c ws://127.0.0.1:8080/ws     # messages are echoed
 *
 * HEARTBEAT_SECONDS overrides the 30-second interval. The route option
 * `websocket(path, handler, { heartbeat: 30 })` does the same natively and
 * also drops a peer that stops answering pings.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { run, websocket, type WebSocketConnection } from 'httpy'

const intervalMs = Number(process.env.HEARTBEAT_SECONDS ?? 30) * 1000

/** Sends a ping every interval until `signal` aborts (the guide's `task.cancel()`). */
async function sendHeartbeat(ws: WebSocketConnection, signal: AbortSignal): Promise<void> {
  try {
    for (;;) {
      await sleep(intervalMs, undefined, { signal })
      if (!ws.closed) await ws.ping(Buffer.from('ping'))
    }
  } catch {
    // Aborted: the handler is done with this connection.
  }
}

websocket('/ws', async (ws: WebSocketConnection) => {
  // Start the heartbeat task.
  const heartbeat = new AbortController()
  const task = sendHeartbeat(ws, heartbeat.signal)
  try {
    for (;;) {
      const msg = await ws.receive() // rejects once the connection is closed
      // Process the message (here: echo it).
      if (msg.type === 'text') await ws.sendText(msg.data)
      else await ws.sendBinary(msg.data)
    }
  } catch (e) {
    console.log(`WebSocket closed: ${(e as Error).message}`)
  } finally {
    // Cancel the heartbeat task.
    heartbeat.abort()
    await task
    if (!ws.closed) await ws.close()
  }
})

const host = process.env.HOST ?? '127.0.0.1'
await run({ host, port: Number(process.env.PORT ?? 8080) })
