// `npm run bench:pubsub`: what crossing processes costs a publish. For each
// mode (one process; 2 workers linked by local sockets; 2 workers through a
// local redis-server, by Redis pub/sub and by Redis Streams in the durable
// mode), 256 WebSocket clients (the `ws` package, in this process)
// subscribe to one topic, one worker publishes N messages of 64 bytes in a
// loop, and the clock runs from the request until every client has
// received all N. Prints messages/s (published), deliveries/s (N x 256) and
// µs per published message. A few seconds per mode.
//
//   npm run bench:pubsub              # N = 20000
//   npm run bench:pubsub -- 5000      # another N
//
// `npm run bench` imports `crossProcessRows` for its cross-process rows.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'

const here = dirname(fileURLToPath(import.meta.url))
const CLIENTS = 256

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })

const get = (port, path) =>
  new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = ''
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve(body))
      })
      .on('error', reject)
  })

function startServer(env) {
  const child = spawn(process.execPath, [join(here, 'servers/pubsub.mjs')], {
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (c) => {
      out += c
      const m = /READY (.*)\n/.exec(out)
      if (m) resolve({ child, port: JSON.parse(m[1]).port })
    })
    child.on('exit', (code) => reject(new Error(`server exited with ${code}`)))
  })
}

async function measure(label, env, N) {
  const { child, port } = await startServer(env)
  const clients = []
  let received = 0
  for (let i = 0; i < CLIENTS; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
    await new Promise((resolve, reject) => {
      ws.once('message', () => resolve())
      ws.once('error', reject)
    })
    ws.on('message', () => received++)
    clients.push(ws)
  }
  while (Number(await get(port, '/count')) !== CLIENTS) await new Promise((r) => setTimeout(r, 10))
  const round = async (n) => {
    received = 0
    const t0 = process.hrtime.bigint()
    await get(port, `/publish?n=${n}`)
    // A mode that loses messages must not hang the run: 10 s without a
    // delivery ends it.
    let seen = 0
    let lastProgress = Date.now()
    while (received < n * CLIENTS) {
      await new Promise((r) => setImmediate(r))
      if (received !== seen) [seen, lastProgress] = [received, Date.now()]
      else if (Date.now() - lastProgress > 10_000) throw new Error(`${label}: ${received} of ${n * CLIENTS} deliveries, none for 10 s`)
    }
    return Number(process.hrtime.bigint() - t0) / 1e9
  }
  await round(Math.min(1000, N)) // warm-up
  const seconds = await round(N)
  for (const ws of clients) ws.terminate()
  child.kill('SIGTERM')
  await new Promise((r) => child.once('exit', r))
  const row = {
    mode: label,
    'messages/s': Math.round(N / seconds),
    'deliveries/s': Math.round((N * CLIENTS) / seconds),
    'µs/msg': +((seconds * 1e6) / N).toFixed(2),
  }
  console.log(JSON.stringify(row))
  return row
}

/** Runs `body(url)` with a fresh local redis-server (persistence off), or returns null without one. */
async function withRedis(body) {
  if (spawnSync('redis-server', ['--version']).status !== 0) return null
  const rport = await freePort()
  const redis = spawn('redis-server', ['--port', String(rport), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  })
  await new Promise((r) => setTimeout(r, 300))
  try {
    return await body(`redis://127.0.0.1:${rport}/0`)
  } finally {
    redis.kill('SIGKILL')
  }
}

const NO_REDIS = 'redis-server not found: the Redis rows are skipped (apt-get install redis-server)'

/**
 * The rows of `npm run bench`: 2 workers, 256 subscribers, N messages,
 * over the local links and through Redis (pub/sub).
 */
export async function crossProcessRows(N) {
  const rows = [await measure('2 workers, local sockets', { WORKERS: '2' }, N)]
  const redis = await withRedis((url) => measure('2 workers, through Redis', { WORKERS: '2', REDIS_URL: url }, N))
  if (redis) rows.push(redis)
  else console.log(NO_REDIS)
  return rows
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (!existsSync(join(here, '../dist/index.js'))) {
    console.error('bench:pubsub: dist/ is missing; run `npm run build` first')
    process.exit(2)
  }
  const N = Number(process.argv[2] ?? 20_000)
  const rows = []
  rows.push(await measure('1 process', {}, N))
  rows.push(await measure('2 workers, local sockets', { WORKERS: '2' }, N))
  const redis = await withRedis(async (url) => [
    await measure('2 workers, through Redis', { WORKERS: '2', REDIS_URL: url }, N),
    await measure('2 workers, Redis Streams (durable)', { WORKERS: '2', REDIS_URL: url, REDIS_DURABLE: '1' }, N),
  ])
  if (redis) rows.push(...redis)
  else console.log(NO_REDIS)
  console.log(`\n${N} messages of 64 bytes to ${CLIENTS} subscribers\n`)
  console.table(rows)
}
