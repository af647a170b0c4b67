/**
 * A real browser as the WebSocket client: headless Chromium opens a page
 * served by HTTPy, and the page's `new WebSocket(...)` negotiates
 * permessage-deflate, exchanges text and binary messages and closes with a
 * code; over `ws://` (HTTP/1.1) and over `wss://` on a TLS server that
 * speaks HTTP/2, where the server records which HTTP version each socket
 * arrived on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import { launchChromium, type Browser } from './helpers/chromium.js'
import { listen, requireTool, until } from './helpers/index.js'

const haveChromium = requireTool('chromium', 'a real browser as a WebSocket client')
const haveOpenssl = requireTool('openssl', 'the wss:// server certificate')

interface Seen {
  httpVersion: string
  extensions: string
  closed?: { code: number; reason: string }
}

function makeApp(seen: Seen[]): App {
  const app = new App()
  app.get('/', () => Response.html('<!doctype html><title>httpy websocket</title><p>ok</p>'))
  app.websocket('/ws', (ws) => {
    const s: Seen = { httpVersion: ws.request.httpVersion, extensions: ws.headers.get('sec-websocket-extensions') ?? '' }
    seen.push(s)
    void ws.closedPromise.then((c) => (s.closed = c))
    return ws.onMessage((m) => {
      if (m.type === 'text') void ws.sendText(m.data)
      else void ws.sendBinary(m.data)
    })
  })
  return app
}

/** Runs in the page: open, echo a large JSON text and a binary message, close with 4000. */
const script = (url: string) => `(async () => {
  const ws = new WebSocket(${JSON.stringify(url)})
  ws.binaryType = 'arraybuffer'
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('websocket error')) })
  const next = () => new Promise((resolve) => { ws.onmessage = (e) => resolve(e.data) })
  const text = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ id: i, user: 'user' + (i % 7), text: 'hello from the dashboard' })))
  ws.send(text)
  const back = await next()
  ws.send(new Uint8Array([0, 1, 2, 253, 254, 255]).buffer)
  const bin = await next()
  const closed = new Promise((resolve) => { ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean }) })
  ws.close(4000, 'bye from the browser')
  return { extensions: ws.extensions, textEchoed: back === text, textLength: text.length, bin: Array.from(new Uint8Array(bin)), close: await closed }
})()`

interface PageResult {
  extensions: string
  textEchoed: boolean
  textLength: number
  bin: number[]
  close: { code: number; reason: string; wasClean: boolean }
}

describe.skipIf(!haveChromium || !haveOpenssl)('WebSocket from headless Chromium', () => {
  let browser: Browser
  let certs: TestCerts
  const servers: Server[] = []
  beforeAll(async () => {
    certs = makeCerts()
    browser = await launchChromium()
  }, 30_000)
  afterAll(async () => {
    await browser?.close()
    await Promise.all(servers.map((s) => s.close({ timeout: 1 })))
    certs?.cleanup()
  })

  it('ws:// on HTTP/1.1: negotiates permessage-deflate, echoes text and binary, closes with a code', async () => {
    const seen: Seen[] = []
    const server = await listen(makeApp(seen))
    servers.push(server)
    const page = await browser.open(`http://127.0.0.1:${server.port}/`)
    const r = await page.evaluate<PageResult>(script(`ws://127.0.0.1:${server.port}/ws`))
    expect(r.extensions).toBe('permessage-deflate; server_no_context_takeover; client_no_context_takeover')
    expect(r.textEchoed).toBe(true)
    expect(r.textLength).toBeGreaterThan(10_000)
    expect(r.bin).toEqual([0, 1, 2, 253, 254, 255])
    expect(r.close).toEqual({ code: 4000, reason: 'bye from the browser', wasClean: true })
    await until(() => seen[0]?.closed !== undefined)
    expect(seen[0]).toMatchObject({ httpVersion: '1.1', closed: { code: 4000, reason: 'bye from the browser' } })
    // What the browser offered.
    expect(seen[0]?.extensions).toContain('permessage-deflate')
  })

  it('wss:// on an HTTP/2 server: the socket rides the page\'s HTTP/2 connection (RFC 8441)', async () => {
    const seen: Seen[] = []
    const server = await listen(makeApp(seen), { tls: { cert: certs.certFile, key: certs.keyFile } })
    servers.push(server)
    const page = await browser.open(`https://127.0.0.1:${server.port}/`)
    expect(await page.evaluate<string>('performance.getEntriesByType("navigation")[0].nextHopProtocol')).toBe('h2')
    const r = await page.evaluate<PageResult>(script(`wss://127.0.0.1:${server.port}/ws`))
    expect(r.extensions).toBe('permessage-deflate; server_no_context_takeover; client_no_context_takeover')
    expect(r.textEchoed).toBe(true)
    expect(r.bin).toEqual([0, 1, 2, 253, 254, 255])
    expect(r.close).toEqual({ code: 4000, reason: 'bye from the browser', wasClean: true })
    await until(() => seen[0]?.closed !== undefined)
    expect(seen[0]).toMatchObject({ httpVersion: '2', closed: { code: 4000, reason: 'bye from the browser' } })
  })
})
