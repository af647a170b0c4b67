// HTTPy as a peer of ../shared/peers/ws.sh: a WebSocket route on /ws that
// echoes every message as it came (text as text, binary as binary), on
// 127.0.0.1:$PORT (default 38110), default WebSocket options (no
// compression is offered). See bench/peers-ws-extra.sh.
import { App } from '../../dist/index.js'
import { listenPeer } from './peer-listen.mjs'

const app = new App()
// The listener style (`ws.onMessage`), like the other servers' callbacks;
// `HTTPY_WS_STYLE=iterator` uses `for await` instead, to measure that path.
app.websocket('/ws', async (ws) => {
  if (process.env.HTTPY_WS_STYLE === 'iterator') {
    for await (const msg of ws) {
      if (msg.type === 'text') await ws.sendText(msg.data)
      else await ws.sendBinary(msg.data)
    }
    return
  }
  return ws.onMessage((msg) => void (msg.type === 'text' ? ws.sendText(msg.data) : ws.sendBinary(msg.data)))
})
await listenPeer(app, 'httpy-ws', 38110)
