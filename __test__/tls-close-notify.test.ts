/**
 * TLS close_notify on the paths that `tls-records.test.ts` does not cover
 * (it runs the own HTTP/1.1 driver): HTTPS/1.1 through hyper
 * (`HTTPY_H1_DRIVER=hyper`, set before this file's first server starts; the
 * switch is read once per process) and HTTP/2 over TLS. At the keep-alive
 * timeout and at a graceful `close()` the server must end the connection
 * with a close_notify alert before its FIN, or a strict client takes the
 * close for a truncation. Checked with Python's ssl module (HTTP/1.1 and
 * raw HTTP/2 frames), and with node:http2 over TLS 1.2, where the alert's
 * record type shows on the wire. An HTTP/2 client that never acknowledges
 * the graceful GOAWAY's PING is closed all the same, a bounded time later.
 */
import http2 from 'node:http2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import { h2Request, listen, requireTool } from './helpers/index.js'
import { closeProbe, recordingRelay, recordTypes } from './helpers/tls-close.js'

process.env.HTTPY_H1_DRIVER = 'hyper'

const ALERT = 21
const APPLICATION_DATA = 23

const haveOpenssl = requireTool('openssl')
const havePython = requireTool('python3')

function makeApp(): App {
  const app = new App()
  app.get('/small', () => new Response('ok'))
  return app
}

describe.skipIf(!haveOpenssl)('close_notify, hyper HTTP/1.1 and HTTP/2 over TLS', () => {
  let certs: TestCerts
  let server: Server
  const caFile = (): string => `${certs.dir}/ca.pem`
  const tlsOpts = () => ({ tls: { cert: certs.certFile, key: certs.keyFile } })

  beforeAll(async () => {
    certs = makeCerts()
    server = await listen(makeApp(), { keepAliveTimeout: 1, ...tlsOpts() })
  })
  afterAll(async () => {
    await server?.close()
    certs?.cleanup()
  })

  describe.skipIf(!havePython)("Python's ssl", () => {
    it('hyper: after Connection: close', async () => {
      expect(await closeProbe(server.port, caFile(), { mode: 'h1', close: true })).toEqual([
        'HTTP/1.1 200 OK',
        'close_notify',
      ])
    })

    it('hyper: an idle keep-alive connection at keepAliveTimeout, and the server still serves', async () => {
      const t0 = Date.now()
      expect(await closeProbe(server.port, caFile(), { mode: 'h1' })).toEqual(['HTTP/1.1 200 OK', 'close_notify'])
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900)
      expect(await closeProbe(server.port, caFile(), { mode: 'h1', close: true })).toEqual([
        'HTTP/1.1 200 OK',
        'close_notify',
      ])
    })

    it('hyper: an idle keep-alive connection at a graceful close', async () => {
      const s = await listen(makeApp(), tlsOpts())
      let closing: Promise<void> | undefined
      const lines = await closeProbe(s.port, caFile(), { mode: 'h1', onAnswer: () => (closing = s.close({ timeout: 5 })) })
      await closing
      expect(lines).toEqual(['HTTP/1.1 200 OK', 'close_notify'])
    })

    it('HTTP/2: an idle connection at keepAliveTimeout (GOAWAY, then close_notify)', async () => {
      const t0 = Date.now()
      expect(await closeProbe(server.port, caFile(), { mode: 'h2' })).toEqual([
        'alpn h2',
        'status 200',
        'end of stream',
        'goaway',
        'close_notify',
      ])
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900)
    })

    it('HTTP/2: a client that never acks the GOAWAY PING is still closed, with close_notify, soon after', async () => {
      const t0 = Date.now()
      expect(await closeProbe(server.port, caFile(), { mode: 'h2', ackPings: false })).toEqual([
        'alpn h2',
        'status 200',
        'end of stream',
        'goaway',
        'close_notify',
      ])
      // keepAliveTimeout (1 s), then at most the drain limit (2 s) and the
      // close; without the limit the connection stayed open for good.
      expect(Date.now() - t0).toBeLessThan(6000)
    })

    it('HTTP/2: an idle connection at a graceful close', async () => {
      const s = await listen(makeApp(), tlsOpts())
      let closing: Promise<void> | undefined
      const lines = await closeProbe(s.port, caFile(), { mode: 'h2', onAnswer: () => (closing = s.close({ timeout: 5 })) })
      await closing
      expect(lines).toEqual(['alpn h2', 'status 200', 'end of stream', 'goaway', 'close_notify'])
    })
  })

  /** One GET over node:http2 (TLS 1.2) through a relay; `end` ends it. The
   * outer types of the records the server sent before its FIN. */
  async function http2Tail(port: number, end: () => void): Promise<number[]> {
    const relay = await recordingRelay(port)
    try {
      const session = http2.connect(`https://localhost:${relay.port}`, { ca: certs.ca, maxVersion: 'TLSv1.2' })
      session.on('error', () => {})
      const r = await h2Request(session, { ':path': '/small' })
      expect([r.status, r.body.toString()]).toEqual([200, 'ok'])
      end()
      return recordTypes(await relay.serverBytes())
    } finally {
      await relay.close()
    }
  }

  it('node:http2: the last record before the FIN is an alert, at keepAliveTimeout', async () => {
    const types = await http2Tail(server.port, () => {})
    expect(types).toContain(APPLICATION_DATA)
    expect(types.at(-1)).toBe(ALERT)
  })

  it('node:http2: the last record before the FIN is an alert, at a graceful close', async () => {
    const s = await listen(makeApp(), tlsOpts())
    let closing: Promise<void> | undefined
    const types = await http2Tail(s.port, () => (closing = s.close({ timeout: 5 })))
    await closing
    expect(types).toContain(APPLICATION_DATA)
    expect(types.at(-1)).toBe(ALERT)
  })
})
