// WebSocket load for `npm run bench`, in one process, over raw RFC 6455
// frames on node:net (a full client library would be the bottleneck).
//
//   node bench/ws-load.mjs '{"port":8080,"mode":"echo","connections":64,"window":16,"size":32,"duration":5,"warmup":1}'
//
// echo:   every connection keeps `window` text messages of `size` bytes in
//         flight on /ws; each echo received is answered by a new message.
//         Counted: echoes received.
// fanout: `connections` subscribers on /pubsub; one of them also publishes,
//         keeping `window` messages in flight (its own copy of a message
//         is its acknowledgement). Counted: messages delivered to all
//         subscribers together.
// Prints one JSON line: { requestsPerSecond, totalRequests, duration, errors }.
import { randomBytes } from 'node:crypto'
import { counter, open as openAt } from './ws-frames.mjs'

const o = { port: 0, mode: 'echo', connections: 64, window: 16, size: 32, duration: 5, warmup: 1, ...JSON.parse(process.argv[2] ?? '{}') }

/** One masked text frame (payload < 126 bytes). */
function textFrame(payload) {
  const key = randomBytes(4)
  const body = Buffer.from(payload)
  for (let i = 0; i < body.length; i++) body[i] ^= key[i % 4]
  return Buffer.concat([Buffer.from([0x81, 0x80 | body.length]), key, body])
}

const open = (path) => openAt(o.port, path)

let counting = false
let count = 0
let errors = 0
const frame = textFrame('x'.repeat(Math.min(o.size, 125)))
const burst = (n) => (n === 1 ? frame : Buffer.concat(Array(n).fill(frame)))

if (o.mode === 'echo') {
  const conns = await Promise.all(Array.from({ length: o.connections }, () => open('/ws')))
  for (const { s } of conns) {
    s.on('error', () => errors++)
    s.on('data', counter((n) => {
      if (counting) count += n
      s.write(burst(n))
    }))
    s.write(burst(o.window))
  }
} else {
  const subs = await Promise.all(Array.from({ length: o.connections }, () => open('/pubsub')))
  const pub = subs[0].s
  subs.forEach(({ s }, i) => {
    s.on('error', () => errors++)
    s.on('data', counter((n) => {
      if (counting) count += n
      if (i === 0) pub.write(burst(n))
    }))
  })
  // Subscriptions are made when the handler starts: give them a moment.
  await new Promise((r) => setTimeout(r, 200))
  pub.write(burst(o.window))
}

await new Promise((r) => setTimeout(r, o.warmup * 1000))
counting = true
const t0 = performance.now()
await new Promise((r) => setTimeout(r, o.duration * 1000))
counting = false
const secs = (performance.now() - t0) / 1000
process.stdout.write(`${JSON.stringify({ requestsPerSecond: count / secs, totalRequests: count, duration: secs, errors, statusCounts: {} })}\n`)
process.exit(0)
