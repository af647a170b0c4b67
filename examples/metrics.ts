/**
 * Metrics (guide: "Monitoring and Metrics"): a middleware counts requests
 * and observes latencies, and a second server exposes them in the
 * Prometheus text format on port 8000 — the guide's prometheus_client
 * set-up, with the two metric types written out in a few lines.
 *
 *   npx tsx examples/metrics.ts
 *   curl http://127.0.0.1:8080/api/users
 *   curl http://127.0.0.1:8000/metrics
 *
 * METRICS_PORT overrides 8000.
 */
import { App, Response, addMiddleware, get, run, type Middleware } from 'httpy'

/** A counter with labels (`http_requests_total{method,endpoint,status}`). */
class Counter {
  readonly #values = new Map<string, number>()
  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[]) {}
  inc(labels: readonly (string | number)[], by = 1): void {
    const key = this.labelNames.map((n, i) => `${n}="${String(labels[i]).replace(/["\\\n]/g, '\\$&')}"`).join(',')
    this.#values.set(key, (this.#values.get(key) ?? 0) + by)
  }
  expose(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`]
    for (const [k, v] of this.#values) lines.push(`${this.name}{${k}} ${v}`)
    return lines.join('\n')
  }
}

/** A histogram with the Prometheus default buckets (seconds). */
class Histogram {
  static readonly BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
  readonly #series = new Map<string, { counts: number[]; sum: number; count: number }>()
  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[]) {}
  observe(labels: readonly string[], seconds: number): void {
    const key = this.labelNames.map((n, i) => `${n}="${String(labels[i]).replace(/["\\\n]/g, '\\$&')}"`).join(',')
    let s = this.#series.get(key)
    if (!s) this.#series.set(key, (s = { counts: Histogram.BUCKETS.map(() => 0), sum: 0, count: 0 }))
    Histogram.BUCKETS.forEach((le, i) => {
      if (seconds <= le) s.counts[i] = (s.counts[i] ?? 0) + 1
    })
    s.sum += seconds
    s.count += 1
  }
  expose(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`]
    for (const [k, s] of this.#series) {
      Histogram.BUCKETS.forEach((le, i) => lines.push(`${this.name}_bucket{${k},le="${le}"} ${s.counts[i]}`))
      lines.push(`${this.name}_bucket{${k},le="+Inf"} ${s.count}`, `${this.name}_sum{${k}} ${s.sum}`, `${this.name}_count{${k}} ${s.count}`)
    }
    return lines.join('\n')
  }
}

// Define metrics.
const REQUEST_COUNT = new Counter('http_requests_total', 'Total HTTP Requests', ['method', 'endpoint', 'status'])
const REQUEST_LATENCY = new Histogram('http_request_duration_seconds', 'HTTP Request Latency', ['method', 'endpoint'])

// Middleware to collect metrics.
const metricsMiddleware: Middleware = async (request, next) => {
  const start = performance.now()
  const response = await next(request)
  const duration = (performance.now() - start) / 1000
  REQUEST_COUNT.inc([request.method, request.path, response.status])
  REQUEST_LATENCY.observe([request.method, request.path], duration)
  return response
}

// Start the metrics server: its own app, so scrapes are not counted.
async function startMetricsServer(host: string, port = 8000): Promise<number> {
  const metricsApp = new App()
  metricsApp.get('/metrics', () =>
    Response.text(`${REQUEST_COUNT.expose()}\n${REQUEST_LATENCY.expose()}\n`, {
      headers: { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' },
    }),
  )
  const server = await metricsApp.listen({ host, port })
  console.log(`metrics on http://${host}:${server.port}/metrics`)
  return server.port
}

// Register middleware and routes.
addMiddleware(metricsMiddleware)
get('/api/users', () => Response.json([{ id: 1, name: 'Ada' }]))

const host = process.env.HOST ?? '127.0.0.1'
await startMetricsServer(host, Number(process.env.METRICS_PORT ?? 8000))
const server = await run({ host, port: Number(process.env.PORT ?? 8080) })
