// The plain WebSocket echo's server CPU per message, split by thread: the
// same load as the peers kit's ws.sh (its clients/ws-client.js, 64
// connections × 16 text messages of 32 bytes in flight, 2 s of warm-up),
// against HTTPy (bench/servers/peer-ws.mjs, the file ws.sh runs too) or
// uWebSockets.js (the kit's servers/uws-ws.js), in ws.sh's order (uWS
// first). Reads every server thread's user and system time and voluntary
// context switches from /proc/PID/task over the client's measured window,
// so the I/O thread's share and the JavaScript thread's share can be told
// apart.
//
//   node bench/ws-threads.mjs                       # uws, then httpy, 5 s each
//   node bench/ws-threads.mjs '{"servers":["httpy"],"duration":8,"perf":"stat -e syscalls:sys_enter_recvfrom"}'
//
// The window: the client starts its warm-up once its connections are up
// and counts for `duration` seconds after it; this script waits until the
// server's port holds that many established connections, then the warm-up,
// then reads the threads at both ends of `duration` seconds. Beside the
// threads' sum (`usPerMsg`) it prints, from the same window: the server
// process's own total (`processUsPerMsg`, which also holds threads that
// ended), the client's cores, and what the rest of the machine used
// (`otherCores`: all busy CPU minus server and client; `stealCores`: time
// the hypervisor gave elsewhere), and, from the client's own reading of
// the same run, the kit's figure (`kitUsPerMsg`, what ws.sh prints), and
// `probeNs`: the machine's speed just before and after (`speedProbe`).
//
// Needs the peers kit's work folder (PEERS_WORK, default ~/.cache/httpy-peers,
// set up by `bash bench/peers.sh ws`) and a built package. Prints one JSON
// line per server: messages/s, µs/msg of the whole server and of each busy
// thread (user, system), voluntary switches per message, and, with the
// `perf` option (`perf ARGS -p PID -- sleep DURATION` over the measured
// window), perf's output.
import { spawn, execFileSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))
const WORK = process.env.PEERS_WORK || join(homedir(), '.cache', 'httpy-peers')
const o = {
  servers: ['uws', 'httpy'],
  connections: 64,
  window: 16,
  size: 32,
  warmup: 2,
  duration: 5,
  perf: '',
  ...JSON.parse(process.argv[2] ?? '{}'),
}
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim())
const SERVERS = {
  httpy: { port: 38110, cmd: ['node', join(HERE, 'servers', 'peer-ws.mjs')] },
  uws: { port: 38102, cmd: ['node', join(WORK, 'servers', 'uws-ws.js')] },
}

/** user/system ticks and voluntary switches of each thread of `pid`, by thread id. */
function threads(pid) {
  const out = new Map()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const close = stat.lastIndexOf(')')
      const f = stat.slice(close + 2).split(' ')
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')
      out.set(tid, {
        name: stat.slice(stat.indexOf('(') + 1, close),
        user: Number(f[11]),
        sys: Number(f[12]),
        cs: Number(/\nvoluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0),
      })
    } catch {
      // the thread ended meanwhile
    }
  }
  return out
}

/**
 * utime + stime ticks of a whole process (threads that ended included); NaN
 * once it has exited (the client may end its run a little before this
 * script's window does).
 */
function processTicks(pid) {
  let stat
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return NaN
  }
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(f[11]) + Number(f[12])
}

/** The machine's busy and stolen ticks, all CPUs (/proc/stat's first line). */
function machine() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal (guest time is inside user)
  return { busy: f[0] + f[1] + f[2] + f[5] + f[6], steal: f[7] }
}

/** Established TCP connections whose local port is `port` (IPv4). */
function established(port) {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `
  let n = 0
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/)
    if (f[3] === '01' && `${f[1]} `.endsWith(hex)) n++
  }
  return n
}

/**
 * ns per step of a fixed integer loop (best of 3 runs of 2e7 steps, once
 * the loop is optimised): this VM's CPU speed moves by up to 1.7× within a
 * minute with nothing else running in it (the host's load), and every
 * µs/msg moves with it. Printed before and after each server's run, so runs
 * at different speeds can be told apart.
 */
function speedProbe() {
  const loop = (n) => {
    let x = 1
    for (let i = 0; i < n; i++) x = (Math.imul(x, 31) + i) | 0
    return x
  }
  let sink = 0
  for (let k = 0; k < 50; k++) sink ^= loop(1e5)
  let best = Infinity
  for (let k = 0; k < 3; k++) {
    const t = process.hrtime.bigint()
    sink ^= loop(2e7)
    best = Math.min(best, Number(process.hrtime.bigint() - t) / 2e7)
  }
  return sink === 0.5 ? 0 : +best.toFixed(3)
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function waitListening(port) {
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync('curl', ['-s', '-o', '/dev/null', `http://127.0.0.1:${port}/`])
      return
    } catch {
      await sleep(100)
    }
  }
  throw new Error(`nothing listens on ${port}`)
}

