// Server CPU per request, split by thread: where a JS-handled request costs
// more than one answered in Rust. Starts one of the peers-kit servers
// (bench/servers/peer.mjs: JS handlers, or peer-native.mjs: the route cache)
// on 127.0.0.1, loads it with wrk for a few seconds after a warm-up, and
// reads each thread's user and system time from /proc/PID/task/*/stat
// before and after.
//
//   node bench/threads.mjs                      # JS handlers, /plaintext, 5 s
//   node bench/threads.mjs --native --route /users/42 --seconds 8 --conns 64
//   node bench/threads.mjs --server peer-hono.mjs   # any file of bench/servers
//   node bench/threads.mjs --h2c                # h2load, h2c prior knowledge, -m 10
//   node bench/threads.mjs --server httpy.mjs --route /100k --conns 16
//                                               # `npm run bench`'s 100 KB row (node-http.mjs:
//                                               # node:http; /static/100k.bin: the native file route)
//   node bench/threads.mjs --server ../other/checkout/bench/servers/httpy.mjs
//                                               # a path with a slash: another checkout's server
//   node bench/threads.mjs --hono --route /json --rounds 3 --gc
//       # HTTPy's own API (peer.mjs) and the kit's Hono app (peer-hono.mjs)
//       # alternated, one line per run and the medians; --compare a.mjs,b.mjs
//       # alternates any servers; --gc also counts the V8 collections
//
// Needs the built package (`npm run build`; a release build for numbers)
// and wrk (h2load for --h2c). Prints one row per busy thread (µs of CPU per request, user and
// system), the total, and the load generator's own CPU per request (it
// shares the cores: req/s on two cores is bounded by server + client).
import { spawn, execFileSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))
const GC_COUNT = join(HERE, 'servers', 'gc-count.mjs')
const args = process.argv.slice(2)
const flag = (name) => args.includes(name)
const opt = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : dflt
}
if (flag('--help') || flag('-h')) {
  console.log(
    'usage: node bench/threads.mjs [--native | --server FILE | --hono | --compare A,B[,…] [--rounds 3]] [--gc] [--route /plaintext] [--seconds 5] [--conns 64] [--port 38020] [--h2c [--streams 10]]',
  )
  process.exit(0)
}
const native = flag('--native')
const serverFile = opt('--server', native ? 'peer-native.mjs' : 'peer.mjs')
const compare = flag('--hono') ? ['peer.mjs', 'peer-hono.mjs'] : opt('--compare', '').split(',').filter(Boolean)
const rounds = Number(opt('--rounds', '3'))
const gc = flag('--gc')
const route = opt('--route', '/plaintext')
const seconds = Number(opt('--seconds', '5'))
const conns = Number(opt('--conns', '64'))
const port = Number(opt('--port', '38020'))
const h2c = flag('--h2c')
const streams = Number(opt('--streams', '10'))
/** A server file of bench/servers, or a path (with a slash) to one elsewhere. */
const serverPath = (file) => (file.includes('/') ? resolve(file) : join(HERE, 'servers', file))
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim())

/** User and system CPU (µs) of this process's finished children: the load generator's. */
function children() {
  const stat = readFileSync('/proc/self/stat', 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { user: Number(f[13]) * TICK_US, sys: Number(f[14]) * TICK_US }
}

/** utime and stime (µs) of every thread of `pid`, by thread id. */
function threads(pid) {
  const out = new Map()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    } catch {
      continue // the thread ended
    }
    const close = stat.lastIndexOf(')')
    const name = stat.slice(stat.indexOf('(') + 1, close)
    const f = stat.slice(close + 2).split(' ')
    let cs = 0
    try {
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')
      cs = Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0)
    } catch {
      // the thread ended
    }
    out.set(tid, { name, user: Number(f[11]) * TICK_US, sys: Number(f[12]) * TICK_US, cs })
  }
  return out
}

function load(secs, at) {
  return h2c ? h2load(secs, at) : wrk(secs, at)
}

/** h2c with prior knowledge, `streams` requests in flight per connection (as the peers kit's h2c row). */
function h2load(secs, at) {
  const out = execFileSync('h2load', ['-D', String(secs), '-c', String(conns), '-m', String(streams), `http://127.0.0.1:${at}${route}`], {
    timeout: (secs + 30) * 1000,
  }).toString()
  const m = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out)
  const ok = /status codes: (\d+) 2xx/.exec(out)
  if (!m || !ok) throw new Error(`cannot read h2load's output:\n${out}`)
  // In a timed run the streams still open at the end are "started", not "done".
  if (m[1] !== m[2] || m[3] !== '0' || m[4] !== '0' || ok[1] !== m[2]) throw new Error(`h2load saw errors:\n${out}`)
  return Number(m[2])
}

function wrk(secs, at) {
  const out = execFileSync('wrk', ['-t1', `-c${conns}`, `-d${secs}s`, `http://127.0.0.1:${at}${route}`], {
    timeout: (secs + 30) * 1000,
  }).toString()
  const m = /(\d+) requests in/.exec(out)
  if (!m) throw new Error(`cannot read wrk's output:\n${out}`)
  if (/Non-2xx/.test(out)) throw new Error(`wrk saw errors:\n${out}`)
  return Number(m[1])
}

