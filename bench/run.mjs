// `npm run bench`: HTTPy against the pure-JS baselines, side by side.
//
// Each server runs in its own process; each workload is loaded from a
// third process (bench/load.mjs, the built-in Rust generator). Server CPU
// time comes from /proc/<pid>/stat (utime + stime) before and after each
// load. When `perf` can attach to the server, syscalls and context switches
// are counted during the measured window too (`perf stat -p`; "n/a"
// otherwise). Prints a table, a markdown table for the README, a
// "JS − native" row (/plaintext through a JS handler minus /plaintext from
// the native route cache, same run: the cost of the crossing), and writes
// bench/results/latest.json and an SVG chart of it, bench/results/latest.svg.
//
//   npm run bench                 # ~7 minutes (the HTTPS rows ~2.3 of them, HTTP/3 ~0.5)
//   npm run bench -- --quick      # under a minute
//   npm run bench -- --only json,h2
//   npm run bench -- --no-perf    # no syscall counting (perf adds a little CPU)
//   npm run bench -- --only pubsub  # the cross-process pub/sub rows only
//   npm run bench -- --only https-native-ecdsa-nginx-https --pairs 5
//                                 # each row measured 5 times, HTTPy and its
//                                 # baseline alternated; the table shows the
//                                 # medians, latest.json every pair
//
// Last, the cross-process pub/sub rows (bench/pubsub.mjs): 2 workers, 256
// WebSocket subscribers, messages/s and µs per message over the local links
// and through a local redis-server (skipped without one); under 15 s.
import { spawn, execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { crossProcessRows } from './pubsub.mjs'
import { joinHalves, medianPair } from './pairs.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const quick = args.includes('--quick')
const onlyArg = args.find((a) => a.startsWith('--only'))
const noPerf = args.includes('--no-perf')
const pairsArg = args.find((a) => a.startsWith('--pairs'))
const PAIRS = pairsArg ? Number(pairsArg.includes('=') ? pairsArg.split('=')[1] : args[args.indexOf(pairsArg) + 1]) : 1
if (!Number.isInteger(PAIRS) || PAIRS < 1) {
  console.error('bench: --pairs takes a whole number of pairs, 1 or more')
  process.exit(2)
}
const only = onlyArg ? (onlyArg.includes('=') ? onlyArg.split('=')[1] : args[args.indexOf(onlyArg) + 1]).split(',') : null

if (!existsSync(join(here, '../dist/benchmark.js'))) {
  console.error('bench: dist/ is missing; run `npm run build` (or `npm run build:ts` after a native build) first')
  process.exit(2)
}

const WARMUP = quick ? 0.5 : 1
const DURATION = quick ? 2 : 5
const CONCURRENCY = 64
const ECHO_BODY = JSON.stringify({ data: 'x'.repeat(1024 - 12) }) // exactly 1 KB of JSON

/**
 * Workloads. `baseline` names the server process compared against;
 * `needs` names a feature HTTPy must report (native-path hooks: add a row
 * here when a feature lands, the server script already registers it).
 */
const WORKLOADS = [
  { id: 'plaintext', label: 'GET /plaintext', route: '/plaintext', baseline: 'node-http' },
  {
    id: 'plaintext-cached', label: 'GET /plaintext, native route cache', route: '/plaintext-cached', baseline: 'node-http', needs: 'cache',
    baselineNote: 'computes per request',
  },
  { id: 'json', label: 'GET /json', route: '/json', baseline: 'node-http' },
  { id: 'params', label: 'GET /users/{id}', route: '/users/42', baseline: 'node-http' },
  {
    id: 'echo', label: 'POST /echo 1 KB JSON', route: '/echo', method: 'POST', baseline: 'node-http',
    headers: { 'content-type': 'application/json' }, body: ECHO_BODY,
  },
  { id: '100k', label: 'GET 100 KB response', route: '/100k', baseline: 'node-http', concurrency: 16 },
  {
    id: 'h2', label: 'h2c GET /plaintext', route: '/plaintext', baseline: 'node-http2',
    protocol: 'http2', connections: 8, concurrency: 80,
  },
  { id: 'cached', label: 'GET cached route', route: '/cached', baseline: 'node-http', needs: 'cache', baselineNote: 'computes per request' },
  { id: 'static', label: 'GET static 100 KB file', route: '/static/100k.bin', baseline: 'node-http', needs: 'serveStatic', concurrency: 16, baselineNote: 'file held in memory' },
  {
    id: 'gzip', label: 'GET 1 MB JSON, gzip', route: '/big-json', baseline: 'node-http', needs: 'compression', concurrency: 16,
    headers: { 'accept-encoding': 'gzip' }, baselineNote: 'zlib.gzipSync per request',
  },
  // HTTPS: the same certificate for every server, made at run time
  // (ECDSA P-256 and RSA 2048, self-signed; the generator verifies
  // signatures but not the chain). Keep-alive rows measure TLS record
  // costs; "handshakes" rows open a new connection, a full handshake
  // without resumption, for every request.
  // The "native" keep-alive rows answer from HTTPy's route cache, a fixed
  // response like nginx's `return 200`: TLS against TLS, no JS handler.
  // The server has compression on (for the compression row), so these
  // hits take the dispatcher's general path, not the own driver's
  // parse-time answer (docs/performance.md §16). The keep-alive HTTPS rows
  // alone, alternated, in ~1.5 minutes: --only
  // https-native-ecdsa-node-https,https-native-rsa-node-https --pairs 3 --no-perf
  ...['ecdsa', 'rsa'].flatMap((key) => ['node-https', 'nginx-https'].flatMap((peer) => [
    { id: `https-${key}-${peer}`, label: `HTTPS GET /plaintext, ${key.toUpperCase()} (vs ${peer})`, route: '/plaintext', baseline: peer, tls: key },
    {
      id: `https-native-${key}-${peer}`, label: `HTTPS GET /plaintext, native route cache, ${key.toUpperCase()} (vs ${peer})`,
      route: '/plaintext-cached', baseline: peer, tls: key, needs: 'cache',
      baselineNote: peer === 'nginx-https' ? 'return 200' : 'computes per request',
    },
    {
      id: `handshake-${key}-${peer}`, label: `TLS handshakes/s, ${key.toUpperCase()} (vs ${peer})`, route: '/plaintext', baseline: peer, tls: key,
      handshake: true, concurrency: 16,
    },
  ])),
  // HTTP/3: the /plaintext, /json and /users/{id} rows over QUIC (64 streams
  // on 4 connections, the ECDSA certificate above), beside the same HTTPy
  // process over HTTPS/1.1 keep-alive (64 connections): Node.js has no
  // HTTP/3 server to put there (Hypercorn + aioquic: bench/h3-peers.mjs).
  ...[['plaintext', '/plaintext'], ['json', '/json'], ['params', '/users/42']].map(([id, route]) => ({
    id: `h3-${id}`, label: `HTTP/3 GET ${route} (vs HTTPS/1.1)`, route, baseline: 'httpy-h3', tls: 'ecdsa', http3: true, connections: 4,
    baselineNote: 'same HTTPy process, HTTPS/1.1',
  })),
  { id: 'ws', label: 'WebSocket echo 64×16 32 B', baseline: 'ws', needs: 'websocket', ws: { mode: 'echo', connections: 64, window: 16, size: 32 } },
  { id: 'ws-fanout', label: 'WebSocket pub/sub 256 subs', baseline: 'ws', needs: 'websocket', ws: { mode: 'fanout', connections: 256, window: 4, size: 32 } },
]

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
  } catch {
    return 100
  }
})()

