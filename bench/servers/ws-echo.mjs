// Pure-JS WebSocket baseline: the `ws` package on node:http, echo on /ws.
import http from 'node:http'
import { WebSocketServer } from 'ws'
import { port, ready } from './common.mjs'

const server = http.createServer((_req, res) => {
  res.writeHead(404)
  res.end()
})
const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false })
wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
server.listen(port(), '127.0.0.1', () => ready({ name: 'ws', port: server.address().port, pid: process.pid }))
process.on('SIGTERM', () => process.exit(0))
