// A WHATWG fetch handler on HTTPy (`serve({ fetch })`) as a peer of the kit:
// the three common routes on 127.0.0.1:$PORT (default 38012). With
// FETCH_APP=hono the same routes are the kit's Hono app (servers/hono-node.mjs
// there) served unchanged. See bench/peers-extra.sh and bench/threads.mjs.
import { serve } from '../../dist/index.js'

const HELLO = 'Hello, World!'
const PORT = Number(process.env.PORT ?? 38012)

async function honoApp() {
  const { Hono } = await import('hono')
  const app = new Hono()
  app.get('/plaintext', (c) => c.text(HELLO))
  app.get('/json', (c) => c.json({ message: HELLO }))
  app.get('/users/:id', (c) => c.json({ id: c.req.param('id') }))
  return app.fetch
}

function plain(request) {
  const url = request.url
  const path = url.slice(url.indexOf('/', 8))
  if (path === '/plaintext') return new Response(HELLO, { headers: { 'content-type': 'text/plain' } })
  if (path === '/json') return Response.json({ message: HELLO })
  if (path.startsWith('/users/')) return Response.json({ id: path.slice(7) })
  return new Response('Not Found', { status: 404 })
}

const name = process.env.FETCH_APP === 'hono' ? 'httpy-hono' : 'httpy-fetch'
const fetch = process.env.FETCH_APP === 'hono' ? await honoApp() : plain
const server = await serve({ fetch, host: '127.0.0.1', port: PORT })
console.log(`${name} listening on ${server.url}`)
