/**
 * Certificates beyond one: several chosen by SNI (wildcards, the default,
 * a TLS alert without one), checked at start (names, validity, keys);
 * replaced while running (`setTls`, SIGHUP) with open connections keeping
 * theirs and bad files refused; client certificates (mTLS) on `req.tls`.
 * Clients: openssl s_client, curl, node:https / node:tls / node:http2,
 * and the aioquic HTTP/3 client.
 */
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import http2 from 'node:http2'
import { join } from 'node:path'
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { TestPki, type Leaf } from './pki.js'
import { listenError } from './helpers/h1.js'
import { h3 } from './helpers/h3.js'
import { startApp, waitFor } from './helpers/proc.js'
import { requireTool } from './helpers/tools.js'

const hasOpenssl = requireTool('openssl')
const hasCurl = requireTool('curl')
const hasAioquic = requireTool('aioquic')

function run(cmd: string, args: string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
    child.stdin?.end(input)
  })
}

/** The subject CN of the certificate the server sends for `servername`, seen by openssl s_client. */
async function sClientSubject(port: number, servername: string): Promise<string> {
  const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', servername, '-brief'])
  const m = /Peer certificate: (.*)/.exec(r.stdout + r.stderr)
  if (!m) throw new Error(`no peer certificate from s_client: ${r.stdout}${r.stderr}`)
  return m[1] as string
}

/** Handshake with node:tls; resolves with the peer certificate's CN and fingerprint, or rejects with the TLS error. */
function handshake(
  port: number,
  servername: string | undefined,
  ca: string | string[],
  extra: tls.ConnectionOptions = {},
): Promise<{ cn: string; fingerprint256: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, ...(servername ? { servername } : {}), checkServerIdentity: () => undefined, ...extra })
    s.setTimeout(5000, () => s.destroy(new Error('timeout')))
    s.on('secureConnect', () => {
      const c = s.getPeerCertificate()
      s.end()
      resolve({ cn: String(c.subject?.CN), fingerprint256: c.fingerprint256 })
    })
    s.on('error', reject)
  })
}

/** GET over HTTPS/1.1 with node:https; returns status and body. */
function httpsGet(port: number, path: string, opts: https.RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, agent: false, ...opts }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.setTimeout(5000, () => req.destroy(new Error('timeout')))
  })
}

function tlsApp(): App {
  return new App().get('/tls', (req) => Response.json({ tls: req.tls, version: req.httpVersion }))
}

