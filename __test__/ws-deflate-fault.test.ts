/**
 * A compressor that fails (zlib-ng cannot build it, or a deflate fails half
 * way) closes that socket with 1011 and sends no part of the message; the
 * server goes on serving. zlib-ng only fails like this when memory runs
 * out, so the engine's fault switch (`HTTPY_TEST_WS_DEFLATE_FAULT`, read
 * once per process at the first compressed message: set before anything
 * in this file compresses) makes zlib-ng return its errors for messages
 * that start with a marker. The client is the `ws` package.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { App, type Server, type WebSocketOptions } from '../ts/index.js'
import { echoWebSocket, listen } from './helpers/index.js'

process.env.HTTPY_TEST_WS_DEFLATE_FAULT = '1'

const INIT = 'httpy-test-fault:deflate-init'
const MIDWAY = 'httpy-test-fault:deflate-midway'
const body = (mark: string) => mark + JSON.stringify({ user: 'ann', text: 'hello from the dashboard' }).repeat(20)

let server: Server
const closes: { path: string; code: number; reason: string }[] = []

beforeAll(async () => {
  const app = new App()
  const routes: [string, WebSocketOptions][] = [
    ['/shared', { compression: 'shared' }],
    ['/dedicated', { compression: 'dedicated' }],
  ]
  for (const [path, opts] of routes) echoWebSocket(app, path, opts)
  app.websocket('/pubsub', async (ws) => {
    ws.subscribe('t')
    const { code, reason } = await ws.onMessage((m) => void app.publish('t', m.data))
    closes.push({ path: '/pubsub', code, reason })
  })
  server = await listen(app)
})
afterAll(() => server.close({ timeout: 1 }))

/** Opens a compressed socket, sends `text`, and returns what came back
 * before the close, the close code and reason. */
function exchange(path: string, text: string): Promise<{ messages: string[]; code: number; reason: string; agreed: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}${path}`, { perMessageDeflate: true })
    const messages: string[] = []
    let agreed = ''
    const timer = setTimeout(() => {
      ws.terminate()
      reject(new Error(`no close on ${path} within 5 s; got ${messages.length} messages`))
    }, 5000)
    ws.once('upgrade', (res) => (agreed = String(res.headers['sec-websocket-extensions'] ?? '')))
    ws.on('open', () => ws.send(text))
    ws.on('message', (d) => {
      messages.push(String(d))
      // A good echo: the exchange is over, close normally.
      if (messages.length === 1) ws.close(1000, 'done')
    })
    ws.on('close', (code, reason) => {
      clearTimeout(timer)
      resolve({ messages, code, reason: String(reason), agreed })
    })
    ws.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })
}

describe('websocket deflate: a failing compressor', () => {
  for (const path of ['/shared', '/dedicated']) {
    for (const mark of [INIT, MIDWAY]) {
      it(`${path}: ${mark.split(':')[1]} fails the socket with 1011, no message, and the server keeps serving`, async () => {
        const bad = await exchange(path, body(mark))
        expect(bad.agreed).toMatch(/^permessage-deflate/)
        expect(bad.messages).toEqual([])
        expect(bad.code).toBe(1011)
        expect(bad.reason).toBe('compression failed')
        // A compressed echo on the same route works right after.
        const good = await exchange(path, body('ok:'))
        expect(good.messages).toEqual([body('ok:')])
        expect(good.code).toBe(1000)
      })
    }
  }

  it('a published message whose compression fails closes its subscribers with 1011, the handler sees 1011', async () => {
    const bad = await exchange('/pubsub', body(MIDWAY))
    expect(bad.messages).toEqual([])
    expect(bad.code).toBe(1011)
    await expect.poll(() => closes.at(-1)).toEqual({ path: '/pubsub', code: 1011, reason: 'compression failed' })
    const good = await exchange('/pubsub', body('ok:'))
    expect(good.messages).toEqual([body('ok:')])
  })
})