/** One server's run: CPU per request by thread (and, with --gc, V8's collections). */
async function measure(file, at) {
  const server = spawn(process.execPath, [...(gc ? ['--import', GC_COUNT] : []), serverPath(file)], {
    env: { ...process.env, PORT: String(at) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const stop = () => server.kill('SIGKILL')
  process.on('exit', stop)
  /** With --gc: the server's collections so far, asked for with SIGUSR2 (`servers/gc-count.mjs`). */
  let gcReply = () => {}
  const gcNow = () =>
    new Promise((resolve) => {
      gcReply = resolve
      server.kill('SIGUSR2')
    })
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('server did not start in 20 s')), 20_000)
    server.stdout.on('data', (c) => {
      const text = c.toString()
      const gcLine = /GC (\d+) (\d+) ([\d.]+)/.exec(text)
      if (gcLine) gcReply({ scavenges: Number(gcLine[1]), marks: Number(gcLine[2]), ms: Number(gcLine[3]) })
      if (/listening|READY/.test(text)) {
        clearTimeout(t)
        resolve()
      }
    })
    server.on('exit', (code) => reject(new Error(`server exited with ${code}`)))
  })
  load(2, at) // warm-up: JIT, connection setup, caches
  const gc0 = gc ? await gcNow() : undefined
  const before = threads(server.pid)
  const clientBefore = children()
  const n = load(seconds, at)
  const after = threads(server.pid)
  const clientAfter = children()
  const client = { user: (clientAfter.user - clientBefore.user) / n, sys: (clientAfter.sys - clientBefore.sys) / n }
  const gc1 = gc ? await gcNow() : undefined
  const collections =
    gc0 && gc1 ? { scavenges: gc1.scavenges - gc0.scavenges, marks: gc1.marks - gc0.marks, ms: gc1.ms - gc0.ms } : { scavenges: 0, marks: 0, ms: 0 }
  server.removeAllListeners('exit')
  stop()
  await new Promise((r) => server.once('close', r))
  process.off('exit', stop)
  const rows = []
  for (const [tid, a] of after) {
    const b = before.get(tid) ?? { user: 0, sys: 0, cs: 0 }
    rows.push({ name: a.name, main: tid === String(server.pid), user: (a.user - b.user) / n, sys: (a.sys - b.sys) / n, cs: (a.cs - b.cs) / n })
  }
  return { file, n, rows, collections, client }
}

const tool = h2c ? `h2load -c${conns} -m${streams} (h2c)` : `wrk -t1 -c${conns}`
const sum = (rows, pick = () => true) => rows.filter(pick).reduce((t, r) => t + r.user + r.sys, 0)
// The JS thread is the process's main thread (V8's helper threads bear its name too).
const jsThread = (r) => r.main
const ioThread = (r) => r.name.startsWith('httpy-io')

if (compare.length === 0) {
  const { n, rows, collections, client } = await measure(serverFile, port)
  console.log(`# ${serverFile} ${route}: ${n} requests in ${seconds} s (${Math.round(n / seconds)} req/s), ${tool}`)
  console.log('thread            user_us  sys_us  total_us  sleeps/req   (CPU per request; sleeps = voluntary context switches)')
  let user = 0
  let sys = 0
  for (const r of rows) {
    user += r.user
    sys += r.sys
    if (r.user + r.sys >= 0.05) {
      console.log(`${r.name.padEnd(16)} ${r.user.toFixed(2).padStart(8)} ${r.sys.toFixed(2).padStart(7)} ${(r.user + r.sys).toFixed(2).padStart(9)} ${r.cs.toFixed(3).padStart(11)}`)
    }
  }
  console.log(`${'all threads'.padEnd(16)} ${user.toFixed(2).padStart(8)} ${sys.toFixed(2).padStart(7)} ${(user + sys).toFixed(2).padStart(9)}`)
  const c = client
  console.log(`${'client (load)'.padEnd(16)} ${c.user.toFixed(2).padStart(8)} ${c.sys.toFixed(2).padStart(7)} ${(c.user + c.sys).toFixed(2).padStart(9)}`)
  if (gc) console.log(gcLine(collections, n))
} else {
  // Alternated runs, each server on a port of its own (a killed server's
  // port may not be free again at once).
  console.log(`# ${compare.join(' / ')} alternated, ${rounds} rounds, ${route}, ${seconds} s each, ${tool}; µs of CPU per request`)
  console.log(`${'server'.padEnd(22)} ${'req/s'.padStart(7)} ${'JS'.padStart(6)} ${'I/O'.padStart(6)} ${'all'.padStart(6)}${gc ? '   GC' : ''}`)
  const runs = []
  let at = port
  for (let i = 0; i < rounds; i++) {
    for (const file of compare) {
      const run = await measure(file, at++)
      runs.push(run)
      const line = `${file.padEnd(22)} ${String(Math.round(run.n / seconds)).padStart(7)} ${sum(run.rows, jsThread).toFixed(2).padStart(6)} ${sum(run.rows, ioThread).toFixed(2).padStart(6)} ${sum(run.rows).toFixed(2).padStart(6)}`
      console.log(gc ? `${line}   ${gcLine(run.collections, run.n)}` : line)
    }
  }
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b)
    const m = s.length >> 1
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
  }
  for (const file of compare) {
    const mine = runs.filter((r) => r.file === file)
    const med = (pick) => median(mine.map((r) => sum(r.rows, pick))).toFixed(2)
    console.log(`median ${file.padEnd(15)} ${''.padStart(7)} ${med(jsThread).padStart(6)} ${med(ioThread).padStart(6)} ${med(() => true).padStart(6)}`)
  }
}

/** V8's collections while measured: scavenges per 10,000 requests and their pauses per request. */
function gcLine(c, n) {
  return `scavenges/10k req ${((c.scavenges * 1e4) / n).toFixed(1)}, mark-compacts ${c.marks}, GC pauses ${((c.ms * 1e3) / n).toFixed(3)} µs/req`
}
