// Baseline for bench/threads.mjs: the peers kit's Hono app on
// @hono/node-server (node:http underneath), the way Hono runs on Node today.
import { Hono } from 'hono'
import { serve } from '@hono/node-server'

const PORT = Number(process.env.PORT ?? 38003)
const app = new Hono()
app.get('/plaintext', (c) => c.text('Hello, World!'))
app.get('/json', (c) => c.json({ message: 'Hello, World!' }))
app.get('/users/:id', (c) => c.json({ id: c.req.param('id') }))
serve({ fetch: app.fetch, port: PORT, hostname: '127.0.0.1' }, (info) => {
  console.log(`hono-node listening on 127.0.0.1:${info.port}`)
})
