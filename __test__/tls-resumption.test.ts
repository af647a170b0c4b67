/**
 * TLS session resumption under load: a client that kept a TLS 1.3 session
 * ticket resumes with it (no certificate, no signature) even after many
 * other clients made full handshakes in between, and a TLS 1.2 client
 * resumes with its ticket too. With rustls' default, each ticket was an
 * entry of a 256-entry server-side cache, so 130 handshakes in between
 * (two tickets each) had forgotten it; tickets are now stateless, sealed
 * with the server's key (config/tls.rs). Checked from OpenSSL's side
 * (node:tls), which reports whether the server took the session; and a
 * replaced configuration (`setTls`) seals tickets with a new key.
 */
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import { listen } from './helpers/index.js'

interface Visit {
  reused: boolean
  protocol: string | null
  /** The last ticket the server sent on this connection. */
  session: Buffer | undefined
}

/**
 * One connection: handshake (offering `session` if given), one request,
 * read to the end. Resolves with whether the server resumed the session.
 */
function visit(port: number, ca: string, opts: { session?: Buffer; maxVersion?: tls.SecureVersion } = {}): Promise<Visit> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined
    let reused = false
    let protocol: string | null = null
    let answer = ''
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ...opts })
    socket.on('session', (s: Buffer) => (session = s))
    socket.on('secureConnect', () => {
      reused = socket.isSessionReused()
      protocol = socket.getProtocol()
      socket.write('GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n')
    })
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => (answer += d))
    socket.on('error', reject)
    socket.on('close', () => {
      if (!answer.startsWith('HTTP/1.1 200') || !answer.endsWith('ok')) reject(new Error(`answer: ${answer}`))
      else resolve({ reused, protocol, session })
    })
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')))
  })
}

/** `n` full handshakes by other clients, 16 at a time, each closed at once. */
async function others(port: number, ca: string, n: number): Promise<void> {
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => s.end())
      s.resume()
      s.on('error', reject)
      s.on('close', () => resolve())
    })
  for (let done = 0; done < n; done += 16) {
    await Promise.all(Array.from({ length: Math.min(16, n - done) }, one))
  }
}

describe('TLS session resumption', () => {
  let certs: TestCerts
  let server: Server
  let ca: string

  beforeAll(async () => {
    certs = makeCerts()
    ca = certs.ca
    const app = new App().get('/', () => Response.text('ok'))
    server = await listen(app, { tls: { cert: certs.certFile, key: certs.keyFile } })
  })
  afterAll(async () => {
    await server?.close()
    certs?.cleanup()
  })

  it('a TLS 1.3 ticket still resumes after 160 other full handshakes', async () => {
    const first = await visit(server.port, ca)
    expect(first.protocol).toBe('TLSv1.3')
    expect(first.reused).toBe(false)
    expect(first.session).toBeDefined()
    await others(server.port, ca, 160)
    const again = await visit(server.port, ca, { session: first.session })
    expect(again.protocol).toBe('TLSv1.3')
    expect(again.reused).toBe(true)
  })

  it('a TLS 1.2 ticket resumes', async () => {
    const first = await visit(server.port, ca, { maxVersion: 'TLSv1.2' })
    expect(first.protocol).toBe('TLSv1.2')
    expect(first.session).toBeDefined()
    const again = await visit(server.port, ca, { maxVersion: 'TLSv1.2', session: first.session })
    expect(again.reused).toBe(true)
  })

  it('setTls starts a new ticket key: an older ticket makes a full handshake, then is served', async () => {
    const first = await visit(server.port, ca)
    expect(first.session).toBeDefined()
    server.setTls({ cert: certs.certFile, key: certs.keyFile })
    const again = await visit(server.port, ca, { session: first.session })
    expect(again.protocol).toBe('TLSv1.3')
    expect(again.reused).toBe(false)
    const third = await visit(server.port, ca, { session: again.session })
    expect(third.reused).toBe(true)
  })
})
