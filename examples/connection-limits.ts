/**
 * Connection limits (guide: "Connection Pooling"): accept at most 10,000
 * open connections at once; further ones wait in the listen backlog.
 *
 *   npx tsx examples/connection-limits.ts
 *   curl http://127.0.0.1:8080/
 */
import { Response, get, run } from 'httpy'

get('/', () => Response.text('Hello within the connection limit'))

const host = process.env.HOST ?? '127.0.0.1'
await run({
  host,
  port: Number(process.env.PORT ?? 8080),
  maxConnections: 10000, // maximum concurrent connections
})
