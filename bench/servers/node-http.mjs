// Pure-JS baseline: node:http with the same routes and bodies as
// servers/httpy.mjs. Prints `READY {json}` once listening on $PORT. With
// $BENCH_TLS_CERT / $BENCH_TLS_KEY it is node:https instead: TLS 1.2 and
// 1.3, OpenSSL's default groups, and HTTPy's choice of suite (docs/tls-http2.md,
// "Cipher suites"): the server's order, AES-128-GCM first, ChaCha20 first
// for a client that lists it first (`honorCipherOrder`,
// `SSL_OP_PRIORITIZE_CHACHA`). BENCH_TLS_CLIENT_ORDER=1 gives node's
// defaults instead (the client's order, which puts AES-256-GCM first for
// OpenSSL, curl and rustls clients, the load generator among them).
import { constants } from 'node:crypto'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import tlsDefaults from 'node:tls'
import { gzipSync } from 'node:zlib'
import { BIG, BIG_JSON, HELLO, port, ready } from './common.mjs'

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

const serverOrder = process.env.BENCH_TLS_CLIENT_ORDER !== '1'
const tls = process.env.BENCH_TLS_CERT
  ? {
      cert: readFileSync(process.env.BENCH_TLS_CERT),
      key: readFileSync(process.env.BENCH_TLS_KEY),
      ...(serverOrder
        ? {
            ciphers: `TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:${tlsDefaults.DEFAULT_CIPHERS}`,
            honorCipherOrder: true,
            secureOptions: constants.SSL_OP_PRIORITIZE_CHACHA,
          }
        : {}),
    }
  : undefined
const handler = (req, res) => {
  const url = req.url ?? '/'
  const q = url.indexOf('?')
  const path = q < 0 ? url : url.slice(0, q)
  if (req.method === 'GET') {
    if (path === '/plaintext' || path === '/plaintext-cached') return send(res, 200, 'text/plain', HELLO)
    if (path === '/json' || path === '/cached') return send(res, 200, 'application/json', JSON.stringify({ message: HELLO }))
    if (path === '/100k' || path === '/static/100k.bin') return send(res, 200, 'application/octet-stream', BIG)
    if (path === '/big-json') {
      // The same work as HTTPy's compression: gzip per request at level 5.
      if (!/\bgzip\b/.test(req.headers['accept-encoding'] ?? '')) return send(res, 200, 'application/json', BIG_JSON)
      const z = gzipSync(BIG_JSON, { level: 5 })
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', vary: 'accept-encoding', 'content-length': z.length })
      return res.end(z)
    }
    if (path.startsWith('/users/') && path.indexOf('/', 7) < 0 && path.length > 7) {
      return send(res, 200, 'application/json', JSON.stringify({ id: decodeURIComponent(path.slice(7)) }))
    }
  } else if (req.method === 'POST' && path === '/echo') {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => send(res, 200, 'application/json', Buffer.concat(chunks)))
    return
  }
  send(res, 404, 'text/plain', 'Not Found')
}
const server = tls ? https.createServer(tls, handler) : http.createServer(handler)
server.keepAliveTimeout = 30_000
const name = tls ? 'node-https' : 'node-http'
server.listen(port(), '127.0.0.1', () => ready({ name, port: server.address().port, pid: process.pid }))
process.on('SIGTERM', () => process.exit(0))
