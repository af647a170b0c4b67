// Runs one load with the built-in generator and prints its results as JSON
// on stdout. Its own process, so neither server shares a CPU-time account
// or an event loop with the client. Usage: node bench/load.mjs '<json options>'
import { benchmarkRoute } from '../dist/benchmark.js'

const opts = JSON.parse(process.argv[2] ?? '{}')
if (opts.bodyBase64 !== undefined) {
  opts.body = Buffer.from(opts.bodyBase64, 'base64')
  delete opts.bodyBase64
}
try {
  const r = await benchmarkRoute(opts)
  process.stdout.write(JSON.stringify(r) + '\n')
} catch (e) {
  process.stdout.write(JSON.stringify({ error: e instanceof Error ? e.message : String(e), results: e?.results }) + '\n')
  process.exitCode = 1
}
