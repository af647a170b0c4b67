/**
 * Route matching (guide: "Route Matching"). The guide registers the most
 * specific route first; HTTPy matches in a tree where literal segments beat
 * parameters beat catch-alls, so the order below is only for reading.
 *
 *   npx tsx examples/route-ordering.ts
 *   curl http://127.0.0.1:8080/api/users/7/profile
 *   curl http://127.0.0.1:8080/api/users/7
 *   curl http://127.0.0.1:8080/api/users
 */
import { Response, get, run } from 'httpy'

// More specific routes first (any order gives the same result).
get('/api/users/{id}/profile', (req) => Response.json({ route: 'profile', id: req.pathParams.id }))

// Less specific routes later.
get('/api/users/{id}', (req) => Response.json({ route: 'user', id: req.pathParams.id }))

get('/api/users', () => Response.json({ route: 'list' }))

const host = process.env.HOST ?? '127.0.0.1'
await run({ host, port: Number(process.env.PORT ?? 8080) })
