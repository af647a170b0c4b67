/**
 * Automatic certificates (`tls.acme`) end to end against a real ACME CA:
 * Pebble on 127.0.0.1, with a DNS responder sending every name to
 * 127.0.0.1, so its validation really connects to the server's ports
 * (TLS-ALPN-01 on the HTTPS port, HTTP-01 on the plain one). The served
 * certificates are verified by node:tls / node:https and openssl s_client
 * trusting only Pebble's root. Also: the cache (0600, reused at the next
 * start), renewal of a short-lived certificate without a restart, errors
 * (unreachable directory, a refused name) reported to onError while the
 * server keeps serving, and `run({ workers })`.
 */
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type HttpyError, type Server } from '../ts/index.js'
import { TestPki } from './pki.js'
import { listenError } from './helpers/h1.js'
import { startPebble, type Pebble } from './helpers/pebble.js'
import { freePort, startApp, waitFor } from './helpers/proc.js'
import { requireTool } from './helpers/tools.js'

const hasPebble = requireTool('pebble')
const hasOpenssl = requireTool('openssl')

interface Peer {
  fingerprint256: string
  authorized: boolean
  error: string | undefined
}

/** A handshake for `servername` trusting only `ca`; the certificate seen and whether it verified. */
function handshake(port: number, servername: string, ca: string): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false })
    s.setTimeout(5000, () => s.destroy(new Error('timeout')))
    s.on('secureConnect', () => {
      const c = s.getPeerCertificate()
      s.end()
      resolve({ fingerprint256: c.fingerprint256, authorized: s.authorized, error: s.authorizationError?.toString() })
    })
    s.on('error', reject)
  })
}

/** GET over HTTPS for `name`, verifying the certificate against `ca` (node's own name check included). */
function httpsGet(port: number, name: string, path: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, servername: name, headers: { host: name }, ca, agent: false }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.setTimeout(5000, () => req.destroy(new Error('timeout')))
  })
}

function sClient(port: number, name: string, caFile: string): Promise<string> {
  return new Promise((resolve) => {
    const child = execFile(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', name, '-verify_hostname', name, '-CAfile', caFile, '-verify_return_error', '-brief'],
      { timeout: 10_000 },
      (_err, stdout, stderr) => resolve(stdout + stderr),
    )
    child.stdin?.end()
  })
}

function app(): App {
  return new App().get('/', (req) => Response.text(`hello ${req.tls?.servername ?? 'nobody'}`))
}

describe('tls.acme option checks', () => {
  it('names the offending option before anything is bound', async () => {
    const cache = join(tmpdir(), 'httpy-acme-never-created')
    const bad = async (acme: Record<string, unknown>): Promise<string | undefined> => {
      const err = await listenError(app(), { port: 0, quiet: true, tls: { acme: { domains: ['a.test'], cache, ...acme } as never } })
      expect(err?.code).toBe('ERR_HTTPY_INVALID_OPTION')
      return err?.message
    }
    expect(await bad({ domains: ['*.a.test'] })).toMatch(/tls\.acme\.domains.*\*\.a\.test.*DNS-01/)
    expect(await bad({ domains: [] })).toMatch(/tls\.acme\.domains/)
    expect(await bad({ challenge: 'dns-01' })).toMatch(/tls\.acme\.challenge.*'tls-alpn-01' or 'http-01'/)
    expect(await bad({ directory: 'http://ca.test/dir' })).toMatch(/tls\.acme\.directory.*https/)
    expect(await bad({ renewAt: 1.5 })).toMatch(/tls\.acme\.renewAt/)
    expect(await bad({ cache: undefined })).toMatch(/tls\.acme\.cache/)
    expect(await bad({ stapling: true })).toMatch(/unknown option "tls\.acme\.stapling"/)
  })
})

