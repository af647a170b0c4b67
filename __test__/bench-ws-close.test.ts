/**
 * The WebSocket load generator (`benchmarkRoute({ protocol: 'websocket' })`,
 * `httpy bench --ws`) ends each connection with a closing handshake: the
 * server sees close code 1000, not 1006 (dropped without a close frame).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, type Server, type WebSocketCloseInfo } from '../ts/index.js'
import { benchmarkRoute } from '../ts/benchmark.js'
import { listen } from './helpers/index.js'

describe('WebSocket load generator closes cleanly', () => {
  let server: Server
  const closes: Promise<WebSocketCloseInfo>[] = []

  beforeAll(async () => {
    const app = new App()
    app.websocket('/echo', (ws) => {
      closes.push(ws.closedPromise)
      return ws.onMessage((msg) => {
        if (msg.type === 'text') void ws.sendText(msg.data)
        else void ws.sendBinary(msg.data)
      })
    })
    server = await listen(app)
  })
  afterAll(async () => {
    await server.close({ timeout: 0.5 })
  })

  for (const stop of [{ numRequests: 400 }, { duration: 0.3 }]) {
    it(`every connection ends with close code 1000 (${Object.keys(stop)[0]})`, async () => {
      closes.length = 0
      const r = await benchmarkRoute({ baseUrl: server.url, route: '/echo', protocol: 'websocket', concurrency: 4, ...stop })
      expect(r.errors).toBe(0)
      expect(closes.length).toBe(4)
      const infos = await Promise.all(closes)
      expect(infos.map((i) => i.code)).toEqual([1000, 1000, 1000, 1000])
    })
  }
})
