/**
 * Details of the wire a client may check: every response carries `Date`
 * (RFC 9110 §6.6.1) over HTTP/1.1, HTTP/2 and HTTP/3 alike, and a metrics
 * scrape is counted under its own path rather than as an unmatched request.
 */
import http2 from 'node:http2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, HTTP3_AVAILABLE, Response, type Server } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import { h3 } from './helpers/h3.js'
import { requireTool } from './helpers/tools.js'
import { listen } from './helpers/index.js'

/** The `Date` value is a valid HTTP date within a few seconds of now. */
function expectFreshDate(value: unknown): void {
  expect(typeof value).toBe('string')
  const t = Date.parse(value as string)
  expect(Number.isNaN(t)).toBe(false)
  expect(Math.abs(Date.now() - t)).toBeLessThan(5000)
  expect(value as string).toMatch(/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/)
}

describe.skipIf(!requireTool('openssl'))('Date on every protocol', () => {
  let certs: TestCerts
  let server: Server
  let plain: Server
  beforeAll(async () => {
    certs = makeCerts()
    const app = () =>
      new App()
        .get('/hello', () => Response.text('hi'))
        .get('/dated', () => new Response('x', { headers: { date: 'Tue, 01 Jan 2030 00:00:00 GMT' } }))
    server = await listen(app(), { tls: { cert: certs.certFile, key: certs.keyFile }, ...(HTTP3_AVAILABLE ? { http3Port: 0 } : {}) })
    plain = await listen(app())
  })
  afterAll(async () => {
    await server?.close()
    await plain?.close()
    certs?.cleanup()
  })

  it('HTTP/1.1', async () => {
    const r = await fetch(`${plain.url}/hello`)
    expectFreshDate(r.headers.get('date'))
  })

  for (const [name, url] of [['HTTP/2 over TLS', () => server.url], ['h2c', () => plain.url]] as const) {
    it(name, async () => {
      const session = http2.connect(url(), { ca: certs.ca })
      try {
        const get = (path: string) =>
          new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
            const s = session.request({ ':path': path })
            s.on('response', (h) => {
              s.resume()
              s.on('end', () => resolve(h))
            })
            s.on('error', reject)
            s.end()
          })
        expectFreshDate((await get('/hello')).date)
        expectFreshDate((await get('/missing')).date)
        // A Date the handler set is kept, not doubled.
        expect((await get('/dated')).date).toBe('Tue, 01 Jan 2030 00:00:00 GMT')
      } finally {
        session.close()
      }
    })
  }

  it.skipIf(!HTTP3_AVAILABLE || !requireTool('aioquic'))('HTTP/3 (aioquic client; skipped only in a build without HTTP/3)', async () => {
    const r = await h3(server.http3Port as number, [{ path: '/hello' }, { path: '/dated' }], { ca: certs.ca })
    expectFreshDate(r.responses[0]?.headers.date)
    expect(r.responses[1]?.headers.date).toBe('Tue, 01 Jan 2030 00:00:00 GMT')
  })
})

describe('metrics scrape label', () => {
  let server: Server
  beforeAll(async () => {
    const app = new App()
    app.get('/x', () => Response.text('x'))
    server = await listen(app, { metrics: true })
  })
  afterAll(async () => {
    await server?.close()
  })

  it('counts /metrics under route="/metrics", not <unmatched>', async () => {
    await fetch(`${server.url}/metrics`).then((r) => r.text())
    const text = await fetch(`${server.url}/metrics`).then((r) => r.text())
    expect(text).toContain('http_requests_total{method="GET",route="/metrics",status="200"} 1')
    expect(text).not.toContain('route="<unmatched>"')
  })
})