describe.skipIf(!hasPebble || !hasOpenssl)('ACME against Pebble', () => {
  let pebble: Pebble
  let tlsPort: number
  let httpPort: number
  let root: string
  let rootFile: string
  const dirs: string[] = []
  const cacheDir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'httpy-acme-'))
    dirs.push(d)
    return join(d, 'cache')
  }

  beforeAll(async () => {
    tlsPort = await freePort()
    httpPort = await freePort()
    pebble = await startPebble({ tlsPort, httpPort, blocklist: ['refused.test'], shortLifetime: 10 })
    root = (await pebble.issuerChain()).root
    const d = mkdtempSync(join(tmpdir(), 'httpy-acme-root-'))
    dirs.push(d)
    rootFile = join(d, 'root.pem')
    writeFileSync(rootFile, root)
  })
  afterAll(async () => {
    await pebble?.stop()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  it('TLS-ALPN-01: issued, served by name, verified by clients; cached 0600 and reused at the next start', async () => {
    const cache = cacheDir()
    const errors: HttpyError[] = []
    // Pebble picks a profile at random for orders that name none.
    const acme = { domains: ['a.test', 'www.a.test'], email: 'ops@a.test', directory: pebble.directory, directoryCa: pebble.ca, cache, profile: 'default' }
    let server: Server = await app().listen({ host: '127.0.0.1', port: tlsPort, quiet: true, tls: { acme }, onError: (e) => void errors.push(e as HttpyError) })
    let first: Peer
    try {
      expect(await waitFor(() => (server.acmeStatus()?.issued ?? 0) >= 1, 20_000)).toBe(true)
      expect(errors).toEqual([])
      // node:https checks the chain up to Pebble's root and the name.
      expect(await httpsGet(tlsPort, 'a.test', '/', root)).toEqual({ status: 200, body: 'hello a.test' })
      expect(await httpsGet(tlsPort, 'www.a.test', '/', root)).toEqual({ status: 200, body: 'hello www.a.test' })
      const out = await sClient(tlsPort, 'www.a.test', rootFile)
      expect(out).toMatch(/Verification: OK/)
      first = await handshake(tlsPort, 'a.test', root)
      expect(first.authorized).toBe(true)
      expect(server.certificate).toContain('-----BEGIN CERTIFICATE-----')
      const status = server.acmeStatus()
      expect(status?.notAfter).toBeGreaterThan(Date.now() + 80 * 86_400_000)
      // The cache: directory 0700, every file 0600.
      expect(statSync(cache).mode & 0o777).toBe(0o700)
      const files = readdirSync(cache)
      expect(files.sort()).toEqual(['a.test.crt.pem', 'a.test.key.pem', 'account.json'])
      for (const f of files) expect(statSync(join(cache, f)).mode & 0o777, f).toBe(0o600)
    } finally {
      await server.close()
    }
    // Restarted: the cached certificate is served at once, no new order.
    server = await app().listen({ host: '127.0.0.1', port: tlsPort, quiet: true, tls: { acme }, onError: (e) => void errors.push(e as HttpyError) })
    try {
      expect(server.acmeStatus()).toMatchObject({ certificates: 1, issued: 0, errors: 0 })
      expect((await handshake(tlsPort, 'a.test', root)).fingerprint256).toBe(first.fingerprint256)
      await new Promise((r) => setTimeout(r, 500))
      expect(server.acmeStatus()?.issued).toBe(0)
      expect(errors).toEqual([])
    } finally {
      await server.close()
    }
  })

  it('HTTP-01 on a plain port, and a short-lived certificate renewed without a restart', async () => {
    const errors: HttpyError[] = []
    const server = await app().listen({
      host: '127.0.0.1',
      port: tlsPort,
      quiet: true,
      onError: (e) => void errors.push(e as HttpyError),
      tls: {
        acme: {
          domains: ['b.test'], directory: pebble.directory, directoryCa: pebble.ca, cache: cacheDir(),
          challenge: 'http-01', httpPort, profile: 'shortlived', renewAt: 0.3,
        },
      },
    })
    try {
      expect(await waitFor(() => (server.acmeStatus()?.issued ?? 0) >= 1, 20_000)).toBe(true)
      const one = await handshake(tlsPort, 'b.test', root)
      expect(one.authorized).toBe(true)
      // The plain port: unknown tokens 404, anything else redirected to HTTPS.
      const plain = (path: string): Promise<{ status: number; location: string | undefined }> =>
        new Promise((resolve, reject) => {
          http
            .get({ host: '127.0.0.1', port: httpPort, path, headers: { host: 'b.test' }, agent: false }, (res) => {
              res.resume()
              resolve({ status: res.statusCode ?? 0, location: res.headers.location })
            })
            .on('error', reject)
        })
      expect((await plain('/.well-known/acme-challenge/nope')).status).toBe(404)
      expect(await plain('/x?y=1')).toEqual({ status: 308, location: `https://b.test:${tlsPort}/x?y=1` })
      // 10 s certificates renewed at 30% of their life: a second one comes
      // within a few seconds, and a new handshake gets it.
      expect(await waitFor(() => (server.acmeStatus()?.issued ?? 0) >= 2, 15_000)).toBe(true)
      const two = await handshake(tlsPort, 'b.test', root)
      expect(two.authorized).toBe(true)
      expect(two.fingerprint256).not.toBe(one.fingerprint256)
      expect(errors).toEqual([])
    } finally {
      await server.close()
    }
  })

  it('an unreachable directory or a refused name: onError names the cause, the server keeps serving', async () => {
    const pki = new TestPki('acme-default')
    const fallback = pki.leaf('default', ['localhost'])
    const dead = await freePort()
    const errors: HttpyError[] = []
    let server = await app().listen({
      host: '127.0.0.1',
      port: tlsPort,
      quiet: true,
      onError: (e) => void errors.push(e as HttpyError),
      tls: {
        cert: fallback.cert,
        key: fallback.key,
        acme: { domains: ['c.test'], directory: `https://127.0.0.1:${dead}/dir`, cache: cacheDir(), retryDelay: 0.2 },
      },
    })
    try {
      // Retried with back-off: two reports in well under a second.
      expect(await waitFor(() => errors.length >= 2, 10_000)).toBe(true)
      expect(errors[0]?.code).toBe('ERR_HTTPY_ACME')
      expect(errors[0]?.message).toMatch(new RegExp(`c\\.test.*127\\.0\\.0\\.1:${dead}.*(refused|connect)`, 'i'))
      // The static certificate answers meanwhile, for the ACME name too.
      expect(await httpsGet(tlsPort, 'localhost', '/', pki.ca)).toEqual({ status: 200, body: 'hello localhost' })
      const served = await handshake(tlsPort, 'c.test', pki.ca)
      expect(served.fingerprint256).toBe(new X509Certificate(fallback.pem).fingerprint256)
    } finally {
      await server.close()
    }
    errors.length = 0
    server = await app().listen({
      host: '127.0.0.1',
      port: tlsPort,
      quiet: true,
      onError: (e) => void errors.push(e as HttpyError),
      tls: { acme: { domains: ['refused.test'], directory: pebble.directory, directoryCa: pebble.ca, cache: cacheDir(), retryDelay: 30 } },
    })
    try {
      expect(await waitFor(() => errors.length >= 1, 10_000)).toBe(true)
      expect(errors[0]?.code).toBe('ERR_HTTPY_ACME')
      expect(errors[0]?.message).toMatch(/refused\.test/)
      expect(errors[0]?.message).toMatch(/rejectedIdentifier|blocked|policy/i)
      // No certificate at all: the handshake ends with an alert, and the
      // process goes on (the next server in this file is proof).
      await expect(handshake(tlsPort, 'refused.test', root)).rejects.toThrow(/alert|handshake|socket/i)
      expect(server.acmeStatus()).toMatchObject({ certificates: 0, issued: 0 })
    } finally {
      await server.close()
      pki.cleanup()
    }
  })

  it('run({ workers: 2 }): worker 1 orders, worker 2 serves it from the cache; the supervisor says https', async () => {
    const cache = cacheDir()
    const opts = {
      host: '127.0.0.1',
      port: tlsPort,
      workers: 2,
      tls: { acme: { domains: ['d.test'], directory: pebble.directory, directoryCa: pebble.ca, cache, profile: 'default' } },
    }
    const proc = await startApp('prod-app.ts', { HTTPY_TEST_OPTS: JSON.stringify(opts) })
    try {
      expect(proc.stdout()).toContain(`httpy listening on https://127.0.0.1:${tlsPort}`)
      // Both workers (the kernel spreads connections) serve the issued certificate.
      const allServe = async (): Promise<boolean> => {
        const seen = new Set<string>()
        for (let i = 0; i < 8; i++) {
          const p = await handshake(tlsPort, 'd.test', root).catch(() => undefined)
          if (!p?.authorized) return false
          seen.add(p.fingerprint256)
        }
        return seen.size === 1
      }
      expect(await waitFor(allServe, 20_000, 200)).toBe(true)
      expect(proc.stderr().match(/certificate issued for d\.test/g)?.length).toBe(1)
    } finally {
      proc.child.kill('SIGTERM')
      await proc.exited
    }
  })
})
