// The production entry point the Dockerfile and deploy/k8s.yaml run: the
// app's routes plus the operational endpoints the probes and Prometheus
// use. Everything operational is configured from the environment.
import { get, healthCheck, Response, run } from 'httpy'

get('/', () => Response.text('Hello from HTTPy\n'))

// Liveness: the process answers at all. Readiness: it wants traffic
// (503 from the moment a shutdown begins).
get('/livez', () => Response.text('ok'))
healthCheck('/readyz')

const env = process.env
const seconds = (v, def) => (v === undefined || v === '' ? def : Number(v))

await run({
  host: env.HOST ?? '0.0.0.0',
  port: Number(env.PORT ?? 8080),
  // One process per pod by default: scale with replicas, not workers.
  workers: env.WORKERS ? Number(env.WORKERS) : undefined,
  // Comma-separated addresses/CIDRs of the proxies in front (the ingress).
  trustProxy: env.TRUST_PROXY || false,
  metrics: true,
  accessLog: env.ACCESS_LOG === 'off' ? false : { format: 'json' },
  shutdownDelay: seconds(env.SHUTDOWN_DELAY, 5),
  shutdownTimeout: seconds(env.SHUTDOWN_TIMEOUT, 20),
})
