'use strict';
// uWebSockets.js for bench/ws-compressed.mjs, as the peers kit installs it
// (its work folder: $PEERS_WORK, default ~/.cache/httpy-peers; run
// `SETUP=1 bash ../shared/peers/ws.sh` once): /ws echoes, /pubsub publishes to one
// topic; `compression: SHARED_COMPRESSOR` (each message compressed on its
// own, no per-socket zlib state), or DISABLED with WS_COMPRESSION=off.
const os = require('node:os');
const path = require('node:path');
const { createRequire } = require('node:module');

const peers = process.env.PEERS_WORK || path.join(os.homedir(), '.cache', 'httpy-peers');
const uWS = createRequire(path.join(peers, 'package.json'))('@trufflesuite/uws-js-unofficial');

const PORT = Number(process.env.PORT) || 38121;
const compression = process.env.WS_COMPRESSION === 'off' ? uWS.DISABLED : uWS.SHARED_COMPRESSOR;
const common = { compression, maxPayloadLength: 64 * 1024, idleTimeout: 120, maxBackpressure: 256 * 1024 * 1024 };
const app = uWS.App();
app
  .ws('/ws', { ...common, message: (ws, message, isBinary) => { ws.send(message, isBinary, true); } })
  .ws('/pubsub', {
    ...common,
    open: (ws) => { ws.subscribe('bench'); },
    message: (ws, message, isBinary) => { app.publish('bench', message, isBinary, true); },
  })
  .listen('127.0.0.1', PORT, (token) => {
    if (!token) { console.error(`uws: failed to listen on ${PORT}`); process.exit(1); }
    console.log(`uws-ws-deflate listening on 127.0.0.1:${PORT}`);
  });
