/**
 * Native compression (`compression` option): negotiation with q-values,
 * the bytes after decompression, `Vary`, what is left alone (small bodies,
 * binary types, bodies already encoded — so the guide's gzip middleware and
 * the native one never double-encode), and streams, files and HTTP/2.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { listen, rawGet } from './helpers/index.js'
import { requireTool } from './helpers/tools.js'

const big = JSON.stringify(Array.from({ length: 20000 }, (_, i) => ({ id: i, name: `Item ${i}`, tags: ['a', 'b'] })))
const small = 'x'.repeat(100)
let server: Server
let url: string
let dir: string

function get(path: string, headers: Record<string, string> = {}): ReturnType<typeof rawGet> {
  return rawGet(`${url}${path}`, headers)
}

/** Node 20 has no zstd in zlib: the reference `zstd` tool decodes (without it, zstd is left out). */
const CODINGS = requireTool('zstd', 'compression.test.ts (zstd decoding)') ? ['gzip', 'br', 'zstd'] : ['gzip', 'br']

function unzstd(b: Buffer): Buffer {
  return execFileSync('zstd', ['-d', '-c', '-q'], { input: b, maxBuffer: 64 * 1024 * 1024 })
}

function decode(enc: string | undefined, b: Buffer): Buffer {
  if (enc === 'gzip') return gunzipSync(b)
  if (enc === 'br') return brotliDecompressSync(b)
  if (enc === 'zstd') return unzstd(b)
  return b
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'httpy-compress-'))
  writeFileSync(join(dir, 'page.html'), `<p>${'hello world '.repeat(2000)}</p>`)
  const app = new App()
  app.get('/big', () => Response.json(JSON.parse(big)))
  app.get('/small', () => Response.text(small))
  app.get('/png', () => new Response(Buffer.alloc(50_000, 7), { headers: { 'content-type': 'image/png' } }))
  app.get('/no-transform', () => new Response(big, { headers: { 'content-type': 'application/json', 'cache-control': 'no-transform' } }))
  app.get('/vary', () => new Response(big, { headers: { 'content-type': 'application/json', vary: 'Accept-Language' } }))
  app.get('/stream', () => {
    async function* gen() {
      for (let i = 0; i < 50; i++) yield `line ${i} ${'lorem ipsum '.repeat(100)}\n`
    }
    return new Response(gen(), { headers: { 'content-type': 'text/plain' } })
  })
  app.get('/file', () => Response.file(join(dir, 'page.html')))
  app.get('/cached', () => Response.json(JSON.parse(big)), { cache: { ttl: 60 } })
  app.head('/declared', () => new Response(null, { headers: { 'content-type': 'text/plain', 'content-length': '5000' } }))
  app.serveStatic('/static', dir)

  // The guide's compression middleware, written as the guide does it.
  const guide = new App()
  guide.use(async (req, next) => {
    const res = await next(req)
    if (res.headers.has('content-encoding')) return res
    const ct = res.headers.get('content-type') ?? ''
    const compressible = ct.startsWith('text/') || ct === 'application/json' || ct === 'application/xml' || ct === 'application/javascript'
    const body = typeof res.body === 'string' ? Buffer.from(res.body) : (res.body as Buffer)
    if (compressible && body.length >= 1024) {
      const z = gzipSync(body)
      res.headers.set('content-encoding', 'gzip')
      res.headers.set('content-length', String(z.length))
      res.body = z
    }
    return res
  })
  guide.get('/big', () => new Response(big, { headers: { 'content-type': 'application/json' } }))
  guideServer = await listen(guide, { compression: true })
  server = await listen(app, { compression: true })
  url = server.url
})

let guideServer: Server