async function one(name) {
  const s = SERVERS[name]
  const probeBefore = speedProbe()
  const server = spawn(s.cmd[0], s.cmd.slice(1), {
    cwd: WORK,
    env: { ...process.env, PORT: String(s.port) },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  try {
    await waitListening(s.port)
    const client = spawn(
      'node',
      [
        join(WORK, 'clients', 'ws-client.js'),
        '--port', String(s.port), '--conns', String(o.connections), '--window', String(o.window),
        '--size', String(o.size), '--warmup', String(o.warmup), '--duration', String(o.duration),
        '--server-pid', String(server.pid),
      ],
      { cwd: WORK, stdio: ['ignore', 'pipe', 'inherit'] },
    )
    let text = ''
    client.stdout.on('data', (d) => (text += d))
    const ended = new Promise((r) => client.on('exit', r))
    // The client starts its warm-up when its connections are up (and
    // counts for `duration` s after it): wait for them, then the warm-up.
    // Polled every 5 ms; what is left over is below the scheduler tick.
    const t0 = Date.now()
    while (established(s.port) < o.connections && Date.now() - t0 < 10_000) await sleep(5)
    await sleep(o.warmup * 1000)
    const before = threads(server.pid)
    const p0 = processTicks(server.pid)
    const c0 = processTicks(client.pid)
    const m0 = machine()
    let perfOut = ''
    const perf = o.perf
      ? new Promise((resolve) => {
          const p = spawn('perf', [...o.perf.split(' '), '-p', String(server.pid), '--', 'sleep', String(o.duration)], {
            stdio: ['ignore', 'pipe', 'pipe'],
          })
          p.stdout.on('data', (d) => (perfOut += d))
          p.stderr.on('data', (d) => (perfOut += d))
          p.on('exit', resolve)
        })
      : sleep(o.duration * 1000)
    await perf
    const after = threads(server.pid)
    const p1 = processTicks(server.pid)
    const c1 = processTicks(client.pid)
    const m1 = machine()
    await ended
    const probeAfter = speedProbe()
    const r = Object.fromEntries([...(/RESULT (.*)/.exec(text)?.[1] ?? '').matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]]))
    const msgs = Number(r.msgs_s) * o.duration
    const byThread = {}
    let total = 0
    for (const [tid, a] of after) {
      const b = before.get(tid) ?? { user: 0, sys: 0, cs: 0 }
      const user = ((a.user - b.user) * TICK_US) / msgs
      const sys = ((a.sys - b.sys) * TICK_US) / msgs
      total += user + sys
      if (user + sys < 0.005) continue
      const key = byThread[a.name] ? `${a.name}#${tid}` : a.name
      byThread[key] = { us: +(user + sys).toFixed(3), user: +user.toFixed(3), sys: +sys.toFixed(3), cs: +((a.cs - b.cs) / msgs).toFixed(4) }
    }
    console.log(JSON.stringify({
      server: name,
      at: new Date().toISOString(),
      msgsPerSec: Number(r.msgs_s),
      usPerMsg: +total.toFixed(3),
      processUsPerMsg: +(((p1 - p0) * TICK_US) / msgs).toFixed(3),
      kitUsPerMsg: Number(r.us_msg),
      // null when the client had exited before the window's end
      clientCores: Number.isFinite(c1) ? +(((c1 - c0) * TICK_US) / 1e6 / o.duration).toFixed(2) : null,
      otherCores: Number.isFinite(c1)
        ? +(((m1.busy - m0.busy - (p1 - p0) - (c1 - c0)) * TICK_US) / 1e6 / o.duration).toFixed(2)
        : null,
      stealCores: +(((m1.steal - m0.steal) * TICK_US) / 1e6 / o.duration).toFixed(2),
      probeNs: [probeBefore, probeAfter],
      threads: byThread,
      ...(o.perf ? { messages: msgs, perf: perfOut } : {}),
    }))
  } finally {
    server.kill('SIGTERM')
    await new Promise((r) => (server.exitCode !== null ? r() : server.on('exit', r)))
  }
}

for (const name of o.servers) await one(name)
