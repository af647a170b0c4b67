// HTTPy with JS handlers for every workload of `npm run bench`, plus the
// native-path routes (static file, cached route) when this build has them.
// Prints `READY {json}` once listening on $PORT (0 = any free port).
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { App, Response } from '../../dist/index.js'
import { BIG, BIG_JSON, HELLO, port, ready } from './common.mjs'

const app = new App()
app.get('/plaintext', () => new Response(HELLO, { headers: { 'content-type': 'text/plain' } }))
app.get('/json', () => Response.json({ message: HELLO }))
app.get('/users/{id}', (req) => Response.json({ id: req.pathParams.id }))
app.post('/echo', (req) => new Response(req.body, { headers: { 'content-type': 'application/json' } }))
app.get('/100k', () => new Response(BIG, { headers: { 'content-type': 'application/octet-stream' } }))

const features = { websocket: false, serveStatic: false, cache: false, compression: false }

// Hooks for features other parts of the project add; each is used only if present.
if (typeof app.websocket === 'function') {
  // The listener style, like the `ws` package's 'message' event it is
  // compared with.
  app.websocket('/ws', (ws) =>
    ws.onMessage((m) => void (m.type === 'text' ? ws.sendText(m.data) : ws.sendBinary(m.data))),
  )
  // Fan-out happens in Rust: one publish call per message, whatever the
  // number of subscribers.
  app.websocket('/pubsub', async (ws) => {
    ws.subscribe('all')
    for await (const m of ws) app.publish('all', m.data)
  })
  features.websocket = true
}
if (typeof app.serveStatic === 'function') {
  const dir = mkdtempSync(join(tmpdir(), 'httpy-bench-'))
  writeFileSync(join(dir, '100k.bin'), BIG)
  app.serveStatic('/static', dir)
  features.serveStatic = true
}
if (process.env.HTTPY_BENCH_CACHE !== '0') {
  app.get('/cached', () => Response.json({ message: HELLO }), { cache: { ttl: 3600 } })
  // /plaintext answered from the native route cache: the "JS − native" row
  // of `npm run bench` is /plaintext minus this one.
  app.get('/plaintext-cached', () => new Response(HELLO, { headers: { 'content-type': 'text/plain' } }), { cache: { ttl: 3600 } })
  // The 100 KB body from the route cache: the native answer `/100k` is
  // compared with in `bench/threads.mjs` (docs/performance.md §10.1).
  app.get('/100k-cached', () => new Response(BIG, { headers: { 'content-type': 'application/octet-stream' } }), { cache: { ttl: 3600 } })
  features.cache = true
}

// Native compression; it only applies when a client sends Accept-Encoding,
// which only the compression workload does.
app.get('/big-json', () => new Response(BIG_JSON, { headers: { 'content-type': 'application/json' } }))
features.compression = true
// The HTTPS rows: the same app over TLS (rustls defaults: TLS 1.2 and 1.3,
// its default cipher suites and groups).
const tls = process.env.BENCH_TLS_CERT ? { tls: { cert: process.env.BENCH_TLS_CERT, key: process.env.BENCH_TLS_KEY } } : {}
// The HTTP/3 rows (BENCH_HTTP3=1, with a certificate): QUIC on a free UDP port.
const http3 = tls.tls && process.env.BENCH_HTTP3 === '1' ? { http3Port: 0 } : {}
const server = await app.listen({ host: '127.0.0.1', port: port(), compression: true, ...tls, ...http3 })
ready({ name: 'httpy', port: server.port, http3Port: server.http3Port, pid: process.pid, features })
process.on('SIGTERM', () => void server.close({ timeout: 1 }).then(() => process.exit(0)))
