// A WHATWG fetch handler on HTTPy (`serve({ fetch })`) as a peer of the kit:
// the three common routes on 127.0.0.1:$PORT (default 38012). See
// bench/peers-extra.sh, bench/threads.mjs and docs/fetch.md.
import { serve } from '../../dist/index.js'

const HELLO = 'Hello, World!'

function fetch(request) {
  const url = request.url
  const path = url.slice(url.indexOf('/', 8))
  if (path === '/plaintext') return new Response(HELLO, { headers: { 'content-type': 'text/plain' } })
  if (path === '/json') return Response.json({ message: HELLO })
  if (path.startsWith('/users/')) return Response.json({ id: path.slice(7) })
  return new Response('Not Found', { status: 404 })
}

const server = await serve({ fetch, host: '127.0.0.1', port: Number(process.env.PORT ?? 38012) })
console.log(`httpy-fetch listening on ${server.url}`)
