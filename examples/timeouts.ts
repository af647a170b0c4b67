/**
 * Timeouts (guide: "Timeouts"): keep idle connections for a minute, give a
 * request 30 seconds to arrive and be answered (408 / 503 beyond).
 *
 *   npx tsx examples/timeouts.ts
 *   curl http://127.0.0.1:8080/
 */
import { Response, get, run } from 'httpy'

get('/', () => Response.text('Hello with custom timeouts'))

const host = process.env.HOST ?? '127.0.0.1'
await run({
  host,
  port: Number(process.env.PORT ?? 8080),
  keepAliveTimeout: 60, // seconds (default: 5)
  requestTimeout: 30, // seconds (default: 60)
})
