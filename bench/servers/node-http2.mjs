// Pure-JS HTTP/2 baseline: node:http2 cleartext (h2c, prior knowledge),
// stream API, same routes and bodies. Prints `READY {json}` on $PORT.
import http2 from 'node:http2'
import { BIG, HELLO, port, ready } from './common.mjs'

function send(stream, type, body) {
  stream.respond({ ':status': 200, 'content-type': type, 'content-length': Buffer.byteLength(body) })
  stream.end(body)
}

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } })
server.on('stream', (stream, headers) => {
  const url = headers[':path'] ?? '/'
  const q = url.indexOf('?')
  const path = q < 0 ? url : url.slice(0, q)
  const method = headers[':method']
  if (method === 'GET') {
    if (path === '/plaintext') return send(stream, 'text/plain', HELLO)
    if (path === '/json') return send(stream, 'application/json', JSON.stringify({ message: HELLO }))
    if (path === '/100k') return send(stream, 'application/octet-stream', BIG)
    if (path.startsWith('/users/') && path.indexOf('/', 7) < 0 && path.length > 7) {
      return send(stream, 'application/json', JSON.stringify({ id: decodeURIComponent(path.slice(7)) }))
    }
  } else if (method === 'POST' && path === '/echo') {
    const chunks = []
    stream.on('data', (c) => chunks.push(c))
    stream.on('end', () => send(stream, 'application/json', Buffer.concat(chunks)))
    return
  }
  stream.respond({ ':status': 404 })
  stream.end('Not Found')
})
server.on('sessionError', () => {})
server.listen(port(), '127.0.0.1', () => ready({ name: 'node-http2', port: server.address().port, pid: process.pid }))
process.on('SIGTERM', () => process.exit(0))
