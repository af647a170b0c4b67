/**
 * Static files served by the core (`serveStatic`, `Response.file`): bytes,
 * validators, conditional and range requests, index files, precompressed
 * siblings, the path traversal corpus, and the guide's hand-written
 * `/static/{path:path}` handler giving the same answers.
 */
import { createHash, randomBytes } from 'node:crypto'
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { brotliCompressSync, gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { listen, rawGet, rawRequest, statuses } from './helpers/index.js'

const SECRET = 'TOP-SECRET-OUTSIDE-ROOT'
let base: string
let root: string
let server: Server
let url: string
const css = 'body { color: red; }\n'.repeat(200)
const js = 'console.log("hi")\n'.repeat(50)
const bin = randomBytes(100 * 1024)
const big = randomBytes(3 * 1024 * 1024 + 123)

interface Got {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
}

/** node:http request that returns raw (undecoded) bytes. */
function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Got> {
  return rawGet(`${url}${path}`, headers, method)
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'httpy-static-'))
  root = join(base, 'public')
  mkdirSync(join(root, 'sub'), { recursive: true })
  mkdirSync(join(root, 'empty'))
  writeFileSync(join(base, 'secret.txt'), SECRET)
  writeFileSync(join(root, 'index.html'), '<h1>home</h1>')
  writeFileSync(join(root, 'sub', 'index.html'), '<h1>sub</h1>')
  writeFileSync(join(root, 'style.css'), css)
  writeFileSync(join(root, 'app.js'), js)
  writeFileSync(join(root, 'data.bin'), bin)
  writeFileSync(join(root, 'big.bin'), big)
  writeFileSync(join(root, '.env'), 'PASSWORD=1')
  writeFileSync(join(root, 'pre.css'), css)
  writeFileSync(join(root, 'pre.css.gz'), gzipSync(css))
  writeFileSync(join(root, 'pre.css.br'), brotliCompressSync(css))
  symlinkSync(join(base, 'secret.txt'), join(root, 'escape.txt'))
  symlinkSync(join(root, 'style.css'), join(root, 'alias.css'))

  const app = new App()
  app.serveStatic('/static', root, { maxAge: 86400 })
  app.serveStatic('/assets', root, { maxAge: 60, immutable: true, index: false, dotfiles: 'deny' })
  app.get('/download', () => Response.file(join(root, 'data.bin')))
  app.get('/download-big', () => Response.file(join(root, 'big.bin'), { headers: { 'content-type': 'application/x-big' } }))
  app.get('/missing-file', () => Response.file(join(root, 'nope.txt')))

  // The guide's handler, as written there, in TypeScript.
  const STATIC_DIR = root
  app.get('/guide/{path:path}', async (req) => {
    const path = req.pathParams.path ?? ''
    const filePath = join(STATIC_DIR, path)
    if (!existsSync(filePath) || !statSync(filePath).isFile()) {
      return Response.json({ error: 'File not found' }, 404)
    }
    const content = readFileSync(filePath)
    let contentType = 'application/octet-stream'
    if (path.endsWith('.css')) contentType = 'text/css'
    else if (path.endsWith('.js')) contentType = 'application/javascript'
    const etag = `"${createHash('sha1').update(content).digest('hex')}"`
    if (req.headers.get('if-none-match') === etag) return new Response(null, { status: 304 })
    return new Response(content, {
      headers: { 'Content-Type': contentType, ETag: etag, 'Cache-Control': 'max-age=86400' },
    })
  })
  server = await listen(app)
  url = server.url
})

afterAll(async () => {
  await server?.close()
  rmSync(base, { recursive: true, force: true })
})

