// WebSocket with permessage-deflate: HTTPy, uWebSockets.js, `ws` on node
// and Bun.serve (when the peers kit has installed it), each started in turn
// from bench/servers/ws-deflate-*, measured with the same raw client
// (node:net, one process; a full client library would be the bottleneck,
// see docs/websocket.md).
//
//   npm run build && node bench/ws-compressed.mjs
//   node bench/ws-compressed.mjs '{"servers":["httpy","uws"],"duration":8,"mode":"echo"}'
//   node bench/ws-compressed.mjs '{"mode":"pubsub","subscribers":1000,"compression":["on","off"]}'
//
// echo:   `connections` sockets keep `window` messages each in flight on /ws;
//         every message is one of 64 different 1 KB JSON documents, sent
//         compressed (RSV1) as a browser would; every echo received is
//         answered with the next one. Counted: echoes.
// pubsub: `subscribers` sockets on /pubsub; the first one publishes and
//         keeps `window` publishes in flight (its own copy is the ack).
//         Counted: publishes and deliveries. With compression a topic
//         server compresses each publish once; `ws` compresses it once per
//         subscriber: compare the CPU per publish with compression on and off.
// capture: one socket per server sends each of the 64 documents once, one
//         at a time, and keeps the compressed replies: their deflate bytes,
//         the first reply in hex, and which settings of this Node.js's own
//         zlib (level, memLevel; 32 KB window, default strategy, sync flush)
//         give the same bytes for every document. uWebSockets.js calls the
//         zlib of the Node.js that loads it, so a match names its settings.
//
// perf:   "stat -e EVENTS" or "record -g -o FILE": runs `perf ARGS -p PID --
//         sleep DURATION` on the server over exactly the counted window, and
//         adds its output and the message count to the row (counting malloc
//         uprobes per message, or a profile of the echo).
//
// HTTPy's server also answers GET /deflates with the messages it has
// deflated so far: read at both ends of the counted window, it gives
// `deflatesPerPublish` (pubsub; 1 when a publish is compressed once for all
// its subscribers) and `deflatesPerMessage` (echo).
//
// Reported per server: messages/s, server CPU µs per message (user + system
// time of the server's process from /proc/PID/stat over the counted
// window), bytes on the wire per message server → client and client →
// server (WebSocket frames, without TCP/IP headers), the share of replies
// that came compressed, and the CPU µs per message of each server thread by
// name (`threadUsPerMessage`, /proc/PID/task: `node` is the JavaScript
// thread, `httpy-io` HTTPy's I/O threads; `NAME:sys` is the kernel's part
// of a thread's figure). The offer is `permessage-deflate;
// server_no_context_takeover; client_no_context_takeover` (every message
// compressed on its own: uWS's SHARED_COMPRESSOR, HTTPy's 'shared'); set
// "offer" to try another.
import { spawn, execFileSync } from 'node:child_process'
import http from 'node:http'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import zlib from 'node:zlib'
import { counter, open } from './ws-frames.mjs'

const here = dirname(fileURLToPath(import.meta.url))
// Bun from the peers kit's work folder (see bench/servers/ws-deflate-bun.mjs).
const BUN = join(process.env.PEERS_WORK || join(homedir(), '.cache', 'httpy-peers'), 'node_modules', 'bun', 'bin', 'bun.exe')
const o = {
  servers: ['httpy', 'uws', 'ws-node', ...(existsSync(BUN) ? ['bun'] : [])],
  mode: 'echo',
  compression: ['on'],
  connections: 32,
  window: 8,
  subscribers: 1000,
  duration: 8,
  warmup: 1,
  offer: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
  ...JSON.parse(process.argv[2] ?? '{}'),
}

const SERVERS = {
  httpy: { port: 38120, cmd: ['node', join(here, 'servers', 'ws-deflate-httpy.mjs')] },
  uws: { port: 38121, cmd: ['node', join(here, 'servers', 'ws-deflate-uws.cjs')] },
  'ws-node': { port: 38122, cmd: ['node', join(here, 'servers', 'ws-deflate-node.cjs')] },
  bun: { port: 38123, cmd: [BUN, join(here, 'servers', 'ws-deflate-bun.mjs')] },
}
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim())