describe.skipIf(!hasOpenssl)('SNI: a certificate per server name', () => {
  let pki: TestPki
  let a: Leaf, wild: Leaf, dflt: Leaf
  let server: Server
  beforeAll(async () => {
    pki = new TestPki()
    a = pki.leaf('a', ['a.example'])
    wild = pki.leaf('wild', ['*.b.example'])
    dflt = pki.leaf('default', ['localhost', '127.0.0.1'])
    server = await tlsApp().listen({
      host: '127.0.0.1',
      port: 0,
      quiet: true,
      http3Port: 0,
      tls: [
        { serverName: 'a.example', cert: a.cert, key: a.key },
        { serverName: '*.b.example', cert: wild.cert, key: wild.key },
        { cert: dflt.cert, key: dflt.key },
      ],
    })
  })
  afterAll(async () => {
    await server?.close()
    pki?.cleanup()
  })

  it('openssl s_client -servername gets the certificate of each name, the default for others', async () => {
    expect(await sClientSubject(server.port, 'a.example')).toContain('CN = a.example')
    expect(await sClientSubject(server.port, 'x.b.example')).toContain('CN = *.b.example')
    expect(await sClientSubject(server.port, 'A.EXAMPLE')).toContain('CN = a.example')
    // A wildcard covers one label only; unknown names get the default.
    expect(await sClientSubject(server.port, 'y.x.b.example')).toContain('CN = localhost')
    expect(await sClientSubject(server.port, 'b.example')).toContain('CN = localhost')
    expect(await sClientSubject(server.port, 'unknown.example')).toContain('CN = localhost')
  })

  it.skipIf(!hasCurl)('curl --resolve verifies each name against the CA and reaches the handler', async () => {
    const caFile = join(pki.dir, 'ca.pem')
    for (const name of ['a.example', 'www.b.example']) {
      const r = await run('curl', ['-sS', '--max-time', '5', '--cacert', caFile, '--resolve', `${name}:${server.port}:127.0.0.1`, `https://${name}:${server.port}/tls`])
      expect(r.stderr).toBe('')
      const body = JSON.parse(r.stdout) as { tls: { servername: string }; version: string }
      expect(body.tls.servername).toBe(name)
      expect(body.version).toBe('2')
    }
    // A name covered by no certificate gets the default one, and curl's own check fails.
    const r = await run('curl', ['-sS', '--max-time', '5', '--cacert', caFile, '--resolve', `other.example:${server.port}:127.0.0.1`, `https://other.example:${server.port}/tls`])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/other\.example|subject/i)
  })

  it('node:https with servername, and a client without SNI, get the right certificate', async () => {
    const r = await httpsGet(server.port, '/tls', { servername: 'x.b.example', ca: pki.ca })
    expect(r.status).toBe(200)
    expect(JSON.parse(r.body).tls).toEqual({ servername: 'x.b.example', clientCertificate: null })
    // An IP address is never sent as SNI: the default certificate (which names 127.0.0.1) answers.
    const noSni = await httpsGet(server.port, '/tls', { ca: pki.ca })
    expect(JSON.parse(noSni.body).tls).toEqual({ servername: null, clientCertificate: null })
    expect((await handshake(server.port, undefined, pki.ca)).cn).toBe('localhost')
  })

  it.skipIf(!hasAioquic)('HTTP/3 chooses by SNI from the same certificates', async () => {
    const port = server.http3Port as number
    const res = await h3(port, [{ path: '/tls' }], { ca: pki.ca, serverName: 'www.b.example', timeoutMs: 20_000 })
    expect(res.responses[0]?.status).toBe(200)
    expect(JSON.parse(res.responses[0]?.body ?? '{}').tls.servername).toBe('www.b.example')
    const a3 = await h3(port, [{ path: '/tls' }], { ca: pki.ca, serverName: 'a.example', timeoutMs: 20_000 })
    expect(JSON.parse(a3.responses[0]?.body ?? '{}')).toMatchObject({ version: '3', tls: { servername: 'a.example' } })
  })

  it('without a default certificate an unknown name gets a TLS alert, and the server keeps serving', async () => {
    const only = await tlsApp().listen({
      host: '127.0.0.1',
      port: 0,
      quiet: true,
      tls: [{ serverName: 'a.example', cert: a.cert, key: a.key }],
    })
    try {
      const err = await handshake(only.port, 'nope.example', pki.ca).then(
        () => null,
        (e: NodeJS.ErrnoException) => e,
      )
      expect(err?.code).toBe('ERR_SSL_TLSV1_ALERT_ACCESS_DENIED')
      const noSni = await handshake(only.port, undefined, pki.ca).then(
        () => null,
        (e: NodeJS.ErrnoException) => e,
      )
      expect(noSni?.message).toMatch(/alert/)
      expect((await handshake(only.port, 'a.example', pki.ca)).cn).toBe('a.example')
    } finally {
      await only.close()
    }
  })

  it('refuses at start, naming the file: a name the certificate does not cover, expired, missing key, duplicates', async () => {
    const expired = pki.leaf('expired', ['old.example'], { expired: true })
    const cases: [unknown, RegExp][] = [
      [[{ serverName: 'c.example', cert: a.cert, key: a.key }], new RegExp(`${a.cert.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} does not cover serverName c\\.example \\(its names: a\\.example\\)`)],
      [[{ serverName: '*.a.example', cert: a.cert, key: a.key }], /does not cover serverName \*\.a\.example/],
      [{ cert: expired.cert, key: expired.key }, /expired\.pem expired on Jan {1,2}2 00:00:00 2020/],
      [[{ serverName: 'a.example', cert: a.cert, key: join(pki.dir, 'missing.key') }], /cannot read tls\[0\]\.key file .*missing\.key: ENOENT/],
      [[{ serverName: 'a.example', cert: a.cert, key: wild.key }], /private key in .*wild\.key does not match the certificate in .*a\.pem/],
      [[{ serverName: 'a.example', cert: a.cert, key: a.key }, { serverName: 'A.example', cert: a.cert, key: a.key }], /serverName a\.example is listed twice/],
      [[{ cert: a.cert, key: a.key }, { cert: dflt.cert, key: dflt.key }], /two default certificates/],
      [[{ serverName: '127.0.0.1', cert: dflt.cert, key: dflt.key }], /is an IP address/],
    ]
    for (const [tlsOption, message] of cases) {
      const err = await listenError(tlsApp(), { host: '127.0.0.1', port: 0, quiet: true, tls: tlsOption as never })
      expect(err, String(message)).not.toBeNull()
      expect(err?.code).toBe('ERR_HTTPY_TLS')
      expect(err?.message).toMatch(message)
    }
  })
})