describe('serveStatic', () => {
  it('serves a file with type, validators and cache headers', async () => {
    const r = await get('/static/style.css')
    expect(r.status).toBe(200)
    expect(r.body.toString()).toBe(css)
    expect(r.headers['content-type']).toBe('text/css')
    expect(r.headers['content-length']).toBe(String(Buffer.byteLength(css)))
    expect(r.headers.etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/)
    expect(new Date(r.headers['last-modified'] as string).getTime()).toBeGreaterThan(0)
    expect(r.headers['cache-control']).toBe('public, max-age=86400')
    expect(r.headers['accept-ranges']).toBe('bytes')
    const b = await get('/static/data.bin')
    expect(b.headers['content-type']).toBe('application/octet-stream')
    expect(b.body.equals(bin)).toBe(true)
    const imm = await get('/assets/app.js')
    expect(imm.headers['cache-control']).toBe('public, max-age=60, immutable')
    expect(imm.headers['content-type']).toBe('text/javascript')
  })

  it('streams a large file whole and intact', async () => {
    const r = await get('/static/big.bin')
    expect(r.status).toBe(200)
    expect(r.headers['content-length']).toBe(String(big.length))
    expect(r.body.equals(big)).toBe(true)
  })

  it('answers If-None-Match and If-Modified-Since with 304', async () => {
    const first = await get('/static/style.css')
    const etag = first.headers.etag as string
    const a = await get('/static/style.css', { 'if-none-match': etag })
    expect(a.status).toBe(304)
    expect(a.body.length).toBe(0)
    expect(a.headers.etag).toBe(etag)
    const weak = await get('/static/style.css', { 'if-none-match': `"zzz", W/${etag}` })
    expect(weak.status).toBe(304)
    const other = await get('/static/style.css', { 'if-none-match': '"nope"' })
    expect(other.status).toBe(200)
    const ims = await get('/static/style.css', { 'if-modified-since': first.headers['last-modified'] as string })
    expect(ims.status).toBe(304)
    const old = await get('/static/style.css', { 'if-modified-since': 'Mon, 01 Jan 2001 00:00:00 GMT' })
    expect(old.status).toBe(200)
  })

  it('serves byte ranges, 416 when unsatisfiable, whole file for malformed or multiple ranges', async () => {
    const a = await get('/static/data.bin', { range: 'bytes=0-9' })
    expect(a.status).toBe(206)
    expect(a.headers['content-range']).toBe(`bytes 0-9/${bin.length}`)
    expect(a.body.equals(bin.subarray(0, 10))).toBe(true)
    const suffix = await get('/static/data.bin', { range: 'bytes=-100' })
    expect(suffix.status).toBe(206)
    expect(suffix.body.equals(bin.subarray(bin.length - 100))).toBe(true)
    const open = await get('/static/big.bin', { range: `bytes=${big.length - 1000000}-` })
    expect(open.status).toBe(206)
    expect(open.body.equals(big.subarray(big.length - 1000000))).toBe(true)
    const bad = await get('/static/data.bin', { range: `bytes=${bin.length}-` })
    expect(bad.status).toBe(416)
    expect(bad.headers['content-range']).toBe(`bytes */${bin.length}`)
    for (const h of ['bytes=abc', 'bytes=5-1', 'pages=1-2', 'bytes=0-1,4-5']) {
      const r = await get('/static/data.bin', { range: h })
      expect(r.status, h).toBe(200)
      expect(r.body.equals(bin), h).toBe(true)
    }
    const etag = a.headers.etag as string
    const ifRangeOk = await get('/static/data.bin', { range: 'bytes=10-19', 'if-range': etag })
    expect(ifRangeOk.status).toBe(206)
    expect(ifRangeOk.body.equals(bin.subarray(10, 20))).toBe(true)
    const ifRangeStale = await get('/static/data.bin', { range: 'bytes=10-19', 'if-range': '"stale"' })
    expect(ifRangeStale.status).toBe(200)
    expect(ifRangeStale.body.length).toBe(bin.length)
  })

  it('answers HEAD with headers only', async () => {
    const r = await get('/static/data.bin', {}, 'HEAD')
    expect(r.status).toBe(200)
    expect(r.headers['content-length']).toBe(String(bin.length))
    expect(r.body.length).toBe(0)
  })

  it('serves index.html for directories, 404 without one', async () => {
    expect((await get('/static/')).body.toString()).toBe('<h1>home</h1>')
    expect((await get('/static/sub/')).body.toString()).toBe('<h1>sub</h1>')
    expect((await get('/static/sub')).body.toString()).toBe('<h1>sub</h1>')
    expect((await get('/static/empty/')).status).toBe(404)
    expect((await get('/assets/sub/')).status).toBe(404) // index: false
    expect((await get('/static/nope.css')).status).toBe(404)
  })

  it('prefers precompressed siblings the client accepts', async () => {
    const br = await get('/static/pre.css', { 'accept-encoding': 'gzip, br' })
    expect(br.headers['content-encoding']).toBe('br')
    expect(br.headers.vary).toMatch(/accept-encoding/i)
    expect(br.headers['content-type']).toBe('text/css')
    expect(br.body.equals(readFileSync(join(root, 'pre.css.br')))).toBe(true)
    const gz = await get('/static/pre.css', { 'accept-encoding': 'gzip' })
    expect(gz.headers['content-encoding']).toBe('gzip')
    expect(gz.body.equals(readFileSync(join(root, 'pre.css.gz')))).toBe(true)
    const plain = await get('/static/pre.css', { 'accept-encoding': 'br;q=0, gzip;q=0' })
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(plain.body.toString()).toBe(css)
    expect(plain.headers.vary).toMatch(/accept-encoding/i)
  })

  it('follows symlinks inside the root only; hides dotfiles (403 when denied)', async () => {
    expect((await get('/static/alias.css')).body.toString()).toBe(css)
    expect((await get('/static/escape.txt')).status).toBe(404)
    expect((await get('/static/.env')).status).toBe(404)
    expect((await get('/assets/.env')).status).toBe(403)
  })

  it('refuses every traversal form with 404 and never leaks a file outside the root', async () => {
    const corpus = [
      '/static/../secret.txt',
      '/static/../../secret.txt',
      '/static/%2e%2e/secret.txt',
      '/static/%2E%2E/secret.txt',
      '/static/.%2e/secret.txt',
      '/static/%2e%2e%2fsecret.txt',
      '/static/..%2fsecret.txt',
      '/static/..%2Fsecret.txt',
      '/static/sub/..%2f..%2fsecret.txt',
      '/static/sub/%2e%2e/%2e%2e/secret.txt',
      '/static/..%5csecret.txt',
      '/static/..%5c..%5csecret.txt',
      '/static/%2fetc%2fpasswd',
      '/static//etc/passwd',
      '/static/%00',
      '/static/style.css%00.png',
      '/static/..%00/secret.txt',
      '/static/%252e%252e/secret.txt',
      '/static/..%c0%afsecret.txt',
      '/static/%c0%ae%c0%ae/secret.txt',
      `/static/${encodeURIComponent(join(base, 'secret.txt'))}`,
      '/static/escape.txt',
      '/static/.env',
      '/static/.%65nv',
    ]
    for (const path of corpus) {
      const raw = await rawRequest(server.port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
      expect(statuses(raw.text), path).toEqual([404])
      expect(raw.text, path).not.toContain(SECRET)
      expect(raw.text, path).not.toContain('root:')
    }
    // Raw backslashes are refused by the HTTP parser before routing (400);
    // either way nothing is served.
    const bs = await rawRequest(server.port, 'GET /static/..\\secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    expect([400, 404]).toContain(statuses(bs.text)[0])
    expect(bs.text).not.toContain(SECRET)
    // The server keeps serving.
    expect((await get('/static/style.css')).status).toBe(200)
  })
})

describe('Response.file', () => {
  it('serves a file natively with ranges and conditionals', async () => {
    const r = await get('/download')
    expect(r.status).toBe(200)
    expect(r.body.equals(bin)).toBe(true)
    const part = await get('/download', { range: 'bytes=100-199' })
    expect(part.status).toBe(206)
    expect(part.body.equals(bin.subarray(100, 200))).toBe(true)
    expect((await get('/download', { 'if-none-match': r.headers.etag as string })).status).toBe(304)
    const bigRes = await get('/download-big')
    expect(bigRes.headers['content-type']).toBe('application/x-big')
    expect(bigRes.body.equals(big)).toBe(true)
  })

  it('gives 404 for a missing file', async () => {
    expect((await get('/missing-file')).status).toBe(404)
  })
})

describe("the guide's hand-written /static handler", () => {
  it('gives the same answers as the native mount', async () => {
    for (const f of ['style.css', 'app.js', 'data.bin', 'sub/index.html']) {
      const g = await get(`/guide/${f}`)
      const n = await get(`/static/${f}`)
      expect(g.status, f).toBe(200)
      expect(n.status, f).toBe(g.status)
      expect(n.body.equals(g.body), f).toBe(true)
      if (f !== 'sub/index.html') expect(n.headers['content-type']?.split(';')[0]?.replace('text/javascript', 'application/javascript')).toBe(g.headers['content-type'])
    }
    for (const f of ['nope.css', 'sub/nope.js']) {
      expect((await get(`/guide/${f}`)).status).toBe(404)
      expect((await get(`/static/${f}`)).status).toBe(404)
    }
    const g = await get('/guide/style.css')
    expect((await get('/guide/style.css', { 'if-none-match': g.headers.etag as string })).status).toBe(304)
  })
})

describe('a large static file to a client that reads slowly', () => {
  it('is sent as the client reads (bounded memory), and arrives whole', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'httpy-static-big-'))
    const size = 64 * 1024 * 1024
    const chunk = randomBytes(1024 * 1024)
    const want = createHash('sha256')
    for (let i = 0; i < size / chunk.length; i++) {
      appendFileSync(join(dir, 'huge.bin'), chunk)
      want.update(chunk)
    }
    const app = new App()
    app.serveStatic('/files', dir)
    const own = await listen(app, { requestTimeout: 30 })
    const sock = net.connect(own.port, '127.0.0.1')
    try {
      await new Promise((r) => sock.once('connect', r))
      sock.pause()
      const rss0 = process.memoryUsage().rss
      sock.write('GET /files/huge.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
      // Not reading for a second: the server may only fill the socket buffers.
      await new Promise((r) => setTimeout(r, 1000))
      const grown = process.memoryUsage().rss - rss0
      expect(grown, `RSS grew by ${(grown / 1048576).toFixed(1)} MiB`).toBeLessThan(size / 2)
      expect(own.stats().staticCacheBytes).toBeLessThan(size)
      // Then reading: every byte arrives, in order.
      const got = createHash('sha256')
      let head = ''
      let bodyBytes = 0
      let inBody = false
      sock.on('data', (c: Buffer) => {
        if (inBody) {
          got.update(c)
          bodyBytes += c.length
          return
        }
        head += c.toString('latin1')
        const end = head.indexOf('\r\n\r\n')
        if (end < 0) return
        inBody = true
        const rest = Buffer.from(head.slice(end + 4), 'latin1')
        head = head.slice(0, end)
        got.update(rest)
        bodyBytes += rest.length
      })
      sock.resume()
      await new Promise((r) => sock.once('close', r))
      expect(head).toMatch(/^HTTP\/1\.1 200 /)
      expect(head.toLowerCase()).toContain(`content-length: ${size}`)
      expect(bodyBytes).toBe(size)
      expect(got.digest('hex')).toBe(want.digest('hex'))
    } finally {
      sock.destroy()
      await own.close()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 30_000)
})
