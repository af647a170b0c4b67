/**
 * Which signature an RSA certificate's handshake carries (config/certs.rs,
 * `RsaSha256First`): RSA-PSS with SHA-256 whenever the client offers it,
 * whatever its place in the client's list (OpenSSL's choice in node:https
 * and nginx, so the handshake rows compare servers signing alike);
 * otherwise a scheme the client offered. Read from OpenSSL's own client,
 * `openssl s_client`, which prints the signature the server sent
 * ("Peer signature type", "Peer signing digest") after verifying it
 * against the CA. A client offering nothing an RSA key can sign gets a
 * handshake_failure alert and the server keeps serving.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { makeCerts, okServerOverTls, type TestCerts } from './certs.js'

interface Handshake {
  /** "Peer signature type: …" (RSA-PSS or RSA), or null without one. */
  type: string | null
  /** "Peer signing digest: …" (SHA256, SHA384, SHA512). */
  digest: string | null
  verified: boolean
  answer: string
  output: string
}

/** One `openssl s_client` connection offering `sigalgs`, one request. */
function sClient(port: number, caFile: string, sigalgs: string, extra: string[] = []): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', caFile,
      '-sigalgs', sigalgs, '-ign_eof', ...extra]
    const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => (output += d.toString('latin1')))
    child.stderr.on('data', (d: Buffer) => (output += d.toString('latin1')))
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    child.on('error', reject)
    child.on('close', () => {
      clearTimeout(timer)
      const field = (name: string) => output.match(new RegExp(`^${name}: (\\S+)`, 'm'))?.[1] ?? null
      resolve({
        type: field('Peer signature type'),
        digest: field('Peer signing digest'),
        verified: /Verify return code: 0 \(ok\)/.test(output),
        answer: output.slice(output.indexOf('HTTP/1.1')),
        output,
      })
    })
    // -ign_eof: keep reading after stdin ends, until the server closes
    // (`connection: close`), so the answer is in the output.
    child.stdin.end('GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n')
  })
}

describe('an RSA certificate signs the handshake with RSA-PSS SHA-256 when offered', () => {
  const certs: TestCerts = makeCerts({ leafKey: 'rsa' })
  const caFile = join(certs.dir, 'ca.pem')
  const server = okServerOverTls(certs)

  it('TLS 1.3: SHA-256 even when the client lists SHA-512 and SHA-384 first', async () => {
    const h = await sClient(server().port, caFile, 'rsa_pss_rsae_sha512:rsa_pss_rsae_sha384:rsa_pss_rsae_sha256', ['-tls1_3'])
    expect(h.output).toContain('TLSv1.3')
    expect(h.verified).toBe(true)
    expect([h.type, h.digest]).toEqual(['RSA-PSS', 'SHA256'])
    expect(h.answer).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\nok/)
  })

  it('TLS 1.2 with PSS offered: SHA-256 too', async () => {
    const h = await sClient(server().port, caFile, 'RSA+SHA512:rsa_pss_rsae_sha512:rsa_pss_rsae_sha256', ['-tls1_2'])
    expect(h.output).toMatch(/Protocol\s*: TLSv1\.2/)
    expect(h.verified).toBe(true)
    expect([h.type, h.digest]).toEqual(['RSA-PSS', 'SHA256'])
    expect(h.answer).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\nok/)
  })

  it('without RSA-PSS SHA-256 offered: a scheme the client did offer', async () => {
    const pss = await sClient(server().port, caFile, 'rsa_pss_rsae_sha384', ['-tls1_3'])
    expect(pss.verified).toBe(true)
    expect([pss.type, pss.digest]).toEqual(['RSA-PSS', 'SHA384'])
    const pkcs1 = await sClient(server().port, caFile, 'RSA+SHA384', ['-tls1_2'])
    expect(pkcs1.verified).toBe(true)
    expect([pkcs1.type, pkcs1.digest]).toEqual(['RSA', 'SHA384'])
  })

  it('a client offering only ECDSA schemes gets handshake_failure; the server keeps serving', async () => {
    const refused = await sClient(server().port, caFile, 'ecdsa_secp256r1_sha256', ['-tls1_3'])
    expect(refused.output).toMatch(/alert handshake failure/)
    expect(refused.type).toBeNull()
    const after = await sClient(server().port, caFile, 'rsa_pss_rsae_sha256')
    expect([after.type, after.digest]).toEqual(['RSA-PSS', 'SHA256'])
    expect(after.answer).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\nok/)
  })
})
