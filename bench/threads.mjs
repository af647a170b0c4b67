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
const args = process.argv.slice(2)
const flag = (name) => args.includes(name)
const opt = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : dflt
}
if (flag('--help') || flag('-h')) {
  console.log('usage: node bench/threads.mjs [--native | --server FILE] [--route /plaintext] [--seconds 5] [--conns 64] [--port 38020] [--h2c [--streams 10]]')
  process.exit(0)
}
const native = flag('--native')
const serverFile = opt('--server', native ? 'peer-native.mjs' : 'peer.mjs')
const serverPath = serverFile.includes('/') ? resolve(serverFile) : join(HERE, 'servers', serverFile)
const route = opt('--route', '/plaintext')
const seconds = Number(opt('--seconds', '5'))
const conns = Number(opt('--conns', '64'))
const port = Number(opt('--port', '38020'))
const h2c = flag('--h2c')
const streams = Number(opt('--streams', '10'))
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim())

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

/** User and system CPU (µs) of this process's finished children: the load generator's. */
function children() {
  const stat = readFileSync('/proc/self/stat', 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { user: Number(f[13]) * TICK_US, sys: Number(f[14]) * TICK_US }
}

function load(secs) {
  return h2c ? h2load(secs) : wrk(secs)
}

/** h2c with prior knowledge, `streams` requests in flight per connection (as the peers kit's h2c row). */
function h2load(secs) {
  const out = execFileSync('h2load', ['-D', String(secs), '-c', String(conns), '-m', String(streams), `http://127.0.0.1:${port}${route}`], {
    timeout: (secs + 30) * 1000,
  }).toString()
  const m = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out)
  const ok = /status codes: (\d+) 2xx/.exec(out)
  if (!m || !ok) throw new Error(`cannot read h2load's output:\n${out}`)
  // In a timed run the streams still open at the end are "started", not "done".
  if (m[1] !== m[2] || m[3] !== '0' || m[4] !== '0' || ok[1] !== m[2]) throw new Error(`h2load saw errors:\n${out}`)
  return Number(m[2])
}

function wrk(secs) {
  const out = execFileSync('wrk', ['-t1', `-c${conns}`, `-d${secs}s`, `http://127.0.0.1:${port}${route}`], {
    timeout: (secs + 30) * 1000,
  }).toString()
  const m = /(\d+) requests in/.exec(out)
  if (!m) throw new Error(`cannot read wrk's output:\n${out}`)
  if (/Non-2xx/.test(out)) throw new Error(`wrk saw errors:\n${out}`)
  return Number(m[1])
}

const server = spawn(process.execPath, [serverPath], {
  env: { ...process.env, PORT: String(port) },
  stdio: ['ignore', 'pipe', 'inherit'],
})
const stop = () => server.kill('SIGKILL')
process.on('exit', stop)
await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error('server did not start in 20 s')), 20_000)
  server.stdout.on('data', (c) => {
    if (/listening|READY/.test(c.toString())) {
      clearTimeout(t)
      resolve()
    }
  })
  server.on('exit', (code) => reject(new Error(`server exited with ${code}`)))
})
load(2) // warm-up: JIT, connection setup, caches
const before = threads(server.pid)
const clientBefore = children()
const n = load(seconds)
const after = threads(server.pid)
const clientAfter = children()
stop()

const tool = h2c ? `h2load -c${conns} -m${streams} (h2c)` : `wrk -t1 -c${conns}`
console.log(`# ${serverFile} ${route}: ${n} requests in ${seconds} s (${Math.round(n / seconds)} req/s), ${tool}`)
console.log('thread            user_us  sys_us  total_us  sleeps/req   (CPU per request; sleeps = voluntary context switches)')
let user = 0
let sys = 0
for (const [tid, a] of after) {
  const b = before.get(tid) ?? { user: 0, sys: 0, cs: 0 }
  const du = (a.user - b.user) / n
  const ds = (a.sys - b.sys) / n
  const dc = (a.cs - b.cs) / n
  user += du
  sys += ds
  if (du + ds >= 0.05) {
    console.log(`${a.name.padEnd(16)} ${du.toFixed(2).padStart(8)} ${ds.toFixed(2).padStart(7)} ${(du + ds).toFixed(2).padStart(9)} ${dc.toFixed(3).padStart(11)}`)
  }
}
console.log(`${'all threads'.padEnd(16)} ${user.toFixed(2).padStart(8)} ${sys.toFixed(2).padStart(7)} ${(user + sys).toFixed(2).padStart(9)}`)
const cu = (clientAfter.user - clientBefore.user) / n
const csys = (clientAfter.sys - clientBefore.sys) / n
console.log(`${'client (load)'.padEnd(16)} ${cu.toFixed(2).padStart(8)} ${csys.toFixed(2).padStart(7)} ${(cu + csys).toFixed(2).padStart(9)}`)
