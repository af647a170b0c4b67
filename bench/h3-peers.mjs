// HTTP/3 beside a server users know: HTTPy and Hypercorn (with aioquic, its
// HTTP/3 stack) on the same three routes as the peers kit (/plaintext,
// /json, /users/42), loaded the same way by two HTTP/3 clients: the built-in
// generator's HTTP/3 mode (quinn + h3, the stack HTTPy's server uses too)
// and bench/h3load, a small Go generator on quic-go's http3 client that
// shares no code with either server (built into a temporary directory when
// `go` is installed, skipped otherwise). Prints, per route, client and
// server, req/s, p99 and the server's CPU time per request (utime + stime
// from /proc/<pid>/stat, the warm-up's share taken out in proportion to
// time), side by side.
//
//   python3 -m pip install hypercorn aioquic   # once
//   node bench/h3-peers.mjs                    # 10 s per route, client and server
//   node bench/h3-peers.mjs --duration 3 --routes /plaintext
//   node bench/h3-peers.mjs --clients h3load   # only the Go client
//   BENCH_PYTHON=venv/bin/python node bench/h3-peers.mjs
//
// Options: --duration S (10), --warmup S (1), --concurrency N (64 streams),
// --connections N (4 QUIC connections), --routes a,b, --clients
// builtin,h3load. Both servers get the same ECDSA P-256 certificate, made
// by openssl at start. Hypercorn runs with `--workers 0` (one process,
// asyncio, no access log); HTTPy is bench/servers/httpy.mjs (JS handlers,
// its default worker threads). The built-in generator runs in this process
// and h3load in its own, so neither server's CPU account holds a client.
import { execFileSync, spawn } from 'node:child_process'
import dgram from 'node:dgram'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import net from 'node:net'
import { availableParallelism, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
if (!existsSync(join(here, '../dist/benchmark.js'))) {
  console.error('h3-peers: dist/ is missing; run `npm run build` first')
  process.exit(2)
}
const { benchmarkRoute } = await import('../dist/benchmark.js')

const args = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : dflt
}
const DURATION = Number(opt('--duration', 10))
const WARMUP = Number(opt('--warmup', 1))
const CONCURRENCY = Number(opt('--concurrency', 64))
const CONNECTIONS = Number(opt('--connections', 4))
const ROUTES = opt('--routes', '/plaintext,/json,/users/42').split(',')
const CLIENTS = opt('--clients', 'builtin,h3load').split(',')
const PYTHON = process.env.BENCH_PYTHON ?? 'python3'

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
/** CPU seconds (user + system) of `pid` and every process below it. */
function treeCpuSeconds(pid) {
  const stats = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8')
      // After the parenthesised name: state, ppid, ..., utime (14), stime (15).
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
      stats.push({ pid: Number(d), ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / CLK_TCK })
    } catch {
      // The process ended while the list was read.
    }
  }
  const inTree = new Set([pid])
  for (let grew = true; grew; ) {
    grew = false
    for (const p of stats) if (!inTree.has(p.pid) && inTree.has(p.ppid)) grew = inTree.add(p.pid) !== undefined
  }
  return stats.filter((p) => inTree.has(p.pid)).reduce((a, p) => a + p.cpu, 0)
}

const freeTcp = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
const freeUdp = () =>
  new Promise((resolve) => {
    const s = dgram.createSocket('udp4').bind(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })

const children = []
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
})
/** Spawns a server and resolves once `ready(output)` returns a value, or rejects after 20 s. */
function start(cmd, argv, env, ready) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env: { ...process.env, ...env }, cwd: join(here, 'servers'), stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    let out = ''
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start within 20 s: ${out.slice(-500)}`)), 20_000)
    const seen = (c) => {
      out += c
      const r = ready(out)
      if (r !== undefined) {
        clearTimeout(timer)
        resolve({ ...r, pid: child.pid, child })
      }
    }
    child.stdout.on('data', seen)
    child.stderr.on('data', seen)
    child.on('error', (e) => reject(new Error(`${cmd}: ${e.message}`)))
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${cmd} exited with code ${code}: ${out.slice(-500)}`))
    })
  })
}

const certDir = mkdtempSync(join(tmpdir(), 'httpy-h3-peers-'))
process.on('exit', () => rmSync(certDir, { recursive: true, force: true }))
const cert = join(certDir, 'cert.pem')
const key = join(certDir, 'key.pem')
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
  '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' })

