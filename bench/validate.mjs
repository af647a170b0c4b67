// Cross-checks the built-in load generator against independent ones on the
// same HTTPy server: wrk (HTTP/1.1) and h2load (h2c). Rounds alternate the
// two generators so drifting background load hits both alike; medians are
// compared. Also reports the server's CPU time per request under each
// generator (from /proc), which should agree even when req/s is noisy.
//
//   npm run build && node bench/validate.mjs            # 5 rounds of 3 s
//   node bench/validate.mjs --rounds 9 --seconds 5
//
// Needs wrk and h2load (Debian: wrk, nghttp2-client). Writes
// bench/results/validate.json.
import { spawn, execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const arg = (name, def) => {
  const i = process.argv.indexOf(name)
  return i > 0 ? Number(process.argv[i + 1]) : def
}
const ROUNDS = arg('--rounds', 5)
const SECONDS = arg('--seconds', 3)
const CONNS = 64
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100

for (const tool of ['wrk', 'h2load']) {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`])
  } catch {
    console.error(`validate: ${tool} is not installed (apt-get install wrk nghttp2-client)`)
    process.exit(2)
  }
}

const cpu = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(f[11]) + Number(f[12])) / CLK_TCK
}

function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (c) => (out += c))
    child.stderr.on('data', () => {})
    const killer = setTimeout(() => child.kill('SIGKILL'), (SECONDS + 30) * 1000)
    child.on('exit', () => {
      clearTimeout(killer)
      resolve(out)
    })
  })
}

const server = spawn(process.execPath, [join(here, 'servers', 'peer.mjs')], {
  env: { ...process.env, PORT: '0' },
  stdio: ['ignore', 'pipe', 'inherit'],
})
process.on('exit', () => server.kill('SIGTERM'))
const url = await new Promise((resolve, reject) => {
  let buf = ''
  server.stdout.on('data', (c) => {
    buf += c
    const m = /listening on (\S+)/.exec(buf)
    if (m) resolve(m[1])
  })
  server.on('exit', (code) => reject(new Error(`server exited with ${code}`)))
})

/** Runs one generator and returns req/s and the server's CPU µs per request. */
async function measure(kind, target) {
  const before = cpu(server.pid)
  let rps
  let total
  if (kind === 'wrk') {
    const out = await run('wrk', ['-t1', `-c${CONNS}`, `-d${SECONDS}s`, target])
    rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1])
    total = Number(/(\d+) requests in/.exec(out)?.[1])
  } else if (kind === 'h2load') {
    const out = await run('h2load', ['-c', '8', '-m', '10', '-D', String(SECONDS), target])
    rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1])
    total = Number(/requests: \d+ total, \d+ started, (\d+) done/.exec(out)?.[1])
  } else {
    const h2 = kind === 'loadgen-h2'
    const opts = h2
      ? { baseUrl: url, route: '/plaintext', protocol: 'http2', connections: 8, concurrency: 80, duration: SECONDS }
      : { baseUrl: url, route: '/plaintext', concurrency: CONNS, duration: SECONDS }
    const out = await run(process.execPath, [join(here, 'load.mjs'), JSON.stringify(opts)])
    const r = JSON.parse(out.trim().split('\n').pop())
    rps = r.requestsPerSecond
    total = r.totalRequests
  }
  const used = cpu(server.pid) - before
  return { rps, usPerReq: total > 0 ? (used * 1e6) / total : NaN }
}

const median = (xs) => {
  const s = [...xs].filter(Number.isFinite).sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const pairs = [
  ['HTTP/1.1', 'wrk', 'loadgen', `wrk -t1 -c${CONNS} -d${SECONDS}s`, `concurrency ${CONNS}, ${SECONDS} s`],
  ['h2c', 'h2load', 'loadgen-h2', `h2load -c 8 -m 10 -D ${SECONDS}`, `--http2 --connections 8 -c 80, ${SECONDS} s`],
]
const report = { date: new Date().toISOString(), cores: availableParallelism(), cpu: cpus()[0]?.model, rounds: ROUNDS, seconds: SECONDS, results: [] }
console.log(`Validating against ${url}: ${ROUNDS} alternating rounds of ${SECONDS} s, ${availableParallelism()} cores, load average ${loadavg()[0].toFixed(1)}`)
for (const [proto, ref, ours, refCmd, ourCmd] of pairs) {
  const a = []
  const b = []
  for (let i = 0; i < ROUNDS; i++) {
    a.push(await measure(ref, `${url}/plaintext`))
    b.push(await measure(ours, `${url}/plaintext`))
    console.log(`  ${proto} round ${i + 1}: ${ref} ${Math.round(a[i].rps)} req/s, built-in ${Math.round(b[i].rps)} req/s (load ${loadavg()[0].toFixed(1)})`)
  }
  const row = {
    protocol: proto,
    reference: ref,
    referenceCommand: refCmd,
    builtinCommand: ourCmd,
    referenceRps: median(a.map((x) => x.rps)),
    builtinRps: median(b.map((x) => x.rps)),
    referenceServerUsPerReq: median(a.map((x) => x.usPerReq)),
    builtinServerUsPerReq: median(b.map((x) => x.usPerReq)),
    runs: { reference: a, builtin: b },
  }
  row.ratio = row.builtinRps / row.referenceRps
  report.results.push(row)
  console.log(
    `${proto}: ${ref} median ${Math.round(row.referenceRps)} req/s (server ${row.referenceServerUsPerReq.toFixed(1)} µs/req), ` +
      `built-in median ${Math.round(row.builtinRps)} req/s (server ${row.builtinServerUsPerReq.toFixed(1)} µs/req), ` +
      `ratio ${row.ratio.toFixed(2)} ${Math.abs(row.ratio - 1) <= 0.15 ? '(within 15%)' : '(NOT within 15%)'}`,
  )
}
mkdirSync(join(here, 'results'), { recursive: true })
writeFileSync(join(here, 'results', 'validate.json'), JSON.stringify(report, null, 2) + '\n')
server.kill('SIGTERM')