describe.skipIf(!hasOpenssl)('reload without restart', () => {
  let pki: TestPki
  beforeAll(() => {
    pki = new TestPki()
  })
  afterAll(() => pki?.cleanup())

  it('setTls: new handshakes get the new certificate, open connections keep theirs, a bad one is refused', async () => {
    const one = pki.leaf('one', ['localhost'])
    const two = pki.leaf('two', ['localhost'])
    const server = await tlsApp().listen({ host: '127.0.0.1', port: 0, quiet: true, http3Port: 0, tls: { cert: one.cert, key: one.key } })
    try {
      const before = await handshake(server.port, 'localhost', pki.ca)
      // An HTTP/2 connection opened before the reload.
      const session = http2.connect(`https://127.0.0.1:${server.port}`, { ca: pki.ca, servername: 'localhost' })
      session.on('error', () => {})
      const get = (): Promise<number> =>
        new Promise((resolve, reject) => {
          const r = session.request({ ':path': '/tls' })
          r.on('response', (h) => resolve(Number(h[':status'])))
          r.on('error', reject)
          r.resume()
          r.end()
        })
      expect(await get()).toBe(200)
      const openFp = (session.socket as tls.TLSSocket).getPeerCertificate().fingerprint256
      expect(openFp).toBe(before.fingerprint256)

      server.setTls({ cert: two.cert, key: two.key })
      const after = await handshake(server.port, 'localhost', pki.ca)
      expect(after.fingerprint256).not.toBe(before.fingerprint256)
      expect(server.certificate).toContain(two.pem.trim().split('\n')[1])
      // The open connection still works, still with the key it agreed on.
      expect(await get()).toBe(200)
      expect((session.socket as tls.TLSSocket).getPeerCertificate().fingerprint256).toBe(openFp)
      session.close()

      // A bad replacement names the file and changes nothing.
      expect(() => server.setTls({ cert: one.cert, key: two.key })).toThrow(/private key in .*two\.key does not match the certificate in .*one\.pem/)
      expect(() => server.setTls({ cert: join(pki.dir, 'gone.pem'), key: two.key })).toThrow(/cannot read tls\.cert file .*gone\.pem: ENOENT/)
      expect((await handshake(server.port, 'localhost', pki.ca)).fingerprint256).toBe(after.fingerprint256)

      // HTTP/3 follows: a certificate for another name makes aioquic's check against 'localhost' fail.
      if (hasAioquic) {
        const h3port = server.http3Port as number
        expect((await h3(h3port, [{ path: '/tls' }], { ca: pki.ca, timeoutMs: 20_000 })).responses[0]?.status).toBe(200)
        const other = pki.leaf('other', ['other.example'])
        server.setTls({ cert: other.cert, key: other.key })
        await expect(h3(h3port, [{ path: '/tls' }], { ca: pki.ca, timeoutMs: 20_000 })).rejects.toThrow()
        const ok = await h3(h3port, [{ path: '/tls' }], { ca: pki.ca, serverName: 'other.example', timeoutMs: 20_000 })
        expect(ok.responses[0]?.status).toBe(200)
      }
    } finally {
      await server.close()
    }
  })

  it('setTls on a server without TLS is refused', async () => {
    const plain = await tlsApp().listen({ host: '127.0.0.1', port: 0, quiet: true })
    try {
      const one = pki.leaf('plain', ['localhost'])
      expect(() => plain.setTls({ cert: one.cert, key: one.key })).toThrow(/started without tls/)
    } finally {
      await plain.close()
    }
  })

  it('SIGHUP to run() reloads the files, in every worker; a bad file is reported and the old certificate stays', async () => {
    const one = pki.leaf('hup1', ['localhost'])
    const two = pki.leaf('hup2', ['localhost'])
    const certFile = join(pki.dir, 'live.pem')
    const keyFile = join(pki.dir, 'live.key')
    copyFileSync(one.cert, certFile)
    copyFileSync(one.key, keyFile)
    const app = await startApp('prod-app.ts', {
      HTTPY_TEST_OPTS: JSON.stringify({ host: '127.0.0.1', port: 0, workers: 2, tls: { cert: certFile, key: keyFile } }),
    })
    try {
      // The supervisor's URL names the scheme the workers serve.
      expect(app.stdout()).toContain(`httpy listening on https://127.0.0.1:${app.port}`)
      const fp = async (): Promise<Set<string>> => {
        // Several connections, so that both workers are likely asked.
        const seen = new Set<string>()
        for (let i = 0; i < 8; i++) seen.add((await handshake(app.port, 'localhost', pki.ca)).fingerprint256)
        return seen
      }
      const first = await fp()
      expect(first.size).toBe(1)
      copyFileSync(two.cert, certFile)
      copyFileSync(two.key, keyFile)
      process.kill(app.pid, 'SIGHUP')
      expect(await waitFor(() => (app.stderr().match(/TLS certificates reloaded/g) ?? []).length === 2)).toBe(true)
      const second = await fp()
      expect(second.size).toBe(1)
      expect([...second][0]).not.toBe([...first][0])

      writeFileSync(keyFile, 'not a key')
      process.kill(app.pid, 'SIGHUP')
      expect(await waitFor(() => (app.stderr().match(/TLS reload failed/g) ?? []).length === 2)).toBe(true)
      expect(app.stderr()).toMatch(/cannot read a private key from .*live\.key/)
      expect(await fp()).toEqual(second)
    } finally {
      app.child.kill('SIGTERM')
      await app.exited
    }
  })
})

