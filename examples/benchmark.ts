/**
 * Benchmarking a route (guide: "Benchmarking Your Application"): the
 * built-in load generator runs on Rust threads against this process's own
 * server and reports throughput and latency percentiles (in seconds, as in
 * the guide).
 *
 *   npx tsx examples/benchmark.ts
 *
 * Prints the results and exits. Numbers from a busy machine are only
 * indicative; `npm run bench` compares HTTPy with node:http.
 */
import { Response, get, run } from 'httpy'
import { benchmarkRoute } from 'httpy/benchmark'

get('/api/users', () => Response.json([{ id: 1, name: 'Ada' }, { id: 2, name: 'Grace' }]))

const host = process.env.HOST ?? '127.0.0.1'
const server = await run({ host, port: Number(process.env.PORT ?? 8080) })

// Benchmark a specific route.
const results = await benchmarkRoute({
  route: '/api/users',
  method: 'GET',
  numRequests: Number(process.env.NUM_REQUESTS ?? 1000),
  concurrency: 100,
})

console.log(`Requests per second: ${results.requestsPerSecond.toFixed(2)}`)
console.log(`Average response time: ${(results.avgResponseTime * 1000).toFixed(2)}ms`)
console.log(`95th percentile: ${(results.p95ResponseTime * 1000).toFixed(2)}ms`)
console.log(`Errors: ${results.errors}; statuses: ${JSON.stringify(results.statusCounts)}`)

await server.close()