afterAll(async () => {
  await server?.close()
  await guideServer?.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('compression', () => {
  it('compresses with each coding and the bytes decompress to the original', async () => {
    for (const enc of CODINGS) {
      const r = await get('/big', { 'accept-encoding': enc })
      expect(r.status).toBe(200)
      expect(r.headers['content-encoding']).toBe(enc)
      expect(r.headers.vary).toMatch(/accept-encoding/i)
      expect(r.body.length).toBeLessThan(big.length / 4)
      expect(decode(enc, r.body).toString()).toBe(big)
    }
  })

  it('negotiates with q-values; garbage or identity-only gives identity', async () => {
    const cases: Array<[string, string | undefined]> = [
      ['gzip;q=0.5, br;q=0.9', 'br'],
      ['br;q=0, gzip', 'gzip'],
      ['gzip;q=1.0, zstd;q=0.001', 'gzip'],
      ['*', 'zstd'],
      ['*;q=0.2, gzip;q=0.3', 'gzip'],
      ['identity', undefined],
      ['gzip;q=0', undefined],
      ['gzip;q=7', undefined],
      [';;;,,,q=x', undefined],
      ['\u00ff\u00fe garbage', undefined],
      ['', undefined],
    ]
    for (const [accept, want] of cases) {
      const r = await get('/big', { 'accept-encoding': accept })
      expect(r.headers['content-encoding'], accept).toBe(want)
      if (want === 'zstd' && !CODINGS.includes('zstd')) expect(r.body.subarray(0, 4).toString('hex'), 'zstd frame magic').toBe('28b52ffd')
      else expect(decode(want, r.body).toString(), accept).toBe(big)
    }
    const none = await get('/big')
    expect(none.headers['content-encoding']).toBeUndefined()
    expect(none.headers.vary).toMatch(/accept-encoding/i)
  })

  it('leaves small bodies, binary types and no-transform alone', async () => {
    const s = await get('/small', { 'accept-encoding': 'gzip' })
    expect(s.headers['content-encoding']).toBeUndefined()
    expect(s.body.toString()).toBe(small)
    const p = await get('/png', { 'accept-encoding': 'gzip, br' })
    expect(p.headers['content-encoding']).toBeUndefined()
    expect(p.body.length).toBe(50_000)
    const nt = await get('/no-transform', { 'accept-encoding': 'gzip' })
    expect(nt.headers['content-encoding']).toBeUndefined()
  })

  it('keeps an existing Vary and adds Accept-Encoding', async () => {
    const r = await get('/vary', { 'accept-encoding': 'gzip' })
    expect(r.headers.vary).toMatch(/Accept-Language/)
    expect(r.headers.vary).toMatch(/accept-encoding/i)
  })

  it('answers HEAD with the headers of its GET: the same coding, and its length where known', async () => {
    const head = (path: string, headers: Record<string, string>) =>
      new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = http.request(`${url}${path}`, { method: 'HEAD', headers }, (res) => {
          res.resume()
          res.on('end', () => resolve(res))
        })
        req.on('error', reject)
        req.end()
      })
    for (const path of ['/big', '/cached', '/static/page.html']) {
      for (const enc of CODINGS) {
        const g = await get(path, { 'accept-encoding': enc })
        const h = await head(path, { 'accept-encoding': enc })
        expect(h.statusCode, path).toBe(200)
        expect(h.headers['content-encoding'], `${path} ${enc}`).toBe(enc)
        expect(h.headers.vary, path).toMatch(/accept-encoding/i)
        expect(g.headers['content-encoding'], path).toBe(enc)
        // Where the GET declares its encoded length, the HEAD declares the same.
        if (g.headers['content-length'] !== undefined) {
          expect(h.headers['content-length'], `${path} ${enc}`).toBe(String(g.body.length))
        } else {
          expect(h.headers['content-length'], `${path} ${enc}`).toBeUndefined()
        }
      }
      // A client that takes identity: identity and its length, on both.
      const plain = await head(path, {})
      expect(plain.headers['content-encoding'], path).toBeUndefined()
      expect(plain.headers.vary, path).toMatch(/accept-encoding/i)
    }
    const plainBig = await head('/big', {})
    expect(plainBig.headers['content-length']).toBe(String(Buffer.byteLength(big)))
    // A HEAD handler that only declares a length: the coding, and no length
    // (the encoded length is unknown without the bytes).
    const declared = await head('/declared', { 'accept-encoding': 'gzip' })
    expect(declared.headers['content-encoding']).toBe('gzip')
    expect(declared.headers['content-length']).toBeUndefined()
    const declaredPlain = await head('/declared', {})
    expect(declaredPlain.headers['content-encoding']).toBeUndefined()
    expect(declaredPlain.headers['content-length']).toBe('5000')
  })

  it("never double-encodes behind the guide's gzip middleware", async () => {
    const r = await get2(guideServer.url, '/big', { 'accept-encoding': 'gzip, br, zstd' })
    expect(r.headers['content-encoding']).toBe('gzip')
    expect(gunzipSync(r.body).toString()).toBe(big)
  })

  it('compresses streamed bodies and files', async () => {
    const want = Array.from({ length: 50 }, (_, i) => `line ${i} ${'lorem ipsum '.repeat(100)}\n`).join('')
    for (const enc of CODINGS) {
      const r = await get('/stream', { 'accept-encoding': enc })
      expect(r.headers['content-encoding']).toBe(enc)
      expect(decode(enc, r.body).toString()).toBe(want)
    }
    const page = `<p>${'hello world '.repeat(2000)}</p>`
    for (const path of ['/file', '/static/page.html']) {
      const r = await get(path, { 'accept-encoding': 'gzip' })
      expect(r.headers['content-encoding'], path).toBe('gzip')
      expect(r.headers.etag, path).toMatch(/^W\//)
      expect(gunzipSync(r.body).toString(), path).toBe(page)
    }
  })

  it('works over HTTP/2', async () => {
    const client = http2.connect(url)
    try {
      const body = await new Promise<{ enc: unknown; data: Buffer }>((resolve, reject) => {
        const req = client.request({ ':path': '/big', 'accept-encoding': 'br' })
        const chunks: Buffer[] = []
        let enc: unknown
        req.on('response', (h) => {
          enc = h['content-encoding']
        })
        req.on('data', (c: Buffer) => chunks.push(c))
        req.on('end', () => resolve({ enc, data: Buffer.concat(chunks) }))
        req.on('error', reject)
        req.end()
      })
      expect(body.enc).toBe('br')
      expect(brotliDecompressSync(body.data).toString()).toBe(big)
    } finally {
      client.close()
    }
  })

  it('rejects invalid compression options with a stable code', async () => {
    const app = new App()
    await expect(app.listen({ port: 0, compression: 'yes' as never })).rejects.toMatchObject({ code: 'ERR_HTTPY_INVALID_OPTION' })
    await expect(app.listen({ port: 0, compression: { level: 99 } })).rejects.toMatchObject({ code: 'ERR_HTTPY_INVALID_OPTION' })
    await expect(app.listen({ port: 0, compression: { brotli: true } as never })).rejects.toMatchObject({ code: 'ERR_HTTPY_INVALID_OPTION' })
  })
})

function get2(base: string, path: string, headers: Record<string, string>): Promise<{ headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(`${base}${path}`, { headers, agent: false }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }))
      })
      .on('error', reject)
  })
}
