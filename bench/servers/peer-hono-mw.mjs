// The peers kit's Hono app (as peer-hono.mjs) behind one middleware that
// sets a header after the handler ran, `await next(); c.header(…)`: the
// pattern of Hono's own middleware example and of `hono/cors` with a fixed
// origin. Hono then rebuilds the response as `new Response(c.res.body,
// c.res)`, which reads the body as a stream. On 127.0.0.1:$PORT (default
// 38014): `node bench/threads.mjs --server peer-hono-mw.mjs --route /json`.
import { Hono } from 'hono'
import { serve } from '../../dist/index.js'

const app = new Hono()
app.use(async (c, next) => {
  await next()
  c.header('x-served-by', 'httpy')
})
app.get('/plaintext', (c) => c.text('Hello, World!'))
app.get('/json', (c) => c.json({ message: 'Hello, World!' }))
app.get('/users/:id', (c) => c.json({ id: c.req.param('id') }))

const server = await serve({ fetch: app.fetch, host: '127.0.0.1', port: Number(process.env.PORT ?? 38014) })
console.log(`httpy-hono-mw listening on ${server.url}`)