/** 64 different chat-like JSON documents of exactly 1,024 bytes. */
const DOCS = Array.from({ length: 64 }, (_, d) => {
  const items = []
  for (let i = 0; JSON.stringify(items).length < 1100; i++) {
    items.push({ id: d * 100 + i, user: `user${(d + i) % 13}`, room: `room-${d % 5}`, text: i % 3 ? 'hello from the dashboard' : `status ${d}/${i} ok`, ts: 1765000000 + d * 60 + i })
  }
  return Buffer.from(JSON.stringify(items).slice(0, 1023) + ']')
})

/** A masked client frame (payload < 64 KiB), mask fixed: the server does not care. */
function frame(payload, rsv1) {
  const key = Buffer.from([0x12, 0x34, 0x56, 0x78])
  const head = payload.length < 126 ? Buffer.from([rsv1 ? 0xc1 : 0x81, 0x80 | payload.length]) : Buffer.from([rsv1 ? 0xc1 : 0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff])
  const body = Buffer.from(payload)
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3]
  return Buffer.concat([head, key, body])
}
const deflate = (b) => zlib.deflateRawSync(b, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4)
const PLAIN = DOCS.map((d) => frame(d, false))
// Compressed once here: with client_no_context_takeover every message stands alone.
const PACKED = DOCS.map((d) => frame(deflate(d), true))

/** HTTPy's count of deflated messages (GET /deflates), or null elsewhere. */
function deflates(port) {
  return new Promise((resolve) => {
    http
      .get({ host: '127.0.0.1', port, path: '/deflates', agent: false }, (res) => {
        let body = ''
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve(res.statusCode === 200 && /^\d+$/.test(body) ? Number(body) : null))
      })
      .on('error', () => resolve(null))
  })
}

/** User + system CPU ticks of `pid` (or of one of its threads); `sys` = system only. */
function cpuTicks(pid, task = '', sys = false) {
  const stat = readFileSync(`/proc/${pid}${task}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (sys ? 0 : Number(f[11])) + Number(f[12])
}

/** CPU ticks of each thread of `pid`, summed by thread name (`node` is the
 * JS thread), and under `NAME:sys` the system (kernel) part of them. */
function threadTicks(pid) {
  const by = {}
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim().replace(/[-_ ]?\d+$/, '')
      by[comm] = (by[comm] ?? 0) + cpuTicks(pid, `/task/${t}`)
      by[`${comm}:sys`] = (by[`${comm}:sys`] ?? 0) + cpuTicks(pid, `/task/${t}`, true)
    } catch {
      // the thread ended meanwhile
    }
  }
  return by
}

async function start(name, compression) {
  const { port, cmd } = SERVERS[name]
  const child = spawn(cmd[0], cmd.slice(1), { env: { ...process.env, PORT: String(port), WS_COMPRESSION: compression === 'on' ? (process.env.WS_COMPRESSION ?? 'shared') : 'off' }, stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} did not start`)), 15_000)
    child.stdout.on('data', (d) => {
      if (/listening/.test(String(d))) {
        clearTimeout(t)
        resolve()
      }
    })
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)))
  })
  return {
    child,
    port,
    async stop() {
      if (child.exitCode !== null) return
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 3000)
      await exited
      clearTimeout(t)
    },
  }
}

/** Opens `n` sockets, at most 100 handshakes at a time. */
async function openMany(port, path, n, offer) {
  const out = []
  for (let i = 0; i < n; i += 100) out.push(...(await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => open(port, path, offer)))))
  return out
}

