'use strict';
// The `ws` package on node:http for bench/ws-compressed.mjs: /ws echoes,
// /pubsub sends what any socket sends to every socket of the path (ws has
// no topics: one send, and so one compression, per subscriber).
// permessage-deflate with threshold 128, or none with WS_COMPRESSION=off.
process.env.WS_NO_BUFFER_UTIL = '1';
process.env.WS_NO_UTF_8_VALIDATE = '1';
const http = require('node:http');
const { WebSocketServer } = require('ws');

const PORT = Number(process.env.PORT) || 38122;
const perMessageDeflate = process.env.WS_COMPRESSION === 'off' ? false : { threshold: 128 };
const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
const echo = new WebSocketServer({ noServer: true, perMessageDeflate });
const pubsub = new WebSocketServer({ noServer: true, perMessageDeflate });
echo.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
pubsub.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => { for (const c of pubsub.clients) c.send(data, { binary: isBinary }); });
  ws.on('error', () => {});
});
server.on('upgrade', (req, socket, head) => {
  const wss = req.url === '/ws' ? echo : req.url === '/pubsub' ? pubsub : undefined;
  if (!wss) return socket.destroy();
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});
server.listen(PORT, '127.0.0.1', () => console.log(`ws-node-deflate listening on 127.0.0.1:${PORT}`));
