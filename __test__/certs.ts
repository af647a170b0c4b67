/**
 * Test certificates made at test time with the openssl CLI (no private key
 * is committed): a CA, and a localhost leaf signed by it whose PEM file
 * holds the chain (leaf, then CA). The leaf's key is ECDSA P-256 unless
 * `{ leafKey: 'rsa' }` asks for RSA 2048.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { listen } from './helpers/index.js'

export interface TestCerts {
  dir: string
  /** Path of the chain file (leaf + CA). */
  certFile: string
  /** Path of the leaf's private key. */
  keyFile: string
  /** Path of a key that does not belong to the leaf. */
  otherKeyFile: string
  /** The CA certificate clients trust. */
  ca: string
  cleanup(): void
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' })
}

export function makeCerts(opts: { leafKey?: 'ecdsa' | 'rsa' } = {}): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'httpy-certs-'))
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  const leaf = opts.leafKey === 'rsa' ? ['-newkey', 'rsa:2048', '-nodes'] : ec
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=httpy test CA'], dir)
  openssl(['req', ...leaf, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost'], dir)
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  openssl(
    ['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem',
      '-days', '2', '-extfile', 'ext.cnf'],
    dir,
  )
  const chain = readFileSync(join(dir, 'leaf.pem'), 'utf8') + readFileSync(join(dir, 'ca.pem'), 'utf8')
  writeFileSync(join(dir, 'chain.pem'), chain)
  return {
    dir,
    certFile: join(dir, 'chain.pem'),
    keyFile: join(dir, 'leaf.key'),
    otherKeyFile: join(dir, 'ca.key'),
    ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
}

/**
 * For a describe block: a server answering `ok` on `GET /` over TLS with
 * `certs`, started before its tests and closed (the certificates removed)
 * after them. Returns a getter, since the server exists only once started.
 */
export function okServerOverTls(certs: TestCerts): () => Server {
  let server: Server | undefined
  beforeAll(async () => {
    server = await listen(new App().get('/', () => Response.text('ok')), { tls: { cert: certs.certFile, key: certs.keyFile } })
  })
  afterAll(async () => {
    await server?.close()
    certs.cleanup()
  })
  return () => {
    if (!server) throw new Error('the TLS server has not started')
    return server
  }
}
