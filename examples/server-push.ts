/**
 * HTTP/2 server push (guide: "HTTP/2 Specific Optimizations"): the page
 * names its stylesheet and script in `pushResources`; over HTTP/2 they are
 * pushed with the page, over HTTP/1.1 they become `Link: rel=preload`
 * headers.
 *
 *   npx tsx examples/server-push.ts
 *   nghttp -nv https://127.0.0.1:8443/      # shows the PUSH_PROMISE frames
 *   curl -k -i --http1.1 https://127.0.0.1:8443/   # shows the Link header
 */
import { Response, get, run } from 'httpy'

get('/', () => {
  const response = Response.html(`<!DOCTYPE html>
<html>
<head>
  <title>My App</title>
  <link rel="stylesheet" href="/static/style.css">
  <script src="/static/app.js" defer></script>
</head>
<body>
  <h1>Welcome</h1>
</body>
</html>
`)
  // Push critical resources.
  response.pushResources = [
    ['/static/style.css', 'style'],
    ['/static/app.js', 'script'],
  ]
  return response
})

get('/static/style.css', () => new Response('h1 { color: rebeccapurple; }\n', { headers: { 'content-type': 'text/css' } }))
get('/static/app.js', () =>
  new Response("document.querySelector('h1').textContent += '!'\n", { headers: { 'content-type': 'application/javascript' } }),
)

const host = process.env.HOST ?? '127.0.0.1'
const server = await run({ host, port: Number(process.env.PORT ?? 8443), tls: 'self-signed' })
