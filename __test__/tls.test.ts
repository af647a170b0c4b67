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
import { requireTool } from './helpers/tools.js'
import { listen } from './helpers/index.js'

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

const hasCurl = requireTool('curl')

/**
 * A ClientHello written by hand, TLS 1.1 by default (legacy_version 0x0302,
 * no supported_versions extension): node's own client refuses to offer
 * TLS 1.1 at its default security level, so only raw bytes reach the
 * server's version check. The same hello as TLS 1.2 is the control.
 */
function clientHello(version = 0x0302): Buffer {
  const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff])
  const vec16 = (b: Buffer) => Buffer.concat([u16(b.length), b])
  const ext = (type: number, body: Buffer) => Buffer.concat([u16(type), vec16(body)])
  const name = Buffer.from('localhost')
  const extensions = Buffer.concat([
    ext(0x0000, vec16(Buffer.concat([Buffer.from([0]), vec16(name)]))), // server_name
    ext(0x000a, vec16(Buffer.concat([u16(0x001d), u16(0x0017)]))), // supported_groups: x25519, secp256r1
    ext(0x000b, Buffer.from([1, 0])), // ec_point_formats: uncompressed
    ext(0x000d, vec16(Buffer.concat([0x0403, 0x0804, 0x0401].map(u16)))), // signature_algorithms
  ])
  // ECDHE with AES-GCM (TLS 1.2) and AES-CBC (TLS 1.0/1.1).
  const suites = Buffer.concat([0xc02b, 0xc02f, 0xc009, 0xc013, 0x002f].map(u16))
  const body = Buffer.concat([
    u16(version),
    Buffer.alloc(32, 7), // random
    Buffer.from([0]), // no session id
    vec16(suites),
    Buffer.from([1, 0]), // null compression
    vec16(extensions),
  ])
  const hs = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body])
  return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(hs.length), hs])
}

const haveOpenssl = requireTool('openssl')

describe.skipIf(!haveOpenssl)('tls with certificate files (chain in cert)', () => {
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

  it.skipIf(!hasCurl)('answers curl over HTTP/2 and HTTP/1.1', async () => {
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

  it('answers a TLS 1.1 ClientHello with a protocol_version alert, closes, and keeps serving', async () => {
    // Everything the server sends until it closes (or, with `head`, until 6 bytes arrived).
    const send = (hello: Buffer, head = false) => new Promise<{ bytes: Buffer; closed: boolean }>((resolve) => {
      const chunks: Buffer[] = []
      const s = net.connect(server.port, '127.0.0.1', () => s.write(hello))
      const timer = setTimeout(() => {
        s.destroy()
        resolve({ bytes: Buffer.concat(chunks), closed: false })
      }, 5000)
      s.on('data', (c: Buffer) => {
        chunks.push(c)
        if (head && Buffer.concat(chunks).length >= 6) s.destroy()
      })
      s.on('error', () => {})
      s.on('close', () => {
        clearTimeout(timer)
        resolve({ bytes: Buffer.concat(chunks), closed: true })
      })
    })
    // The control: the same hello as TLS 1.2 gets a ServerHello (record 22, handshake type 2).
    const control = await send(clientHello(0x0303), true)
    expect([control.bytes[0], control.bytes[5]]).toEqual([22, 2])
    const reply = await send(clientHello())
    // One record: content type 21 (alert), 2 bytes of payload: fatal (2), protocol_version (70).
    expect(reply.bytes[0], `reply ${reply.bytes.toString('hex')}`).toBe(21)
    expect(reply.bytes.readUInt16BE(3)).toBe(2)
    expect([...reply.bytes.subarray(5, 7)]).toEqual([2, 70])
    expect(reply.closed).toBe(true)
    expect((await httpsGet(server.port, '/info', certs.ca)).status).toBe(200)
  })
})

describe.skipIf(!haveOpenssl)('tls material as PEM text and Buffers', () => {
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
      await expect(httpsGet(server.port, '/info', '')).rejects.toMatchObject({ code: expect.stringMatching(/CERT|VERIFY/) })
    } finally {
      await server.close()
    }
  })
})
