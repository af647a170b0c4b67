// RSS of the HTTPy benchmark server over many requests: is memory flat?
//
//   node bench/rss-soak.mjs                 # 10 million requests (~4 min here)
//   node bench/rss-soak.mjs --requests 1e6  # shorter
//
// Starts bench/servers/httpy.mjs (a release build is what should be
// measured: `npm run build`), then drives it with the built-in load
// generator in rounds of 1 million requests (64 connections), cycling
// through /plaintext, /json, /users/{id} and POST /echo, and reads the
// server's VmRSS after each round. Prints one line per round and a
// verdict: growth between the first round and the last, and the largest
// RSS seen. The first round includes warm-up (JIT, allocator arenas, V8
// heap sizing), so "flat" means flat after it.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { benchmarkRoute } from '../dist/benchmark.js'

const here = dirname(fileURLToPath(import.meta.url))
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name)
  return i > 0 ? Number(process.argv[i + 1]) : dflt
}
const TOTAL = arg('--requests', 10e6)
const ROUND = Math.min(1e6, TOTAL)
const ROUTES = [
  { route: '/plaintext' },
  { route: '/json' },
  { route: '/users/42' },
  { route: '/echo', method: 'POST', body: JSON.stringify({ hello: 'world', n: 42 }) },
]

const child = spawn(process.execPath, [join(here, 'servers', 'httpy.mjs')], {
  env: { ...process.env, PORT: '0' },
  stdio: ['ignore', 'pipe', 'inherit'],
})
process.on('exit', () => child.kill('SIGTERM'))
const { port } = await new Promise((resolve, reject) => {
  let buf = ''
  child.stdout.on('data', (c) => {
    buf += c
    const m = /READY (.*)\n/.exec(buf)
    if (m) resolve(JSON.parse(m[1]))
  })
  child.on('exit', (code) => reject(new Error(`server exited with code ${code}`)))
})
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) / 1024

console.log(`requests_M  route          req_s    errors  rss_mb`)
const seen = []
let done = 0
for (let i = 0; done < TOTAL; i++) {
  const w = ROUTES[i % ROUTES.length]
  const n = Math.min(ROUND, TOTAL - done)
  const r = await benchmarkRoute({ baseUrl: `http://127.0.0.1:${port}`, numRequests: n, concurrency: 64, ...w })
  done += n
  const rss = rssMb()
  seen.push(rss)
  const errors = r.errors
  console.log(
    `${(done / 1e6).toFixed(1).padStart(10)}  ${(w.method ?? 'GET').padEnd(4)} ${w.route.padEnd(10)} ${Math.round(r.requestsPerSecond).toString().padStart(7)}  ${String(errors).padStart(6)}  ${rss.toFixed(1).padStart(6)}`,
  )
}
const growth = seen[seen.length - 1] - seen[0]
console.log(`RSS after round 1: ${seen[0].toFixed(1)} MB, at the end: ${seen.at(-1).toFixed(1)} MB (${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MB), largest: ${Math.max(...seen).toFixed(1)} MB`)
child.kill('SIGTERM')
