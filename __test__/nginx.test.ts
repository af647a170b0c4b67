/**
 * HTTPy behind a real nginx (Debian `nginx-light`), configured with
 * `deploy/nginx.conf` (the guide's reverse-proxy recipe) — the same file
 * the deployment docs show, with only the ports changed. The client
 * connects from 127.0.0.2 so that its address differs from nginx's.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { App, Response, type Server } from '../ts/index.js'
import { listen } from './helpers/index.js'
import { startNginx, type Nginx } from './helpers/nginx.js'
import { freePort } from './helpers/proc.js'
import { requireTool } from './helpers/tools.js'

const CLIENT_ADDR = '127.0.0.2'

function get(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, localAddress: CLIENT_ADDR, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.setTimeout(5000, () => req.destroy(new Error('timeout')))
    req.on('error', reject)
  })
}

// nginx is a system package that .ci/run installs (see helpers/tools.ts for what a missing one does).
describe.skipIf(!requireTool('nginx'))('behind nginx (deploy/nginx.conf)', () => {
  let dir: string
  let nginx: Nginx | undefined
  let server: Server
  let plain: Server
  let port: number

  beforeAll(async () => {
    const app = new App()
    app.get('/who', (req) =>
      Response.json({ ip: req.ip, scheme: req.scheme, host: req.host, peer: req.remoteAddress, path: req.path }),
    )
    app.post('/echo', async (req) => Response.text(await req.text()))
    app.websocket('/ws/echo', async (ws) => {
      await ws.sendText(`hello ${ws.request.ip}`)
      for await (const m of ws) {
        if (m.type === 'text') await ws.sendText(`echo ${m.data}`)
      }
    })
    server = await listen(app, { trustProxy: '127.0.0.1' })
    const other = new App()
    other.get('/who', (req) => Response.json({ ip: req.ip, peer: req.remoteAddress }))
    plain = await listen(other)

    dir = mkdtempSync(join(tmpdir(), 'httpy-nginx-'))
    chmodSync(dir, 0o755) // nginx workers run as an unprivileged user
    port = await freePort()
    const recipe = readFileSync(new URL('../deploy/nginx.conf', import.meta.url), 'utf8')
    expect(recipe).toContain('listen 80;')
    expect(recipe).toContain('server 127.0.0.1:8080;')
    const site = recipe
      .replace('listen 80;', `listen 127.0.0.1:${port};`)
      .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${server.port};`)
    writeFileSync(join(dir, 'site.conf'), site)
    nginx = await startNginx(dir, [`include ${dir}/site.conf;`], async () => {
      await get(port, '/who')
      return true
    })
  })

  afterAll(async () => {
    await nginx?.stop()
    await server?.close()
    await plain?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('proxies HTTP, and with trustProxy req.ip, scheme and host are the client’s', async () => {
    const r = await get(port, '/who?x=1', { host: 'shop.example' })
    expect(r.status).toBe(200)
    expect(JSON.parse(r.body)).toEqual({
      ip: CLIENT_ADDR,
      scheme: 'http',
      host: 'shop.example',
      peer: '127.0.0.1',
      path: '/who',
    })
  })

  it('a client-forged X-Forwarded-For is not believed', async () => {
    const r = await get(port, '/who', { 'x-forwarded-for': '203.0.113.66', 'x-real-ip': '203.0.113.67' })
    expect(JSON.parse(r.body).ip).toBe(CLIENT_ADDR)
  })

  it('request bodies pass through', async () => {
    const body = 'x'.repeat(100_000)
    const got = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port, path: '/echo', method: 'POST', localAddress: CLIENT_ADDR, agent: false },
        (res) => {
          let s = ''
          res.setEncoding('utf8')
          res.on('data', (c: string) => (s += c))
          res.on('end', () => resolve(s))
        },
      )
      req.on('error', reject)
      req.end(body)
    })
    expect(got).toBe(body)
  })

  it('a server without trustProxy ignores the same headers', async () => {
    // Sent straight to a server that trusts no proxy.
    const r = await get(plain.port, '/who', { 'x-forwarded-for': '203.0.113.66', 'x-real-ip': '203.0.113.66' })
    expect(JSON.parse(r.body)).toEqual({ ip: CLIENT_ADDR, peer: CLIENT_ADDR })
  })

  it('proxies a WebSocket (location /ws): upgrade, both directions, client address, clean close', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/echo`, { localAddress: CLIENT_ADDR })
    const got: string[] = []
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
    ws.on('message', (data) => {
      got.push(String(data))
      if (got.length === 1) ws.send('ping through nginx')
      if (got.length === 2) ws.close(1000)
    })
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => resolve())
      ws.on('error', reject)
    })
    expect(await closed).toBe(1000)
    expect(got).toEqual([`hello ${CLIENT_ADDR}`, 'echo ping through nginx'])
  })

  it('nginx logged the proxied requests, the WebSocket upgrade as 101', async () => {
    const log = readFileSync(join(dir, 'access.log'), 'utf8')
    expect(log).toMatch(/127\.0\.0\.2 - - \[[^\]]+\] "GET \/who\?x=1 HTTP\/1\.1" 200/)
    expect(log).toMatch(/127\.0\.0\.2 - - \[[^\]]+\] "GET \/ws\/echo HTTP\/1\.1" 101/)
  })
})
