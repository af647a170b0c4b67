// Bun.serve for bench/ws-compressed.mjs, run with the bun binary the peers
// kit installs (its work folder: $PEERS_WORK, default ~/.cache/httpy-peers;
// `SETUP=1 bash ../shared/peers/ws.sh` once): /ws echoes, /pubsub publishes
// to one topic. `perMessageDeflate` with Bun's shared compressor (each
// message compressed on its own, as uWS's SHARED_COMPRESSOR, which Bun's
// WebSocket is built on), or off with WS_COMPRESSION=off.
const PORT = Number(process.env.PORT) || 38123
const on = process.env.WS_COMPRESSION !== 'off'

const server = Bun.serve({
  port: PORT,
  hostname: '127.0.0.1',
  fetch(req, srv) {
    const path = new URL(req.url).pathname
    if ((path === '/ws' || path === '/pubsub') && srv.upgrade(req, { data: { path } })) return undefined
    return new Response('Not Found', { status: 404 })
  },
  websocket: {
    perMessageDeflate: on ? { compress: 'shared', decompress: 'shared' } : false,
    maxPayloadLength: 64 * 1024,
    idleTimeout: 120,
    backpressureLimit: 256 * 1024 * 1024,
    open(ws) {
      if (ws.data.path === '/pubsub') ws.subscribe('bench')
    },
    message(ws, message) {
      if (ws.data.path === '/pubsub') server.publish('bench', message, on)
      else ws.send(message, on)
    },
  },
})
console.log(`bun-ws-deflate listening on ${server.hostname}:${server.port}`)
