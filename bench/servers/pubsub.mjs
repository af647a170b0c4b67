// The server of `npm run bench:pubsub`: every WebSocket on /ws subscribes to
// one topic; GET /publish?n=N publishes N messages of 64 bytes from the
// worker that takes the request; GET /count answers subscriberCount.
// WORKERS, REDIS_URL and REDIS_DURABLE=1 (Redis Streams) choose the mode. Prints `READY {json}` once listening.
import { Response, Supervisor, get, publish, run, subscriberCount, websocket } from '../../dist/index.js'
import { port, ready } from './common.mjs'

const MESSAGE = 'x'.repeat(64)

websocket('/ws', async (ws) => {
  ws.subscribe('bench')
  await ws.sendText('ready')
  for await (const _ of ws) {
    // clients only listen
  }
})
get('/publish', (req) => {
  const n = Number(req.query.get('n') ?? 1)
  for (let i = 0; i < n; i++) publish('bench', MESSAGE)
  return Response.text('ok')
})
get('/count', () => Response.text(String(subscriberCount('bench'))))

const workers = process.env.WORKERS ? Number(process.env.WORKERS) : undefined
const redis = process.env.REDIS_URL
const durable = process.env.REDIS_DURABLE === '1'
// The durable streams keep the whole run (N <= 100000), so no subscriber can
// fall behind the trimming and miss messages.
const pubsub = redis ? { redis, ...(durable ? { durable, maxLen: 100_000 } : {}) } : undefined
const server = await run({ port: port(), quiet: true, workers, pubsub })
if (server instanceof Supervisor || workers === undefined) ready({ port: server.port })
