/**
 * `httpy bench` over TLS and HTTP/3, from the command line as a user runs
 * it (its own process): `--ca-file`, `--insecure`, `--new-connection`,
 * `--http2` over TLS and `--http3`, each checked against what the server
 * saw (protocol version, scheme, request and connection counts), and a
 * certificate the generator does not trust refused with a clear message.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import { listen, requireTool } from './helpers/index.js'

const CLI = join(import.meta.dirname, '..', 'ts', 'cli.ts')

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr })
    })
  })
}

let certs: TestCerts
const haveOpenssl = requireTool('openssl')
beforeAll(() => {
  if (haveOpenssl) certs = makeCerts()
})
afterAll(() => certs?.cleanup())

describe.skipIf(!haveOpenssl)('httpy bench over TLS and HTTP/3', () => {
  let server: Server
  const seen = new Map<string, number>()
  beforeAll(async () => {
    const app = new App()
    app.get('/hello', (req) => {
      const k = `${req.scheme} ${req.httpVersion}`
      seen.set(k, (seen.get(k) ?? 0) + 1)
      return Response.text('hello')
    })
    server = await listen(app, { tls: { cert: certs.certFile, key: certs.keyFile }, http3Port: 0 })
  })
  afterAll(() => server?.close({ timeout: 0.5 }))

  const run = async (args: string[]) => {
    seen.clear()
    const before = server.stats().connectionsTotal
    const r = await cli(['bench', ...args, '--json'])
    expect(r.code, r.stderr).toBe(0)
    return { out: JSON.parse(r.stdout), connections: server.stats().connectionsTotal - before }
  }
  const https = () => `https://127.0.0.1:${server.port}/hello`

  it('--ca-file: HTTP/1.1 over TLS, every request seen by the server', async () => {
    const { out } = await run([https(), '--ca-file', certs.certFile, '-n', '200', '-c', '4'])
    expect(out.protocol).toBe('http1')
    expect(out.totalRequests).toBe(200)
    expect(out.statusCounts).toEqual({ 200: 200 })
    expect(Object.fromEntries(seen)).toEqual({ 'https 1.1': 200 })
  })

  it('--http2 over TLS (ALPN h2), streams over the given connections', async () => {
    const { out, connections } = await run([https(), '--ca-file', certs.certFile, '--http2', '--connections', '2', '-n', '200', '-c', '8'])
    expect(out.protocol).toBe('http2')
    expect(out.errors).toBe(0)
    expect(Object.fromEntries(seen)).toEqual({ 'https 2': 200 })
    expect(connections).toBe(2)
  })

  it('--insecure --new-connection: a full handshake per request', async () => {
    const { out, connections } = await run([https(), '--insecure', '--new-connection', '-n', '30', '-c', '3'])
    expect(out.errors).toBe(0)
    expect(out.totalRequests).toBe(30)
    expect(out.connectionsOpened).toBeGreaterThanOrEqual(30)
    expect(connections).toBeGreaterThanOrEqual(30)
  })

  it('--http3: QUIC to the UDP port, httpVersion 3 on the server', async () => {
    const url = `https://127.0.0.1:${server.http3Port as number}/hello`
    const { out, connections } = await run([url, '--http3', '--ca-file', certs.certFile, '--connections', '2', '-n', '200', '-c', '8'])
    expect(out.protocol).toBe('http3')
    expect(out.totalRequests).toBe(200)
    expect(out.statusCounts).toEqual({ 200: 200 })
    expect(Object.fromEntries(seen)).toEqual({ 'https 3': 200 })
    expect(connections).toBe(2)
    // The human summary names the protocol.
    const plain = await cli(['bench', url, '--http3', '--ca-file', certs.certFile, '-n', '20'])
    expect(plain.code, plain.stderr).toBe(0)
    expect(plain.stdout).toMatch(/HTTP\/3 \(QUIC\)/)
  })

  it('without a way to trust the certificate: usage error (2); a CA that did not sign it: refused (1)', async () => {
    const none = await cli(['bench', https(), '-n', '5'])
    expect(none.code).toBe(2)
    expect(none.stderr).toMatch(/https needs a CA file \(caFile\) or insecure: true/)
    const other = makeCerts()
    try {
      const wrong = await cli(['bench', https(), '--ca-file', join(other.dir, 'ca.pem'), '-n', '5'])
      expect(wrong.code).toBe(1)
      expect(wrong.stderr + wrong.stdout).toMatch(/certificate/i)
    } finally {
      other.cleanup()
    }
  })
})
