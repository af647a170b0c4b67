/**
 * A chat server on several worker processes and, with REDIS_URL, on several
 * servers: a line sent on any connection reaches every member of the room,
 * whichever worker (or machine) holds each connection. Nothing in the app
 * knows about processes: `publish` is fanned out across them by the core
 * (docs/scaling.md).
 *
 *   npx tsx examples/chat-cluster.ts
 *   npx wscat -c ws://127.0.0.1:8080/chat/lobby     # in two terminals; type a line in one
 *   curl 127.0.0.1:8080/rooms/lobby                  # {"room":"lobby","members":2}
 *
 * WORKERS sets the worker count (default 4). REDIS_URL (for example
 * redis://127.0.0.1:6379/0) joins every server started with the same URL;
 * REDIS_DURABLE=1 carries the lines on Redis Streams, so a server whose
 * link to Redis drops gets what was said meanwhile (start every server of
 * the chat the same way).
 */
import { Response, get, publish, run, subscriberCount, websocket } from 'httpy'

websocket('/chat/{room}', async (ws) => {
  const room = ws.pathParams.room ?? 'lobby'
  ws.subscribe(room)
  for await (const msg of ws) {
    if (msg.type === 'text') publish(room, msg.data)
  }
})

// Members of a room in every worker of this server.
get('/rooms/{room}', (req) => {
  const room = req.pathParams.room ?? 'lobby'
  return Response.json({ room, members: subscriberCount(room) })
})

const redis = process.env.REDIS_URL
const durable = process.env.REDIS_DURABLE === '1'
await run({
  host: process.env.HOST ?? '127.0.0.1',
  port: Number(process.env.PORT ?? 8080),
  workers: Number(process.env.WORKERS ?? 4),
  ...(redis ? { pubsub: { redis, durable } } : {}),
})
