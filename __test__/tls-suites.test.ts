/**
 * Which cipher suite the server picks (config/tls.rs, `Built::for_client`):
 * its own order, AES-128-GCM first, for a client that lists an AES-GCM
 * suite first (OpenSSL's and curl's clients list AES-256-GCM first, whose
 * SHA-384 key schedule costs the server more); the client's order for one
 * that lists ChaCha20 first (likely without AES in hardware), as Go's
 * crypto/tls does; and whatever a client offers alone. Checked from
 * OpenSSL's side (node:tls) on real sockets, TLS 1.3 and 1.2; sessions
 * resume under both orders.
 */
import tls from 'node:tls'
import { describe, expect, it } from 'vitest'
import { makeCerts, okServerOverTls, type TestCerts } from './certs.js'

interface Visit {
  cipher: string
  protocol: string | null
  reused: boolean
  session: Buffer | undefined
}

/** One connection offering `opts.ciphers`, one request, read to the end. */
function visit(port: number, ca: string, opts: tls.ConnectionOptions): Promise<Visit> {
  return new Promise((resolve, reject) => {
    let visit: Omit<Visit, 'session'> | undefined
    let session: Buffer | undefined
    let answer = ''
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ...opts })
    socket.on('session', (s: Buffer) => (session = s))
    socket.on('secureConnect', () => {
      visit = { cipher: socket.getCipher().standardName, protocol: socket.getProtocol(), reused: socket.isSessionReused() }
      socket.write('GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n')
    })
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => (answer += d))
    socket.on('error', reject)
    socket.on('close', () => {
      if (!visit || !answer.startsWith('HTTP/1.1 200') || !answer.endsWith('ok')) reject(new Error(`answer: ${answer}`))
      else resolve({ ...visit, session })
    })
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')))
  })
}

const AES256 = 'TLS_AES_256_GCM_SHA384'
const AES128 = 'TLS_AES_128_GCM_SHA256'
const CHACHA = 'TLS_CHACHA20_POLY1305_SHA256'

describe('the server picks the cipher suite', () => {
  const certs: TestCerts = makeCerts()
  const ca = certs.ca
  const server = okServerOverTls(certs)

  it('AES-128-GCM for a TLS 1.3 client that lists AES-256-GCM first', async () => {
    const v = await visit(server().port, ca, { ciphers: [AES256, AES128, CHACHA].join(':') })
    expect(v.protocol).toBe('TLSv1.3')
    expect(v.cipher).toBe(AES128)
  })

  it("ChaCha20 for a client that lists it first, and the client's only suite when it offers one", async () => {
    expect((await visit(server().port, ca, { ciphers: [CHACHA, AES256, AES128].join(':') })).cipher).toBe(CHACHA)
    expect((await visit(server().port, ca, { ciphers: AES256 })).cipher).toBe(AES256)
  })

  it('AES-128-GCM first over TLS 1.2 too', async () => {
    const v = await visit(server().port, ca, {
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256',
    })
    expect(v.protocol).toBe('TLSv1.2')
    expect(v.cipher).toMatch(/^TLS_ECDHE_(ECDSA|RSA)_WITH_AES_128_GCM_SHA256$/)
  })

  it('sessions resume under either order', async () => {
    for (const ciphers of [[AES256, AES128, CHACHA], [CHACHA, AES128, AES256]]) {
      const first = await visit(server().port, ca, { ciphers: ciphers.join(':') })
      expect(first.session).toBeDefined()
      const again = await visit(server().port, ca, { ciphers: ciphers.join(':'), session: first.session })
      expect(again.reused).toBe(true)
      expect(again.cipher).toBe(first.cipher)
    }
  })
})