describe.skipIf(!hasOpenssl)('client certificates (mTLS)', () => {
  let pki: TestPki
  let otherPki: TestPki
  let serverLeaf: Leaf, alice: Leaf, mallory: Leaf
  beforeAll(() => {
    pki = new TestPki()
    otherPki = new TestPki('other')
    serverLeaf = pki.leaf('server', ['localhost', '127.0.0.1'])
    alice = pki.leaf('alice', [], { client: true, subject: '/CN=alice/O=Example' })
    mallory = otherPki.leaf('mallory', [], { client: true, subject: '/CN=mallory' })
  })
  afterAll(() => {
    pki?.cleanup()
    otherPki?.cleanup()
  })

  function fingerprint(pem: string): string {
    return new X509Certificate(pem).fingerprint256
  }

  it('requestCert: a verified client certificate reaches req.tls and the fetch-style info; others are refused', async () => {
    const app = tlsApp().fetch((_req, info) => globalThis.Response.json({ tls: info.tls }))
    const server = await app.listen({ host: '127.0.0.1', port: 0, quiet: true, tls: { cert: serverLeaf.cert, key: serverLeaf.key, ca: pki.caFile, requestCert: true } })
    try {
      const withCert = { ca: pki.ca, servername: 'localhost', cert: readFileSync(alice.cert), key: readFileSync(alice.key) }
      const r = await httpsGet(server.port, '/tls', withCert)
      expect(r.status).toBe(200)
      const { tls: info } = JSON.parse(r.body) as { tls: { clientCertificate: { subject: string; fingerprint256: string; authorized: boolean } } }
      expect(info.clientCertificate.subject).toBe('CN=alice, O=Example')
      expect(info.clientCertificate.fingerprint256).toBe(fingerprint(alice.pem))
      expect(info.clientCertificate.authorized).toBe(true)
      // The fetch-style handler's `info.tls` (any path other than /tls).
      const f = await httpsGet(server.port, '/fetch', withCert)
      expect(JSON.parse(f.body).tls.clientCertificate.fingerprint256).toBe(fingerprint(alice.pem))

      // No certificate, or one from another CA: the handshake fails.
      await expect(httpsGet(server.port, '/tls', { ca: pki.ca, servername: 'localhost' })).rejects.toThrow(/certificate required|alert|socket hang up|ECONNRESET/i)
      await expect(
        httpsGet(server.port, '/tls', { ca: pki.ca, servername: 'localhost', cert: readFileSync(mallory.cert), key: readFileSync(mallory.key) }),
      ).rejects.toThrow(/alert|unknown ca|bad certificate|socket hang up|ECONNRESET/i)

      if (hasCurl) {
        const ok = await run('curl', ['-sS', '--max-time', '5', '--cacert', pki.caFile, '--cert', alice.cert, '--key', alice.key, `https://localhost:${server.port}/tls`])
        expect(JSON.parse(ok.stdout).tls.clientCertificate.subject).toBe('CN=alice, O=Example')
        const refused = await run('curl', ['-sS', '--max-time', '5', '--cacert', pki.caFile, `https://localhost:${server.port}/tls`])
        expect(refused.code).not.toBe(0)
      }
      // Still serving after the refusals.
      expect((await httpsGet(server.port, '/tls', withCert)).status).toBe(200)
    } finally {
      await server.close()
    }
  })

  it.skipIf(!hasAioquic)('requestCert over HTTP/3: the client certificate reaches req.tls; a client without one is refused', async () => {
    const server = await tlsApp().listen({
      host: '127.0.0.1',
      port: 0,
      quiet: true,
      http3Port: 0,
      tls: { cert: serverLeaf.cert, key: serverLeaf.key, ca: pki.caFile, requestCert: true },
    })
    try {
      const port = server.http3Port as number
      const res = await h3(port, [{ path: '/tls' }], { ca: pki.ca, cert: alice.cert, key: alice.key, timeoutMs: 20_000 })
      const body = JSON.parse(res.responses[0]?.body ?? '{}') as { tls: { clientCertificate: { subject: string; fingerprint256: string; authorized: boolean } }; version: string }
      expect(body.version).toBe('3')
      expect(body.tls.clientCertificate).toEqual({ subject: 'CN=alice, O=Example', fingerprint256: fingerprint(alice.pem), authorized: true })
      // The server closes the connection with a TLS alert (QUIC crypto error 0x1XX).
      await expect(h3(port, [{ path: '/tls' }], { ca: pki.ca, timeoutMs: 8000 })).rejects.toThrow(/closed by the server: error 0x1[0-9a-f]{2}/)
      await expect(h3(port, [{ path: '/tls' }], { ca: pki.ca, cert: mallory.cert, key: mallory.key, timeoutMs: 8000 })).rejects.toThrow(/closed by the server: error 0x1[0-9a-f]{2}/)
      // Still serving after the refusals.
      expect((await h3(port, [{ path: '/tls' }], { ca: pki.ca, cert: alice.cert, key: alice.key, timeoutMs: 20_000 })).responses[0]?.status).toBe(200)
    } finally {
      await server.close()
    }
  })

  it('rejectUnauthorized: false lets everyone in and says who verified', async () => {
    const server = await tlsApp().listen({
      host: '127.0.0.1',
      port: 0,
      quiet: true,
      tls: { cert: serverLeaf.cert, key: serverLeaf.key, ca: pki.ca, requestCert: true, rejectUnauthorized: false },
    })
    try {
      const base = { ca: pki.ca, servername: 'localhost' }
      const none = JSON.parse((await httpsGet(server.port, '/tls', base)).body)
      expect(none.tls.clientCertificate).toBeNull()
      const good = JSON.parse((await httpsGet(server.port, '/tls', { ...base, cert: readFileSync(alice.cert), key: readFileSync(alice.key) })).body)
      expect(good.tls.clientCertificate).toMatchObject({ subject: 'CN=alice, O=Example', authorized: true })
      const stranger = JSON.parse((await httpsGet(server.port, '/tls', { ...base, cert: readFileSync(mallory.cert), key: readFileSync(mallory.key) })).body)
      expect(stranger.tls.clientCertificate).toMatchObject({ subject: 'CN=mallory', authorized: false, fingerprint256: fingerprint(mallory.pem) })
    } finally {
      await server.close()
    }
  })

  it('bad mTLS options are named', async () => {
    const cases: [unknown, string, RegExp][] = [
      [{ cert: serverLeaf.cert, key: serverLeaf.key, requestCert: true }, 'ERR_HTTPY_INVALID_OPTION', /requestCert" needs "tls\.ca"/],
      [{ cert: serverLeaf.cert, key: serverLeaf.key, requestCert: true, ca: serverLeaf.key }, 'ERR_HTTPY_TLS', /no certificate found in .*server\.key/],
      [{ cert: serverLeaf.cert, key: serverLeaf.key, requestCert: 'yes' }, 'ERR_HTTPY_INVALID_OPTION', /requestCert" must be a boolean/],
    ]
    for (const [opt, code, message] of cases) {
      const err = await listenError(tlsApp(), { host: '127.0.0.1', port: 0, quiet: true, tls: opt as never })
      expect(err?.code).toBe(code)
      expect(err?.message).toMatch(message)
    }
  })
})