async function run(name, compression) {
  const server = await start(name, compression)
  const offer = compression === 'on' ? o.offer : ''
  const st = { counting: false, msgs: 0, publishes: 0, packed: 0, rx: 0, tx: 0, errors: 0 }
  let agreed = ''
  let checked = false
  const check = (first) => {
    // The first reply must be one of the documents, compressed or not.
    if (checked || !first) return
    checked = true
    const data = first.rsv1 ? zlib.inflateRawSync(Buffer.concat([first.payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: zlib.constants.Z_SYNC_FLUSH }) : first.payload
    if (!DOCS.some((d) => d.equals(data))) throw new Error(`${name}: a reply is not one of the documents sent`)
  }
  /** Counts what `s` receives, then calls `then(n)` with its data frames. */
  const listen = (s, then) => {
    s.on('error', () => st.errors++)
    s.on('data', (d) => {
      if (st.counting) st.rx += d.length
    })
    s.on('data', counter((n, packed, first) => {
      check(first)
      if (st.counting) {
        st.msgs += n
        st.packed += packed
      }
      then(n)
    }))
  }
  let socks
  let next = 0
  const send = (s, n, useDeflate) => {
    const frames = []
    for (let i = 0; i < n; i++) frames.push((useDeflate ? PACKED : PLAIN)[next++ & 63])
    const b = frames.length === 1 ? frames[0] : Buffer.concat(frames)
    if (st.counting) st.tx += b.length
    s.write(b)
  }
  if (o.mode === 'echo') {
    socks = await openMany(server.port, '/ws', o.connections, offer)
    agreed = socks[0].agreed
    for (const { s, agreed: a } of socks) {
      const useDeflate = a.includes('permessage-deflate')
      listen(s, (n) => send(s, n, useDeflate))
      send(s, o.window, useDeflate)
    }
  } else {
    socks = await openMany(server.port, '/pubsub', o.subscribers, offer)
    agreed = socks[0].agreed
    const pub = socks[0]
    const useDeflate = pub.agreed.includes('permessage-deflate')
    socks.forEach(({ s }, i) => {
      listen(s, (n) => {
        if (i !== 0) return
        if (st.counting) st.publishes += n
        send(pub.s, n, useDeflate)
      })
    })
    // Subscriptions are made as the handlers start.
    await new Promise((r) => setTimeout(r, 500))
    send(pub.s, o.window, useDeflate)
  }
  await new Promise((r) => setTimeout(r, o.warmup * 1000))
  const d0 = name === 'httpy' ? await deflates(server.port) : null
  const c0 = cpuTicks(server.child.pid)
  const t0Threads = threadTicks(server.child.pid)
  st.counting = true
  const t0 = performance.now()
  let perfOut = ''
  if (o.perf) {
    // `perf stat ...` or `perf record ...` on the server for exactly the
    // counted window (e.g. malloc uprobes: allocations per message).
    const args = [...o.perf.split(' '), '-p', String(server.child.pid), '--', 'sleep', String(o.duration)]
    perfOut = await new Promise((resolve) => {
      const p = spawn('perf', args, { stdio: ['ignore', 'pipe', 'pipe'] })
      let text = ''
      p.stdout.on('data', (d) => (text += d))
      p.stderr.on('data', (d) => (text += d))
      p.once('exit', () => resolve(text))
    })
  } else {
    await new Promise((r) => setTimeout(r, o.duration * 1000))
  }
  st.counting = false
  const secs = (performance.now() - t0) / 1000
  const cpuUs = (cpuTicks(server.child.pid) - c0) * TICK_US
  const t1Threads = threadTicks(server.child.pid)
  const d1 = d0 === null ? null : await deflates(server.port)
  const threads = {}
  for (const [comm, ticks] of Object.entries(t1Threads)) {
    const us = ((ticks - (t0Threads[comm] ?? 0)) * TICK_US) / Math.max(1, st.msgs)
    if (us >= 0.005) threads[comm] = +us.toFixed(2)
  }
  for (const { s } of socks) s.destroy()
  await server.stop()
  const sent = o.mode === 'echo' ? st.msgs : st.publishes
  return {
    server: name,
    mode: o.mode,
    compression,
    agreed,
    messagesPerSecond: Math.round(st.msgs / secs),
    ...(o.mode === 'pubsub' ? { subscribers: o.subscribers, publishesPerSecond: Math.round(st.publishes / secs), cpuUsPerPublish: +(cpuUs / Math.max(1, st.publishes)).toFixed(1) } : {}),
    cpuUsPerMessage: +(cpuUs / Math.max(1, st.msgs)).toFixed(2),
    serverCores: +(cpuUs / 1e6 / secs).toFixed(2),
    bytesPerMessageToClient: +(st.rx / Math.max(1, st.msgs)).toFixed(1),
    bytesPerMessageToServer: +(st.tx / Math.max(1, sent)).toFixed(1),
    compressedShare: +(st.packed / Math.max(1, st.msgs)).toFixed(3),
    ...(d1 === null || d0 === null
      ? {}
      : o.mode === 'pubsub'
        ? { deflatesPerPublish: +((d1 - d0) / Math.max(1, st.publishes)).toFixed(3) }
        : { deflatesPerMessage: +((d1 - d0) / Math.max(1, st.msgs)).toFixed(3) }),
    threadUsPerMessage: threads,
    errors: st.errors,
    ...(o.perf ? { messages: st.msgs, perf: perfOut } : {}),
  }
}

/** The replies of `name` to each document, in order (mode `capture`). */
async function capture(name) {
  const server = await start(name, 'on')
  try {
    const { s, agreed, rest } = await open(server.port, '/ws', o.offer)
    if (!agreed.includes('permessage-deflate')) throw new Error(`${name}: compression not agreed`)
    const replies = []
    let wake = () => {}
    const take = counter((n, packed, first) => {
      replies.push(first)
      wake()
    })
    s.on('data', take)
    if (rest.length) take(rest)
    for (let i = 0; i < 64; i++) {
      const got = new Promise((r) => (wake = r))
      s.write(PACKED[i])
      await got
    }
    s.destroy()
    return replies
  } finally {
    await server.stop()
  }
}

if (o.mode === 'capture') {
  const zlibRaw = (d, level, memLevel) => zlib.deflateRawSync(d, { level, memLevel, windowBits: 15, finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4)
  const grid = []
  for (let level = 1; level <= 9; level++) for (let memLevel = 1; memLevel <= 9; memLevel++) grid.push({ level, memLevel, out: DOCS.map((d) => zlibRaw(d, level, memLevel)) })
  console.log(`node ${process.version}, zlib ${process.versions.zlib}`)
  for (const name of o.servers) {
    try {
      const replies = await capture(name)
      if (replies.some((r) => !r.rsv1)) throw new Error(`${name}: a reply came uncompressed`)
      const sizes = replies.map((r) => r.payload.length)
      const same = grid.filter((g) => g.out.every((b, i) => b.equals(replies[i].payload))).map((g) => `level ${g.level} memLevel ${g.memLevel}`)
      const mean = sizes.reduce((a, b) => a + b, 0) / 64
      console.log(JSON.stringify({ server: name, deflateBytesPerMessage: +mean.toFixed(2), wireBytesPerMessage: +(mean + 4).toFixed(2), firstReply: replies[0].payload.toString('hex'), sameAsNodeZlib: same }))
    } catch (e) {
      console.log(JSON.stringify({ server: name, error: String(e.message ?? e) }))
    }
  }
  process.exit(0)
}

const rows = []
for (const compression of o.compression) {
  for (const name of o.servers) {
    try {
      const r = await run(name, compression)
      rows.push(r)
      process.stdout.write(`${JSON.stringify(r)}\n`)
    } catch (e) {
      process.stdout.write(`${JSON.stringify({ server: name, compression, error: String(e.message ?? e) })}\n`)
    }
  }
}
console.log('\nserver     compression  msgs/s    µs/msg  cores  B/msg→client  B/msg→server  compressed' + (o.mode === 'pubsub' ? '  µs/publish' : ''))
for (const r of rows) {
  console.log(
    `${r.server.padEnd(10)} ${r.compression.padEnd(12)} ${String(r.messagesPerSecond).padStart(8)}  ${String(r.cpuUsPerMessage).padStart(6)}  ${String(r.serverCores).padStart(5)}  ${String(r.bytesPerMessageToClient).padStart(12)}  ${String(r.bytesPerMessageToServer).padStart(12)}  ${String(r.compressedShare).padStart(10)}` +
      (o.mode === 'pubsub' ? `  ${String(r.cpuUsPerPublish).padStart(10)}` : ''),
  )
}
process.exit(0)
