/**
 * A Hono app, unchanged, on HTTPy (docs/fetch.md): `serve({ fetch })`
 * in place of `@hono/node-server`'s `serve`.
 *
 *   npx tsx examples/hono.ts
 *   curl http://127.0.0.1:8080/users/7
 */
import { Hono } from 'hono'
import { serve, type FetchInfo } from 'httpy'

const app = new Hono<{ Bindings: FetchInfo }>()
app.get('/', (c) => c.text('Hello from Hono on HTTPy'))
app.get('/users/:id', (c) => c.json({ id: c.req.param('id'), client: c.env.remoteAddress.address }))

const host = process.env.HOST ?? '127.0.0.1'
const server = await serve({ fetch: app.fetch, host, port: Number(process.env.PORT ?? 8080) })
console.log(`listening on ${server.url}`)
