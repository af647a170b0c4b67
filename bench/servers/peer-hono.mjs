// The peers kit's Hono app (its servers/hono-node.mjs routes), unchanged, on
// HTTPy's `serve({ fetch })`, on 127.0.0.1:$PORT (default 38013). Compare
// with bench/servers/hono-node.mjs (the same app on @hono/node-server).
import { Hono } from 'hono'
import { serve } from '../../dist/index.js'

const app = new Hono()
app.get('/plaintext', (c) => c.text('Hello, World!'))
app.get('/json', (c) => c.json({ message: 'Hello, World!' }))
app.get('/users/:id', (c) => c.json({ id: c.req.param('id') }))

const server = await serve({ fetch: app.fetch, host: '127.0.0.1', port: Number(process.env.PORT ?? 38013) })
console.log(`httpy-hono listening on ${server.url}`)
