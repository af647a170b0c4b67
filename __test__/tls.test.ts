/**
 * TLS: certificates from files, PEM text and Buffers; ALPN choosing HTTP/2
 * or HTTP/1.1 on one port; the self-signed development mode; clear errors
 * for bad certificate material; handshake garbage.
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import https from 'node:https'
import http2 from 'node:http2'
import net from 'node:net'
import { join } from 'node:path'
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import { listen } from './helpers.js'

function info(app: App): App {
  return app.get('/info', (req) =>
    Response.json({ version: req.httpVersion, scheme: req.scheme, host: req.headers.get('host') }),
  )
}

/** GET over HTTPS with HTTP/1.1 (ALPN offers just http/1.1, or nothing). */
function httpsGet(port: number, path: string, ca: string, alpn = true): Promise<{ status: number; headers: Record<string, unknown>; body: string; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', servername: 'localhost', port, path, ca, agent: false, ...(alpn ? { ALPNProtocols: ['http/1.1'] } : {}) }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
          alpn: (res.socket as tls.TLSSocket | null)?.alpnProtocol ?? null,
        }),
      )
    })
    req.on('error', reject)
    req.setTimeout(5000, () => req.destroy(new Error('timeout')))
  })
}

function h2Get(url: string, path: string, ca?: string): Promise<{ headers: http2.IncomingHttpHeaders; body: string; alpn: string | undefined }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, ca ? { ca, servername: 'localhost' } : {})
    session.on('error', reject)
    const req = session.request({ ':path': path })
    const chunks: Buffer[] = []
    let headers: http2.IncomingHttpHeaders = {}
    req.on('response', (h) => {
      headers = h
    })
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const alpn = session.alpnProtocol
      session.close()
      resolve({ headers, body: Buffer.concat(chunks).toString(), alpn })
    })
    req.on('error', reject)
    req.end()
  })
}

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '5', ...args], (err, stdout) => (err ? reject(err) : resolve(stdout)))
  })
}

const hasCurl = await new Promise<boolean>((r) => execFile('curl', ['--version'], (e) => r(!e)))

describe('tls with certificate files (chain in cert)', () => {
  let certs: TestCerts
  let server: Server
  beforeAll(async () => {
    certs = makeCerts()
    const app = info(new App())
    app.get('/page', () => {
      const res = Response.html('<h1>hi</h1>')
      res.pushResources = [['/static/style.css', 'style']]
      return res
    })
    server = await listen(app, { tls: { cert: certs.certFile, key: certs.keyFile } })
  })
  afterAll(async () => {
    await server?.close()
    certs?.cleanup()
  })

  it('reports an https url', () => {
    expect(server.url).toBe(`https://127.0.0.1:${server.port}`)
  })

  it('serves HTTP/2 by ALPN to an h2 client, with scheme https', async () => {
    const r = await h2Get(`https://127.0.0.1:${server.port}`, '/info', certs.ca)
    expect(r.alpn).toBe('h2')
    expect(r.headers[':status']).toBe(200)
    expect(JSON.parse(r.body)).toEqual({ version: '2', scheme: 'https', host: `localhost:${server.port}` })
  })

  it('falls back to HTTP/1.1 by ALPN for an HTTP/1.1-only client', async () => {
    const r = await httpsGet(server.port, '/info', certs.ca)
    expect(r.alpn).toBe('http/1.1')
    expect(r.status).toBe(200)
    expect(JSON.parse(r.body)).toMatchObject({ version: '1.1', scheme: 'https' })
    // A client that offers no ALPN at all gets HTTP/1.1 too.
    const plain = await httpsGet(server.port, '/info', certs.ca, false)
    expect(plain.alpn).toBe(false)
    expect(JSON.parse(plain.body)).toMatchObject({ version: '1.1', scheme: 'https' })
  })

  it('turns pushResources into Link preload headers over HTTP/1.1', async () => {
    const r = await httpsGet(server.port, '/page', certs.ca)
    expect(r.status).toBe(200)
    expect(r.headers.link).toBe('</static/style.css>; rel=preload; as=style')
  })

  it.skipIf(!hasCurl)('answers curl over HTTP/2 and HTTP/1.1 (curl not installed: skipped)', async () => {
    const base = ['--cacert', join(certs.dir, 'ca.pem'), '--resolve', `localhost:${server.port}:127.0.0.1`]
    const url = `https://localhost:${server.port}/info`
    expect(JSON.parse(await curl([...base, '--http2', url]))).toMatchObject({ version: '2', scheme: 'https' })
    expect(JSON.parse(await curl([...base, '--http1.1', url]))).toMatchObject({ version: '1.1', scheme: 'https' })
  })

  it('closes only the connection of a client that sends garbage instead of a handshake', async () => {
    for (const garbage of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.alloc(300, 0x16), Buffer.from([0x16, 3, 1, 0xff, 0xff, 1, 2, 3])]) {
      const closed = await new Promise<boolean>((resolve) => {
        const s = net.connect(server.port, '127.0.0.1', () => s.write(garbage))
        s.on('error', () => {})
        s.on('close', () => resolve(true))
        s.resume()
        setTimeout(() => {
          s.destroy()
          resolve(false)
        }, 3000)
      })
      expect(closed).toBe(true)
    }
    const r = await httpsGet(server.port, '/info', certs.ca)
    expect(r.status).toBe(200)
  })

  it('closes a TLS client that offers no common protocol version and keeps serving', async () => {
    const err = await new Promise<Error | undefined>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: server.port, ca: certs.ca, servername: 'localhost', maxVersion: 'TLSv1.1', minVersion: 'TLSv1' })
      s.on('secureConnect', () => {
        s.destroy()
        resolve(undefined)
      })
      s.on('error', (e) => resolve(e))
    })
    expect(err).toBeInstanceOf(Error)
    expect((await httpsGet(server.port, '/info', certs.ca)).status).toBe(200)
  })
})

