/**
 * Route caching (guide: "Route Caching"): the guide's hand-written
 * decorator translated line by line, next to the built-in `cached()`.
 *
 *   npx tsx examples/route-caching.ts
 *   curl http://127.0.0.1:8080/api/expensive-operation   # 2 s, then instant for 5 min
 *   curl http://127.0.0.1:8080/api/expensive-builtin     # same, with cached() from httpy
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Response, cached, get, run, type Handler } from 'httpy'

// Simple in-memory cache: key -> [result, timestamp in seconds].
const cache = new Map<string, [Response, number]>()

function cachedRoute(ttlSeconds = 60): (handler: Handler) => Handler {
  return (handler) => async (req) => {
    // Create cache key from path and query params.
    const cacheKey = `${req.path}?${req.queryString}`
    // Check if the result is cached and not expired.
    const entry = cache.get(cacheKey)
    if (entry && Date.now() / 1000 - entry[1] < ttlSeconds) {
      const [result] = entry
      // Responses are mutable (middleware may rewrite them), so hand out a copy.
      return new Response(result.body, { status: result.status, headers: [...result.headers] })
    }
    // Call the original handler and cache its result.
    const result = await handler(req)
    cache.set(cacheKey, [result, Date.now() / 1000])
    return result
  }
}

async function expensiveOperation(): Promise<Response> {
  await sleep(2000) // simulate an expensive operation
  return Response.json({ result: 'expensive calculation' })
}

get('/api/expensive-operation', cachedRoute(300)(expensiveOperation))

// The same with the library: `cached({ ttl })` also runs concurrent misses
// once, and `get(path, handler, { cache: { ttl } })` is the option form.
get('/api/expensive-builtin', cached({ ttl: 300 })(expensiveOperation))

const host = process.env.HOST ?? '127.0.0.1'
await run({ host, port: Number(process.env.PORT ?? 8080) })
