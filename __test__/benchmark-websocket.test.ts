import { execFile } from 'node:child_process'
import http from 'node:http'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { App, Response, type Server } from '../ts/index.js'
import { BenchmarkError, benchmarkRoute } from '../ts/benchmark.js'
import { listen } from './helpers/index.js'

describe('benchmarkRoute WebSocket echo mode', () => {
  let plain: http.Server
  let wss: WebSocketServer
  let wsUrl = ''
  let messages = 0
  let connections = 0
  let httpy: Server
  let httpyMessages = 0

  beforeAll(async () => {
    // An independent echo server: the `ws` package.
    plain = http.createServer((_req, res) => res.writeHead(404).end())
    wss = new WebSocketServer({ server: plain, path: '/ws' })
    wss.on('connection', (ws, req) => {
      connections++
      const dropAfter = req.url === '/ws?drop=1' ? 1 : Infinity
      let seen = 0
      ws.on('message', (data, isBinary) => {
        messages++
        if (++seen > dropAfter) return ws.terminate()
        ws.send(data, { binary: isBinary })
      })
    })
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r))
    wsUrl = `ws://127.0.0.1:${(plain.address() as AddressInfo).port}`

    const app = new App()
    app.websocket('/echo', async (ws) => {
      for await (const msg of ws) {
        httpyMessages++
        if (msg.type === 'text') await ws.sendText(msg.data)
        else await ws.sendBinary(msg.data)
      }
    })
    app.get('/plain', () => Response.text('not a websocket'))
    httpy = await listen(app)
  })
  afterAll(async () => {
    for (const c of wss.clients) c.terminate()
    wss.close()
    await new Promise((r) => plain.close(r))
    await httpy.close({ timeout: 0.5 })
  })

  it('counts echoed messages the ws server saw, one connection per client', async () => {
    messages = 0
    connections = 0
    const r = await benchmarkRoute({ baseUrl: wsUrl, route: '/ws', protocol: 'websocket', numRequests: 1200, concurrency: 6 })
    expect(r.protocol).toBe('websocket')
    expect(r.totalRequests).toBe(1200)
    expect(r.errors).toBe(0)
    expect(messages).toBe(1200)
    expect(connections).toBe(6)
    expect(r.connectionsOpened).toBe(6)
    expect(r.bytesReceived).toBe(1200 * 32)
    expect(r.statusCounts).toEqual({})
    expect(r.p99ResponseTime).toBeGreaterThan(0)
  })

  it('sends the body as the message (binary when it is not UTF-8)', async () => {
    const r = await benchmarkRoute({ baseUrl: wsUrl, route: '/ws', protocol: 'ws', body: Buffer.from([0xff, 0xfe, 0, 1]), numRequests: 50, concurrency: 2 })
    expect(r.errors).toBe(0)
    expect(r.bytesReceived).toBe(50 * 4)
    const big = await benchmarkRoute({ baseUrl: wsUrl, route: '/ws', protocol: 'ws', body: 'y'.repeat(70_000), numRequests: 20, concurrency: 2 })
    expect(big.errors).toBe(0)
    expect(big.bytesReceived).toBe(20 * 70_000)
  })

  it('loads an HTTPy websocket route', async () => {
    httpyMessages = 0
    const r = await benchmarkRoute({ baseUrl: httpy.url, route: '/echo', protocol: 'websocket', numRequests: 800, concurrency: 4 })
    expect(r.totalRequests).toBe(800)
    expect(r.errors).toBe(0)
    expect(httpyMessages).toBe(800)
    expect(r.bytesReceived).toBe(800 * 32)
  })

  it('a dropped connection is an io error, then the client reconnects', async () => {
    const r = await benchmarkRoute({ baseUrl: wsUrl, route: '/ws?drop=1', protocol: 'websocket', numRequests: 10, concurrency: 1, timeout: 2 })
    expect(r.totalRequests).toBe(10)
    // Every second message hits a terminated connection.
    expect(r.errorCounts.io).toBe(5)
    expect(r.totalRequests - r.errors).toBe(5)
  })

  it('httpy bench takes a ws:// URL', async () => {
    messages = 0
    const out = await new Promise<{ code: number; stdout: string }>((resolve) =>
      execFile(process.execPath, ['--import', 'tsx', join(__dirname, '..', 'ts', 'cli.ts'), 'bench', `${wsUrl}/ws`, '-n', '300', '-c', '3', '--json'], { timeout: 30_000 }, (err, stdout) =>
        resolve({ code: err ? Number(err.code ?? 1) : 0, stdout }),
      ),
    )
    expect(out.code).toBe(0)
    const r = JSON.parse(out.stdout)
    expect(r.protocol).toBe('websocket')
    expect(r.totalRequests).toBe(300)
    expect(messages).toBe(300)
  })

  it('a refused upgrade is a clear error', async () => {
    const err = await benchmarkRoute({ baseUrl: httpy.url, route: '/plain', protocol: 'websocket', numRequests: 3 }).catch((e) => e)
    expect(err).toBeInstanceOf(BenchmarkError)
    expect(err.message).toMatch(/upgrade refused with status (404|405|200|426)/)
    expect(err.results.errorCounts.connect).toBe(3)
  })
})