describe('tls material as PEM text and Buffers', () => {
  let certs: TestCerts
  beforeAll(() => {
    certs = makeCerts()
  })
  afterAll(() => certs?.cleanup())

  it('accepts PEM strings', async () => {
    const server = await listen(info(new App()), {
      tls: { cert: readFileSync(certs.certFile, 'utf8'), key: readFileSync(certs.keyFile, 'utf8') },
    })
    try {
      expect((await httpsGet(server.port, '/info', certs.ca)).status).toBe(200)
    } finally {
      await server.close()
    }
  })

  it('accepts Buffers', async () => {
    const server = await listen(info(new App()), {
      tls: { cert: readFileSync(certs.certFile), key: readFileSync(certs.keyFile) },
    })
    try {
      const r = await h2Get(`https://127.0.0.1:${server.port}`, '/info', certs.ca)
      expect(JSON.parse(r.body)).toMatchObject({ version: '2', scheme: 'https' })
    } finally {
      await server.close()
    }
  })

  it('rejects an unreadable certificate file, naming it', async () => {
    const missing = join(certs.dir, 'nope.pem')
    const p = listen(new App(), { tls: { cert: missing, key: certs.keyFile } })
    await expect(p).rejects.toMatchObject({ code: 'ERR_HTTPY_TLS' })
    await expect(p).rejects.toThrow(missing)
    await expect(p).rejects.toThrow(/ENOENT/)
  })

  it('rejects a key that does not match the certificate, naming both files', async () => {
    const p = listen(new App(), { tls: { cert: certs.certFile, key: certs.otherKeyFile } })
    await expect(p).rejects.toMatchObject({ code: 'ERR_HTTPY_TLS' })
    await expect(p).rejects.toThrow(/does not match/)
    await expect(p).rejects.toThrow(certs.otherKeyFile)
    await expect(p).rejects.toThrow(certs.certFile)
  })

  it('rejects files that hold no PEM certificate or key', async () => {
    await expect(listen(new App(), { tls: { cert: certs.keyFile, key: certs.keyFile } })).rejects.toMatchObject({
      code: 'ERR_HTTPY_TLS',
      message: expect.stringContaining(certs.keyFile),
    })
    await expect(listen(new App(), { tls: { cert: certs.certFile, key: certs.certFile } })).rejects.toMatchObject({
      code: 'ERR_HTTPY_TLS',
      message: expect.stringContaining('private key'),
    })
  })

  it('rejects a malformed tls option with a TypeError naming it', async () => {
    await expect(listen(new App(), { tls: 'yes' as never })).rejects.toMatchObject({
      code: 'ERR_HTTPY_INVALID_OPTION',
      message: expect.stringContaining('"tls"'),
    })
    await expect(listen(new App(), { tls: { cert: certs.certFile } as never })).rejects.toThrow(TypeError)
  })
})

describe("tls: 'self-signed'", () => {
  it('generates a localhost certificate, says so, and serves HTTP/2 and HTTP/1.1 with it', async () => {
    const warnings: string[] = []
    const original = console.warn
    console.warn = (...args: unknown[]) => {
      warnings.push(args.join(' '))
    }
    let server: Server
    try {
      server = await listen(info(new App()), { tls: 'self-signed' })
    } finally {
      console.warn = original
    }
    try {
      expect(warnings.join('\n')).toMatch(/self-signed/)
      const ca = server.certificate
      expect(ca).toMatch(/^-----BEGIN CERTIFICATE-----/)
      const h2 = await h2Get(`https://127.0.0.1:${server.port}`, '/info', ca ?? undefined)
      expect(JSON.parse(h2.body)).toMatchObject({ version: '2', scheme: 'https' })
      const h1 = await httpsGet(server.port, '/info', ca ?? '')
      expect(JSON.parse(h1.body)).toMatchObject({ version: '1.1', scheme: 'https' })
      // Untrusted by default: a client that verifies refuses it.
      await expect(httpsGet(server.port, '/info', '')).rejects.toThrow()
    } finally {
      await server.close()
    }
  })
})
