/**
 * The load generator over TLS (`benchmarkRoute` with an `https://` URL):
 * against independent servers (node:https on OpenSSL for HTTP/1.1,
 * node:http2 for h2 by ALPN) and against HTTPy (HTTP/1.1, h2 and HTTP/3);
 * a new connection per request is a full handshake each time (the server
 * sees no resumed session); trust comes from a CA file or `insecure`, and
 * mistakes are named.
 */
import https from 'node:https'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response } from '../ts/index.js'
import { BenchmarkError, benchmarkRoute } from '../ts/benchmark.js'
import { makeCerts, type TestCerts } from './certs.js'
import { requireTool } from './helpers/tools.js'

const haveOpenssl = requireTool('openssl')

describe.skipIf(!haveOpenssl)('benchmarkRoute over TLS', () => {
  let certs: TestCerts
  let otherCerts: TestCerts
  let caFile: string
  let h1: https.Server
  let h1Url: string
  let h2: http2.Http2SecureServer
  let h2Url: string
  let served = 0
  const sessions: boolean[] = []

  beforeAll(async () => {
    certs = makeCerts()
    otherCerts = makeCerts()
    caFile = join(certs.dir, 'ca.pem')
    const tls = { cert: readFileSync(certs.certFile), key: readFileSync(certs.keyFile) }
    h1 = https.createServer(tls, (_req, res) => {
      served++
      res.end('ok')
    })
    h1.on('secureConnection', (s: TLSSocket) => sessions.push(s.isSessionReused()))
    await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r))
    h1Url = `https://127.0.0.1:${(h1.address() as AddressInfo).port}`
    h2 = http2.createSecureServer(tls, (_req, res) => res.end('h2 ok'))
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r))
    h2Url = `https://127.0.0.1:${(h2.address() as AddressInfo).port}`
  })

  afterAll(async () => {
    await new Promise((r) => h1?.close(r))
    h1?.closeAllConnections()
    await new Promise((r) => h2?.close(r))
    certs?.cleanup()
    otherCerts?.cleanup()
  })

  it('keeps HTTPS connections alive against node:https, trusting a CA file', async () => {
    const before = served
    const r = await benchmarkRoute({ baseUrl: h1Url, numRequests: 400, concurrency: 4, caFile })
    expect(r.errors).toBe(0)
    expect(r.statusCounts[200]).toBe(400)
    expect(served - before).toBe(400)
    expect(r.connectionsOpened).toBe(4)
    expect(r.bytesReceived).toBe(800)
  })

  it('opens a new connection, with a full handshake, for every request', async () => {
    sessions.length = 0
    const r = await benchmarkRoute({ baseUrl: h1Url, numRequests: 60, concurrency: 3, insecure: true, newConnectionPerRequest: true })
    expect(r.errors).toBe(0)
    expect(r.statusCounts[200]).toBe(60)
    expect(r.connectionsOpened).toBe(60)
    expect(sessions.length).toBe(60)
    expect(sessions.every((reused) => !reused)).toBe(true)
  })

  it('speaks HTTP/2 by ALPN against node:http2', async () => {
    const r = await benchmarkRoute({ baseUrl: h2Url, protocol: 'http2', numRequests: 300, concurrency: 10, connections: 2, insecure: true })
    expect(r.errors).toBe(0)
    expect(r.statusCounts[200]).toBe(300)
    expect(r.bytesReceived).toBe(300 * 5)
    expect(r.connectionsOpened).toBe(2)
  })

  it('loads an HTTPy server over TLS, HTTP/1.1 and HTTP/2', async () => {
    const app = new App()
    app.get('/hello', () => Response.text('hello'))
    const server = await app.listen({ host: '127.0.0.1', port: 0, tls: { cert: certs.certFile, key: certs.keyFile } })
    try {
      expect(server.url.startsWith('https://')).toBe(true)
      for (const protocol of ['http1', 'http2'] as const) {
        const r = await benchmarkRoute({ baseUrl: server.url, route: '/hello', protocol, numRequests: 300, concurrency: 6, caFile })
        expect(r.errors, `${protocol}: ${r.errorMessages.join('; ')}`).toBe(0)
        expect(r.statusCounts[200]).toBe(300)
        expect(r.bytesReceived).toBe(300 * 5)
      }
    } finally {
      await server.close({ timeout: 1 })
    }
  })

  it('loads an HTTPy server over HTTP/3 (QUIC), streams spread over the connections', async () => {
    const app = new App()
    app.get('/hello', () => Response.text('hello'))
    const server = await app.listen({ host: '127.0.0.1', port: 0, tls: { cert: certs.certFile, key: certs.keyFile }, http3Port: 0 })
    try {
      const url = `https://127.0.0.1:${server.http3Port as number}`
      const r = await benchmarkRoute({ baseUrl: url, route: '/hello', http3: true, numRequests: 400, concurrency: 8, connections: 2, caFile })
      expect(r.protocol).toBe('http3')
      expect(r.errors, r.errorMessages.join('; ')).toBe(0)
      expect(r.statusCounts[200]).toBe(400)
      expect(r.bytesReceived).toBe(400 * 5)
      expect(r.connectionsOpened).toBe(2)
      const post = await benchmarkRoute({ baseUrl: url, route: '/nowhere', protocol: 'h3', method: 'POST', body: 'x', numRequests: 20, caFile })
      expect(post.statusCounts[404]).toBe(20)
      // No QUIC server on the TCP port's number: no answer, every request fails.
      const none = await benchmarkRoute({ baseUrl: `https://127.0.0.1:${server.port}`, http3: true, numRequests: 2, timeout: 1, concurrency: 1, caFile })
        .then((res) => res, (e: unknown) => (e as BenchmarkError).results)
      expect(none?.statusCounts[200]).toBeUndefined()
      expect(none?.errors).toBe(2)
    } finally {
      await server.close({ timeout: 1 })
    }
  })

  it('names what is wrong: no trust given, an untrusted certificate, a protocol the server does not offer', async () => {
    await expect(benchmarkRoute({ baseUrl: h1Url, numRequests: 5 })).rejects.toThrow(/caFile|insecure/)
    const untrusted = await benchmarkRoute({ baseUrl: h1Url, numRequests: 5, caFile: join(otherCerts.dir, 'ca.pem') }).catch((e: unknown) => e)
    expect(untrusted).toBeInstanceOf(BenchmarkError)
    expect(String((untrusted as BenchmarkError).message)).toMatch(/TLS handshake: .*(certificate|issuer)/i)
    const noH2 = await benchmarkRoute({ baseUrl: h1Url, protocol: 'http2', numRequests: 5, insecure: true }).catch((e: unknown) => e)
    expect(noH2).toBeInstanceOf(BenchmarkError)
    expect(String((noH2 as BenchmarkError).message)).toMatch(/ALPN/)
    await expect(benchmarkRoute({ baseUrl: h1Url.replace('https', 'http'), numRequests: 5, insecure: true })).rejects.toThrow(/https/)
    await expect(benchmarkRoute({ baseUrl: h1Url, protocol: 'http2', newConnectionPerRequest: true, numRequests: 5, insecure: true })).rejects.toThrow(/HTTP\/1\.1/)
  })
})
