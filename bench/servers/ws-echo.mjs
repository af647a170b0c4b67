// Pure-JS WebSocket baseline: the `ws` package on node:http. /ws echoes;
// /pubsub subscribes every connection and sends each message it receives
// to all of them (a loop over the clients: what pub/sub costs in JS).
import http from 'node:http'
import { WebSocketServer } from 'ws'
import { port, ready } from './common.mjs'

const server = http.createServer((_req, res) => {
  res.writeHead(404)
  res.end()
})
const echo = new WebSocketServer({ noServer: true, perMessageDeflate: false })
const pubsub = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: true })
echo.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
pubsub.on('connection', (ws) =>
  ws.on('message', (data, isBinary) => {
    for (const c of pubsub.clients) c.send(data, { binary: isBinary })
  }),
)
server.on('upgrade', (req, socket, head) => {
  const wss = req.url === '/ws' ? echo : req.url === '/pubsub' ? pubsub : null
  if (!wss) return socket.destroy()
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
})
server.listen(port(), '127.0.0.1', () => ready({ name: 'ws', port: server.address().port, pid: process.pid }))
process.on('SIGTERM', () => process.exit(0))
