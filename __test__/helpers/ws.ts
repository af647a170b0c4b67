/**
 * WebSocket helpers: an echo route (text back as text, binary as binary),
 * the peer every conformance and compression test talks to.
 */
import type { App, WebSocketOptions } from '../../ts/index.js'

export function echoWebSocket(app: App, path: string, opts: WebSocketOptions = {}): void {
  app.websocket(
    path,
    (ws) =>
      ws.onMessage((m) => {
        if (m.type === 'text') void ws.sendText(m.data)
        else void ws.sendBinary(m.data)
      }),
    opts,
  )
}
