// HTTPy for bench/ws-compressed.mjs: /ws echoes every message (text as
// text, binary as binary), /pubsub subscribes each socket to one topic and
// publishes what any of them sends; permessage-deflate as WS_COMPRESSION
// says ('shared' by default, 'dedicated', or 'off'), threshold 128 bytes,
// zlib level WS_LEVEL (the default when unset). GET /deflates answers how
// many messages the process has deflated so far (`wsDeflateCount`), so the
// bench can show a publish is compressed once, not once per subscriber.
import { App, Response } from '../../dist/index.js'
import { native } from '../../dist/native.js'
import { listenPeer } from './peer-listen.mjs'

const mode = process.env.WS_COMPRESSION ?? 'shared'
const opts = { compression: mode === 'off' ? false : mode, threshold: 128, maxBackpressure: 256 * 1024 * 1024 }
if (process.env.WS_LEVEL) opts.compressionLevel = Number(process.env.WS_LEVEL)
const app = new App()
app.websocket('/ws', (ws) => ws.onMessage((m) => void (m.type === 'text' ? ws.sendText(m.data) : ws.sendBinary(m.data))), opts)
app.websocket(
  '/pubsub',
  (ws) => {
    ws.subscribe('bench')
    return ws.onMessage((m) => void app.publish('bench', m.data))
  },
  opts,
)
app.get('/deflates', () => Response.text(String(native.wsDeflateCount())))
await listenPeer(app, 'httpy-ws-deflate', 38120)