// The Go client, built once per run (the module cache makes later builds quick).
let h3load
if (CLIENTS.includes('h3load')) {
  const go = ['go', '/usr/local/go/bin/go'].find((g) => {
    try {
      execFileSync(g, ['version'], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  })
  if (!go) {
    console.error('h3-peers: `go` is not installed; the h3load (quic-go) rows are skipped')
  } else {
    h3load = join(certDir, 'h3load')
    execFileSync(go, ['build', '-o', h3load, '.'], { cwd: join(here, 'h3load'), stdio: ['ignore', 'ignore', 'inherit'] })
  }
}

/** Runs bench/h3load against `url` and resolves with its JSON result. */
function runH3load(url) {
  return new Promise((resolve, reject) => {
    const streams = Math.max(1, Math.round(CONCURRENCY / CONNECTIONS))
    const child = spawn(h3load, ['-url', url, '-insecure', '-json', '-c', String(CONNECTIONS), '-m', String(streams),
      '-d', String(DURATION), '-warmup', String(WARMUP), '-timeout', '5'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (c) => (out += c))
    child.stderr.on('data', (c) => (err += c))
    const killer = setTimeout(() => child.kill('SIGKILL'), (WARMUP + DURATION + 30) * 1000)
    child.on('exit', (code) => {
      clearTimeout(killer)
      if (code !== 0) return reject(new Error(`h3load exited with ${code}: ${err.trim().slice(-300)}`))
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()))
      } catch {
        reject(new Error(`h3load printed no result: ${out.slice(0, 200)}`))
      }
    })
  })
}

const servers = []
servers.push({
  name: 'httpy',
  ...(await start(process.execPath, [join(here, 'servers', 'httpy.mjs')], { PORT: '0', BENCH_TLS_CERT: cert, BENCH_TLS_KEY: key, BENCH_HTTP3: '1' }, (out) => {
    const m = /READY (.*)\n/.exec(out)
    return m ? { port: JSON.parse(m[1]).http3Port } : undefined
  })),
})
// Hypercorn gets a fresh process for every row: its HTTP/3 listener can
// stop for good within a row (a KeyError in its h3 layer on a late end of
// stream, which quic-go's client sometimes sends; docs/http3.md), and
// every later row against that process would fail.
const startHypercorn = async () => {
  const [tcp, udp] = [await freeTcp(), await freeUdp()]
  return start(
    PYTHON,
    ['-m', 'hypercorn', '--workers', '0', '--bind', `127.0.0.1:${tcp}`, '--quic-bind', `127.0.0.1:${udp}`,
      '--certfile', cert, '--keyfile', key, '--log-level', 'info', 'h3_peer:app'],
    {},
    (out) => (/Running on .*\(QUIC\)/.test(out) ? { port: udp } : undefined),
  )
}
try {
  const hypercorn = await startHypercorn()
  const version = execFileSync(PYTHON, ['-c', 'import importlib.metadata as m; print(m.version("hypercorn"), m.version("aioquic"))']).toString().trim().split(' ')
  const entry = { name: `hypercorn ${version[0]} (aioquic ${version[1]})`, ...hypercorn }
  entry.fresh = async () => {
    const old = entry.child
    if (old.exitCode === null) {
      const gone = new Promise((resolve) => old.once('exit', resolve))
      old.kill('SIGKILL')
      await gone
    }
    Object.assign(entry, await startHypercorn())
  }
  servers.push(entry)
} catch (e) {
  console.error(`h3-peers: Hypercorn did not start (${e.message.split('\n')[0]}); install it with \`${PYTHON} -m pip install hypercorn aioquic\``)
}

const clients = CLIENTS.filter((c) => (c === 'builtin') || (c === 'h3load' && h3load))
console.log(`HTTP/3 peers: ${availableParallelism()} cores, node ${process.version}, ${DURATION} s per row after ${WARMUP} s warm-up, ${CONCURRENCY} streams on ${CONNECTIONS} connections; clients: ${clients.join(', ')}\n`)
const rows = []
for (const route of ROUTES) {
  for (const client of clients) {
    for (const s of servers) {
      if (s.fresh && rows.some((r) => r[2] === s.name)) await s.fresh()
      const before = treeCpuSeconds(s.pid)
      const url = `https://127.0.0.1:${s.port}`
      let r
      try {
        if (client === 'builtin') {
          const b = await benchmarkRoute({
            baseUrl: url, route, http3: true, insecure: true,
            duration: DURATION, warmup: WARMUP, concurrency: CONCURRENCY, connections: CONNECTIONS, timeout: 5,
          })
          r = { rps: b.requestsPerSecond, p99: b.p99ResponseTime * 1000, total: b.totalRequests, errors: b.errors, duration: b.duration }
        } else {
          const g = await runH3load(url + route)
          r = { rps: g.requestsPerSecond, p99: g.p99, total: g.requests, errors: g.errors, duration: g.duration }
        }
      } catch (e) {
        rows.push([route, client, s.name, `error: ${e.message}`, '', '', ''])
        continue
      }
      const cpu = (treeCpuSeconds(s.pid) - before) * (r.duration / (r.duration + WARMUP))
      rows.push([
        route, client === 'builtin' ? 'built-in (quinn)' : 'h3load (quic-go)', s.name, Math.round(r.rps).toLocaleString('en-US'), r.p99.toFixed(2),
        r.total > 0 ? ((cpu * 1e6) / r.total).toFixed(1) : '-', String(r.errors),
      ])
    }
  }
}
for (const c of children) c.kill('SIGTERM')

const header = ['route', 'client', 'server', 'req/s', 'p99 ms', 'server CPU µs/req', 'errors']
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ')
console.log(line(header))
console.log(widths.map((n) => '-'.repeat(n)).join('  '))
for (const r of rows) console.log(line(r))
console.log(`\n| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|`)
for (const r of rows) console.log(`| ${r.join(' | ')} |`)
