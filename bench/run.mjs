// `npm run bench`: HTTPy against the pure-JS baselines, side by side.
//
// Each server runs in its own process; each workload is loaded from a
// third process (bench/load.mjs, the built-in Rust generator). Server CPU
// time comes from /proc/<pid>/stat (utime + stime) before and after each
// load. Prints a table, a markdown table for the README, and writes
// bench/results/latest.json.
//
//   npm run bench                 # ~3 minutes
//   npm run bench -- --quick      # under a minute
//   npm run bench -- --only json,h2
import { spawn, execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const quick = args.includes('--quick')
const onlyArg = args.find((a) => a.startsWith('--only'))
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

async function measure(server, w) {
  const before = cpuSeconds(server.pid)
  const r = w.ws
    ? await load({ port: server.port, ...w.ws, duration: DURATION, warmup: WARMUP }, 'ws-load.mjs')
    : await load({
        baseUrl: `http://127.0.0.1:${server.port}`,
        route: w.route,
        method: w.method ?? 'GET',
        headers: w.headers,
        body: w.body,
        protocol: w.protocol ?? 'http1',
        connections: w.connections,
        concurrency: w.concurrency ?? CONCURRENCY,
        duration: DURATION,
        warmup: WARMUP,
        timeout: 5,
      })
  const after = cpuSeconds(server.pid)
  if (r.error) return { error: r.error }
  // CPU of the warm-up is excluded by scaling: only the measured share counts.
  const measuredShare = r.duration / (r.duration + WARMUP)
  const cpu = (after - before) * measuredShare
  const usPerReq = r.totalRequests > 0 ? (cpu * 1e6) / r.totalRequests : NaN
  return { rps: r.requestsPerSecond, p99: r.p99ResponseTime, usPerReq, errors: r.errors, total: r.totalRequests, statusCounts: r.statusCounts }
}

const fmt = {
  rps: (v) => (v === undefined ? '-' : Math.round(v).toLocaleString('en-US')),
  ms: (v) => (v === undefined ? '-' : (v * 1000).toFixed(2)),
  us: (v) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(1)),
  ratio: (a, b) => (a && b ? `${(a / b).toFixed(2)}x` : '-'),
}

console.log(`HTTPy benchmark${quick ? ' (quick)' : ''}: ${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown CPU'}), node ${process.version}, ${DURATION}s per workload after ${WARMUP}s warm-up, concurrency ${CONCURRENCY}`)
const httpy = await startServer('httpy.mjs')
const baselines = {
  'node-http': await startServer('node-http.mjs'),
  'node-http2': await startServer('node-http2.mjs'),
}
if (httpy.features?.websocket) baselines.ws = await startServer('ws-echo.mjs')

const rows = []
for (const w of WORKLOADS) {
  if (only && !only.includes(w.id)) continue
  if (w.needs && !httpy.features?.[w.needs]) {
    rows.push({ workload: w.label, id: w.id, skipped: `HTTPy has no ${w.needs} in this build yet` })
    continue
  }
  if (w.skipReason) {
    rows.push({ workload: w.label, id: w.id, skipped: w.skipReason })
    continue
  }
  process.stderr.write(`  ${w.label} ... `)
  const h = await measure(httpy, w)
  const b = await measure(baselines[w.baseline], w)
  process.stderr.write('done\n')
  rows.push({ workload: w.label, id: w.id, baseline: w.baseline, baselineNote: w.baselineNote, httpy: h, base: b })
}
stopAll()

const header = ['workload', 'HTTPy req/s', 'baseline', 'baseline req/s', 'ratio', 'HTTPy p99 ms', 'baseline p99 ms', 'HTTPy CPU µs/req', 'baseline CPU µs/req']
const table = rows.map((r) =>
  r.skipped
    ? [r.workload, `skipped: ${r.skipped}`, '', '', '', '', '', '', '']
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
      ],
)
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => String(r[i]).length)))
const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join('  ')
console.log('\n' + line(header))
console.log(widths.map((n) => '-'.repeat(n)).join('  '))
for (const r of table) console.log(line(r))

const date = new Date().toISOString().slice(0, 10)
console.log(`\nMarkdown (${date}, ${availableParallelism()} cores, \`npm run bench${quick ? ' -- --quick' : ''}\`):\n`)
console.log(`| ${header.join(' | ')} |`)
console.log(`|${header.map(() => '---').join('|')}|`)
for (const r of table) console.log(`| ${r.join(' | ')} |`)

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
      features: httpy.features,
      rows,
    },
    null,
    2,
  ) + '\n',
)
console.log(`\nResults written to bench/results/latest.json`)
