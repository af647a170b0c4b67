/**
 * Keep-alive (guide: "Keep-Alive Settings"): idle connections stay open for
 * two minutes and serve at most 1000 requests each.
 *
 *   npx tsx examples/keep-alive.ts
 *   curl http://127.0.0.1:8080/ http://127.0.0.1:8080/   # one connection, two requests
 */
import { Response, get, run } from 'httpy'

get('/', () => Response.text('Hello over a kept-alive connection'))

const host = process.env.HOST ?? '127.0.0.1'
await run({
  host,
  port: Number(process.env.PORT ?? 8080),
  keepAlive: true, // the default
  keepAliveTimeout: 120, // 2 minutes
  maxKeepAliveRequests: 1000, // then the connection is closed after its response
})
