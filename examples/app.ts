/**
 * The example app behind `npm start`: the guide's user API on
 * http://127.0.0.1:8080, with the guide's `cached` decorator on the slow route.
 *
 *   npm start                      # or: npx tsx examples/app.ts
 *   curl http://127.0.0.1:8080/api/users/7/profile
 *
 * HOST and PORT override the address (PORT=0 picks a free port).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Response, cached, get, run, type Request } from 'httpy'

interface User {
  id: number
  name: string
  email: string
}

const users: User[] = Array.from({ length: 50 }, (_, i) => ({
  id: i + 1,
  name: `User ${i + 1}`,
  email: `user${i + 1}@example.com`,
}))

function findUser(req: Request): User | undefined {
  const id = Number(req.pathParams.id)
  return Number.isInteger(id) ? users.find((u) => u.id === id) : undefined
}

// Registration order does not matter: literal segments beat parameters.
get('/api/users', (req) => {
  const limit = Math.min(Number(req.query.get('limit') ?? users.length) || users.length, users.length)
  return Response.json(users.slice(0, limit))
})

get('/api/users/{id}', (req) => {
  const user = findUser(req)
  return user ? Response.json(user) : Response.json({ error: 'User not found' }, 404)
})

get('/api/users/{id}/profile', (req) => {
  const user = findUser(req)
  if (!user) return Response.json({ error: 'User not found' }, 404)
  return Response.json({ ...user, bio: `${user.name} likes fast servers.`, joined: '2024-01-01' })
})

get('/api/large-dataset', () => {
  const data = Array.from({ length: 10_000 }, (_, i) => ({ id: i, name: `Item ${i}` }))
  // Serialise once into bytes and send them as they are (the guide's orjson step).
  const jsonBytes = Buffer.from(JSON.stringify(data))
  return new Response(jsonBytes, { headers: { 'Content-Type': 'application/json' } })
})

// The guide's `@cached(ttl_seconds=300)`: the first call takes two seconds,
// later ones within five minutes are answered from the cache.
get(
  '/api/expensive-operation',
  cached({ ttl: 300 })(async () => {
    await sleep(2000) // stands in for an expensive computation
    return Response.json({ result: 'expensive calculation' })
  }),
)

const host = process.env.HOST ?? '127.0.0.1'
await run({ host, port: Number(process.env.PORT ?? 8080) })