/** Server CPU seconds so far (user + system) of one process. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / CLK_TCK
}

/** The syscalls counted one by one (all of them are counted together by raw_syscalls:sys_enter). */
const NAMED_SYSCALLS = ['read', 'write', 'writev', 'recvfrom', 'sendto', 'futex', 'epoll_wait', 'epoll_pwait']

/**
 * What `perf stat` can count here: syscalls (the sys_enter tracepoints,
 * which need root or a permissive perf_event_paranoid) and context
 * switches. Either may be missing; the bench then says "n/a".
 */
const PERF = (() => {
  const none = { syscalls: false, switches: false }
  if (noPerf) return none
  const tries = (events) => {
    try {
      execFileSync('perf', ['stat', '-x,', '-e', events, '--', 'true'], { stdio: 'ignore', timeout: 10_000 })
      return true
    } catch {
      return false
    }
  }
  return { syscalls: tries('raw_syscalls:sys_enter'), switches: tries('context-switches') }
})()

/**
 * Starts counting the server's syscalls and context switches for `seconds`
 * after `delay` seconds (the measured window, after the warm-up). Resolves
 * to { seconds, syscalls, switches, top: [[name, count]…] } or null.
 */
function perfStat(pid, delay, seconds) {
  if (!PERF.syscalls && !PERF.switches) return Promise.resolve(null)
  // A handful of tracepoints: perf takes seconds to set up hundreds of them.
  const named = PERF.syscalls ? NAMED_SYSCALLS.map((n) => `syscalls:sys_enter_${n}`) : []
  const events = [PERF.syscalls && 'raw_syscalls:sys_enter', ...named, PERF.switches && 'context-switches'].filter(Boolean).join(',')
  return new Promise((resolve) => {
    setTimeout(() => {
      const child = spawn('perf', ['stat', '-x,', '-e', events, '-p', String(pid), '--', 'sleep', String(seconds)], {
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      let err = ''
      child.stderr.on('data', (c) => (err += c))
      const killer = setTimeout(() => child.kill('SIGKILL'), (seconds + 20) * 1000)
      child.on('error', () => resolve(null))
      child.on('exit', () => {
        clearTimeout(killer)
        const counts = new Map()
        for (const line of err.split('\n')) {
          const f = line.split(',')
          const n = Number(f[0])
          if (f.length < 3 || !Number.isFinite(n)) continue
          counts.set(f[2], n)
        }
        if (counts.size === 0) return resolve(null)
        const syscalls = counts.get('raw_syscalls:sys_enter')
        const top = []
        for (const [name, n] of counts) {
          if (name.startsWith('syscalls:sys_enter_') && n > 0) top.push([name.slice('syscalls:sys_enter_'.length), n])
        }
        top.sort((a, b) => b[1] - a[1])
        resolve({
          seconds,
          syscalls: PERF.syscalls ? syscalls : undefined,
          switches: PERF.switches ? counts.get('context-switches') : undefined,
          top,
        })
      })
    }, delay * 1000)
  })
}

const children = []
function startServer(script, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, 'servers', script)], {
      env: { ...process.env, PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    children.push(child)
    let buf = ''
    const timer = setTimeout(() => reject(new Error(`${script} did not start within 15 s`)), 15_000)
    child.stdout.on('data', (c) => {
      buf += c
      const m = /READY (.*)\n/.exec(buf)
      if (m) {
        clearTimeout(timer)
        resolve({ ...JSON.parse(m[1]), child })
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${script} exited with code ${code} before it was ready`))
    })
  })
}

function stopAll() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
}
process.on('exit', stopAll)
process.on('SIGINT', () => {
  stopAll()
  process.exit(130)
})

function load(opts, script = 'load.mjs') {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(here, script), JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (c) => (out += c))
    const killer = setTimeout(() => child.kill('SIGKILL'), (WARMUP + DURATION + 30) * 1000)
    child.on('exit', () => {
      clearTimeout(killer)
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()))
      } catch {
        resolve({ error: `load process printed no result (${out.slice(0, 200)})` })
      }
    })
  })
}

async function measure(server, w, { duration = DURATION } = {}) {
  const before = cpuSeconds(server.pid)
  // Counted inside the measured window (perf needs a few tenths of a
  // second to attach), so that it ends before the load does.
  const perfWindow = Math.max(1, duration - 1.5)
  const counting = perfStat(server.pid, WARMUP + 0.5, perfWindow)
  const r = w.ws
    ? await load({ port: server.port, ...w.ws, duration: DURATION, warmup: WARMUP }, 'ws-load.mjs')
    : await load({
        baseUrl: `${w.tls ? 'https' : 'http'}://127.0.0.1:${w.http3 ? server.http3Port : server.port}`,
        ...(w.tls ? { insecure: true, newConnectionPerRequest: w.handshake === true } : {}),
        route: w.route,
        method: w.method ?? 'GET',
        headers: w.headers,
        body: w.body,
        protocol: w.http3 ? 'http3' : (w.protocol ?? 'http1'),
        connections: w.connections,
        concurrency: w.concurrency ?? CONCURRENCY,
        duration,
        warmup: WARMUP,
        timeout: 5,
      })
  const after = cpuSeconds(server.pid)
  const counted = await counting
  if (r.error) return { error: r.error }
  // CPU of the warm-up is excluded by scaling: only the measured share counts.
  const measuredShare = r.duration / (r.duration + WARMUP)
  const cpu = (after - before) * measuredShare
  const usPerReq = r.totalRequests > 0 ? (cpu * 1e6) / r.totalRequests : NaN
  // Requests in the counting window, from the run's mean rate.
  const perReq = (n) => (counted && n !== undefined && r.requestsPerSecond > 0 ? n / (r.requestsPerSecond * counted.seconds) : undefined)
  return {
    rps: r.requestsPerSecond,
    p99: r.p99ResponseTime,
    usPerReq,
    syscallsPerReq: perReq(counted?.syscalls),
    switchesPerReq: perReq(counted?.switches),
    topSyscallsPerReq: counted?.top.map(([name, n]) => [name, perReq(n)]),
    errors: r.errors,
    total: r.totalRequests,
    statusCounts: r.statusCounts,
  }
}

const fmt = {
  rps: (v) => (v === undefined ? '-' : Math.round(v).toLocaleString('en-US')),
  ms: (v) => (v === undefined ? '-' : (v * 1000).toFixed(2)),
  us: (v) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(1)),
  ratio: (a, b) => (a && b ? `${(a / b).toFixed(2)}x` : '-'),
  perReq: (v) => (v === undefined || Number.isNaN(v) ? 'n/a' : v.toFixed(2)),
}

const perfNote = noPerf
  ? 'syscall counting off (--no-perf)'
  : `perf: ${PERF.syscalls ? 'syscalls' : 'no syscall tracepoints'}, ${PERF.switches ? 'context switches' : 'no context-switch counter'}`
console.log(`HTTPy benchmark${quick ? ' (quick)' : ''}: ${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown CPU'}), node ${process.version}, ${DURATION}s per workload after ${WARMUP}s warm-up, concurrency ${CONCURRENCY}${PAIRS > 1 ? `, ${PAIRS} alternated pairs per row (medians)` : ''}; ${perfNote}`)
const httpy = await startServer('httpy.mjs')
const baselines = {
  'node-http': await startServer('node-http.mjs'),
  'node-http2': await startServer('node-http2.mjs'),
}
if (httpy.features?.websocket) baselines.ws = await startServer('ws-echo.mjs')

// The HTTPS rows' servers, one set per key type, started only when asked for.
const nginxBin = ['/usr/sbin/nginx', '/usr/bin/nginx', 'nginx'].find((p) => {
  try {
    execFileSync(p, ['-v'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})
const tlsServers = {}
const tlsKeys = [...new Set(WORKLOADS.filter((w) => w.tls && (!only || only.includes(w.id))).map((w) => w.tls))]
if (tlsKeys.length > 0) {
  const certDir = mkdtempSync(join(tmpdir(), 'httpy-bench-certs-'))
  process.on('exit', () => rmSync(certDir, { recursive: true, force: true }))
  for (const key of tlsKeys) {
    const keyArgs = key === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']
    const env = { BENCH_TLS_CERT: join(certDir, `${key}.pem`), BENCH_TLS_KEY: join(certDir, `${key}.key`) }
    execFileSync('openssl', ['req', '-x509', ...keyArgs, '-nodes', '-keyout', env.BENCH_TLS_KEY, '-out', env.BENCH_TLS_CERT, '-days', '2',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' })
    tlsServers[`httpy-${key}`] = await startServer('httpy.mjs', env)
    tlsServers[`node-https-${key}`] = await startServer('node-http.mjs', env)
    if (nginxBin) tlsServers[`nginx-https-${key}`] = await startServer('nginx-https.mjs', { ...env, BENCH_NGINX: nginxBin })
    // The HTTP/3 rows' server: its own process, so that the Alt-Svc header
    // HTTP/3 adds stays out of the HTTPS rows.
    if (WORKLOADS.some((w) => w.http3 && w.tls === key && (!only || only.includes(w.id)))) {
      tlsServers[`httpy-h3-${key}`] = await startServer('httpy.mjs', { ...env, BENCH_HTTP3: '1' })
    }
  }
}

const rows = []
for (const w of WORKLOADS) {
  if (only && !only.includes(w.id)) continue
  if (w.needs && !httpy.features?.[w.needs]) {
    rows.push({ workload: w.label, id: w.id, skipped: `HTTPy has no ${w.needs} in this build yet` })
    continue
  }
  if (w.tls && !tlsServers[`${w.baseline}-${w.tls}`]) {
    rows.push({ workload: w.label, id: w.id, skipped: `${w.baseline} is not installed` })
    continue
  }
  if (w.skipReason) {
    rows.push({ workload: w.label, id: w.id, skipped: w.skipReason })
    continue
  }
  process.stderr.write(`  ${w.label} ... `)
  // With --pairs, HTTPy and its baseline take turns, so that a noisy
  // stretch of the machine falls on both sides; the row keeps the medians.
  const pairs = []
  const ours = w.tls ? tlsServers[w.http3 ? `httpy-h3-${w.tls}` : `httpy-${w.tls}`] : httpy
  const theirs = w.tls ? tlsServers[`${w.baseline}-${w.tls}`] : baselines[w.baseline]
  const theirW = w.http3 ? { ...w, http3: false, connections: undefined } : w
  for (let i = 0; i < PAIRS; i++) {
    let h, b
    if (w.handshake) {
      // HTTPy, baseline, baseline, HTTPy, half the duration each: the
      // handshake rows' baselines swing by up to 2× between runs on a busy
      // machine, and this order lets a drifting load fall on both sides.
      const half = { duration: DURATION / 2 }
      const h1 = await measure(ours, w, half)
      const b1 = await measure(theirs, theirW, half)
      const b2 = await measure(theirs, theirW, half)
      h = joinHalves(h1, await measure(ours, w, half))
      b = joinHalves(b1, b2)
    } else {
      h = await measure(ours, w)
      b = await measure(theirs, theirW)
    }
    pairs.push({ httpy: h, base: b })
    if (PAIRS > 1) process.stderr.write(`${fmt.us(h.usPerReq)}/${fmt.us(b.usPerReq)} µs `)
  }
  process.stderr.write('done\n')
  const row = { workload: w.label, id: w.id, baseline: w.baseline, baselineNote: w.baselineNote, ...medianPair(pairs) }
  if (PAIRS > 1) row.pairs = pairs
  rows.push(row)
}
stopAll()

// Cross-process pub/sub: messages through 2 workers, not requests against a
// baseline, so a table of its own.
let pubsub
if (!only || only.includes('pubsub')) {
  process.stderr.write('  cross-process pub/sub, 2 workers, 256 subscribers ... ')
  pubsub = { messages: quick ? 3000 : 10_000, rows: await crossProcessRows(quick ? 3000 : 10_000) }
  process.stderr.write('done\n')
}

// The crossing: what a request costs more when a JS handler answers it than
// when the core answers it from the route cache, in the same run.
const byId = new Map(rows.filter((r) => !r.skipped).map((r) => [r.id, r]))
const js = byId.get('plaintext')?.httpy
const nat = byId.get('plaintext-cached')?.httpy
const crossing =
  js && nat && !js.error && !nat.error
    ? {
        usPerReq: js.usPerReq - nat.usPerReq,
        syscallsPerReq: js.syscallsPerReq !== undefined && nat.syscallsPerReq !== undefined ? js.syscallsPerReq - nat.syscallsPerReq : undefined,
        switchesPerReq: js.switchesPerReq !== undefined && nat.switchesPerReq !== undefined ? js.switchesPerReq - nat.switchesPerReq : undefined,
      }
    : undefined

const header = [
  'workload', 'HTTPy req/s', 'baseline', 'baseline req/s', 'ratio', 'HTTPy p99 ms', 'baseline p99 ms', 'HTTPy CPU µs/req', 'baseline CPU µs/req',
  'HTTPy syscalls/req', 'baseline syscalls/req', 'HTTPy ctx sw/req', 'baseline ctx sw/req',
]
const blank = header.map(() => '')
const table = rows.map((r) =>
  r.skipped
    ? [r.workload, `skipped: ${r.skipped}`, ...blank.slice(2)]
    : [
        r.workload,
        r.httpy.error ? `error: ${r.httpy.error}` : fmt.rps(r.httpy.rps) + (r.httpy.errors ? ` (${r.httpy.errors} err)` : ''),
        r.baseline + (r.baselineNote ? ` (${r.baselineNote})` : ''),
        r.base.error ? `error: ${r.base.error}` : fmt.rps(r.base.rps) + (r.base.errors ? ` (${r.base.errors} err)` : ''),
        fmt.ratio(r.httpy.rps, r.base.rps),
        fmt.ms(r.httpy.p99),
        fmt.ms(r.base.p99),
        fmt.us(r.httpy.usPerReq),
        fmt.us(r.base.usPerReq),
        fmt.perReq(r.httpy.syscallsPerReq),
        fmt.perReq(r.base.syscallsPerReq),
        fmt.perReq(r.httpy.switchesPerReq),
        fmt.perReq(r.base.switchesPerReq),
      ],
)
{
  const c = ['JS − native (/plaintext minus its cached row)', ...blank.slice(1)]
  if (crossing) {
    c[7] = fmt.us(crossing.usPerReq)
    c[9] = fmt.perReq(crossing.syscallsPerReq)
    c[11] = fmt.perReq(crossing.switchesPerReq)
  } else {
    c[1] = 'n/a: needs the plaintext and plaintext-cached rows'
  }
  table.push(c)
}
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => String(r[i]).length)))
const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join('  ')
console.log('\n' + line(header))
console.log(widths.map((n) => '-'.repeat(n)).join('  '))
for (const r of table) console.log(line(r))
if (PAIRS > 1) {
  console.log(`\nServer CPU µs per request, pair by pair (HTTPy / baseline), and the median of the pairs' ratios (baseline CPU ÷ HTTPy CPU):\n`)
  for (const r of rows) {
    if (r.skipped || !r.pairs) continue
    const each = r.pairs.map((p) => `${fmt.us(p.httpy.usPerReq)}/${fmt.us(p.base.usPerReq)}`).join(', ')
    console.log(`  ${r.workload}: ${each}; median ratio ${Number.isFinite(r.cpuRatio) ? r.cpuRatio.toFixed(2) : '-'}`)
  }
}

const date = new Date().toISOString().slice(0, 10)
console.log(`\nMarkdown (${date}, ${availableParallelism()} cores, \`npm run bench${quick || PAIRS > 1 ? ' --' : ''}${quick ? ' --quick' : ''}${PAIRS > 1 ? ` --pairs ${PAIRS}` : ''}\`):\n`)
console.log(`| ${header.join(' | ')} |`)
console.log(`|${header.map(() => '---').join('|')}|`)
for (const r of table) console.log(`| ${r.join(' | ')} |`)

if (pubsub) {
  console.log(`\nCross-process pub/sub: ${pubsub.messages} messages of 64 bytes published in one worker, 256 subscribers over 2 workers:\n`)
  console.log('| mode | messages/s | deliveries/s | µs/msg |')
  console.log('|---|---|---|---|')
  for (const r of pubsub.rows) console.log(`| ${r.mode} | ${fmt.rps(r['messages/s'])} | ${fmt.rps(r['deliveries/s'])} | ${r['µs/msg']} |`)
}

const outDir = join(here, 'results')
mkdirSync(outDir, { recursive: true })
writeFileSync(
  join(outDir, 'latest.json'),
  JSON.stringify(
    {
      date: new Date().toISOString(),
      cores: availableParallelism(),
      cpu: cpus()[0]?.model,
      node: process.version,
      quick,
      warmup: WARMUP,
      duration: DURATION,
      concurrency: CONCURRENCY,
      pairs: PAIRS,
      features: httpy.features,
      perf: PERF,
      crossing,
      rows,
      pubsub,
    },
    null,
    2,
  ) + '\n',
)
writeFileSync(join(outDir, 'latest.svg'), chart(rows, { date, cores: availableParallelism(), quick, crossing }))
console.log(`\nResults written to bench/results/latest.json and bench/results/latest.svg`)

/** Escapes text for SVG. */
function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c])
}

/**
 * A horizontal bar chart of server CPU µs per request (shorter is better),
 * HTTPy and its baseline for each workload, as plain SVG text. Each pair is
 * drawn to its own scale (the longer bar is full width): the workloads
 * differ by three orders of magnitude; the numbers are printed.
 */
function chart(rows, { date, cores, quick, crossing }) {
  const measured = rows.filter((r) => !r.skipped && !r.httpy.error && !r.base.error)
  const W = 760
  const left = 250
  const barH = 12
  const groupH = 2 * barH + 12
  const top = 70
  const H = top + measured.length * groupH + 40
  const full = W - left - 70
  const colors = { httpy: '#2f6fde', base: '#a0a0a0' }
  const bar = (y, v, max, color) => {
    if (!Number.isFinite(v)) return `<text x="${left + 4}" y="${y + barH - 2}" class="v">n/a</text>`
    const w = Math.max(1, (v / max) * full)
    return `<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${color}"/>` +
      `<text x="${(left + w + 4).toFixed(1)}" y="${y + barH - 2}" class="v">${v.toFixed(1)}</text>`
  }
  const groups = measured.map((r, i) => {
    const y = top + i * groupH
    const max = Math.max(...[r.httpy.usPerReq, r.base.usPerReq].filter(Number.isFinite), 1e-9)
    return [
      `<text x="${left - 8}" y="${y + barH + 4}" class="l" text-anchor="end">${esc(r.workload)}</text>`,
      bar(y, r.httpy.usPerReq, max, colors.httpy),
      bar(y + barH, r.base.usPerReq, max, colors.base),
    ].join('\n')
  })
  const note = crossing ? ` · JS − native: ${crossing.usPerReq.toFixed(1)} µs/req` : ''
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
<style>.l{font-size:12px;fill:#222}.v{font-size:11px;fill:#444}.t{font-size:14px;font-weight:bold;fill:#222}.s{font-size:11px;fill:#555}</style>
<rect width="${W}" height="${H}" fill="#fff"/>
<text x="12" y="20" class="t">Server CPU µs per request, per message for WebSocket (shorter is better)</text>
<text x="12" y="38" class="s">npm run bench${quick ? ' -- --quick' : ''}, ${esc(date)}, ${cores} cores${esc(note)}; each pair to its own scale</text>
<rect x="12" y="46" width="10" height="10" fill="${colors.httpy}"/><text x="26" y="55" class="s">HTTPy</text>
<rect x="82" y="46" width="10" height="10" fill="${colors.base}"/><text x="96" y="55" class="s">baseline (node:http, node:http2, ws)</text>
${groups.join('\n')}
</svg>
`
}
