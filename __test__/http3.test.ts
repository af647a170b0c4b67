/**
 * HTTP/3 through an independent client: Python's aioquic (its own QUIC and
 * HTTP/3 stacks, nothing shared with quinn/h3), driven by
 * `fixtures/h3client.py`. Covers routing, middleware, errors, 5 MB bodies
 * both ways, 100 concurrent requests on one connection, the QUIC transport
 * parameters the client sees, Alt-Svc on TCP, garbage datagrams, graceful
 * close and option validation.
 */
import { createHash } from 'node:crypto'
import http2 from 'node:http2'
import https from 'node:https'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, HTTP3_AVAILABLE, Response, type Server } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import { listen } from './helpers/index.js'
import { h3, type H3Response } from './helpers/h3.js'
import { requireTool } from './helpers/tools.js'

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = i & 0xff
  return b
}
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const FIVE_MB = 5 * 1024 * 1024

function makeApp(): App {
  const app = new App()
  app.use(async (req, next) => {
    const res = await next(req)
    res.headers.set('x-middleware', 'ran')
    return res
  })
  app.get('/info', (req) => Response.json({ version: req.httpVersion, scheme: req.scheme, host: req.headers.get('host') }))
  app.get('/users/{id}', (req) => Response.json({ id: req.pathParams.id }))
  app.get('/n/{n}', async (req) => {
    await new Promise((r) => setTimeout(r, Number(req.pathParams.n) % 5))
    return Response.text(`n=${req.pathParams.n}`)
  })
  app.post('/upload', (req) => Response.json({ length: req.body.length, sha256: sha(req.body) }))
  app.get('/download', () => new Response(pattern(FIVE_MB)))
  app.get('/boom', () => {
    throw new Error('handler failed')
  })
  app.get('/page', () => {
    const res = Response.html('<h1>page</h1>')
    res.pushResources = [['/static/app.js', 'script']]
    return res
  })
  app.get('/slow', async () => {
    await new Promise((r) => setTimeout(r, 500))
    return Response.text('slow done')
  })
  return app
}

let certs: TestCerts
const haveOpenssl = requireTool('openssl')
beforeAll(() => {
  if (haveOpenssl) certs = makeCerts()
})
afterAll(() => certs?.cleanup())

describe('HTTP3_AVAILABLE', () => {
  it('is true in the default build (the http3 Cargo feature)', () => {
    expect(HTTP3_AVAILABLE).toBe(true)
  })
})

describe.skipIf(!haveOpenssl || !requireTool('aioquic'))('HTTP/3 with aioquic', () => {
  let server: Server
  const http3Config = {
    maxDatagramSize: 1350,
    quicMaxStreamData: 1024 * 1024,
    quicMaxData: 5 * 1024 * 1024,
    quicMaxStreamsBidi: 150,
    quicIdleTimeout: 30,
  }
  beforeAll(async () => {
    server = await listen(makeApp(), {
      tls: { cert: certs.certFile, key: certs.keyFile },
      http3Port: 0,
      http3Config,
      maxBodySize: 16 * 1024 * 1024,
    })
  })
  afterAll(() => server?.close())

  it('serves routes, parameters and middleware with httpVersion 3', async () => {
    const port = server.http3Port as number
    expect(port).toBeGreaterThan(0)
    const r = await h3(port, [{ path: '/info' }, { path: '/users/42' }, { path: '/missing' }], { ca: certs.ca })
    const [info, user, missing] = r.responses as [H3Response, H3Response, H3Response]
    expect(info.status).toBe(200)
    expect(JSON.parse(info.body)).toEqual({ version: '3', scheme: 'https', host: `localhost:${port}` })
    expect(info.headers['x-middleware']).toBe('ran')
    expect(JSON.parse(user.body)).toEqual({ id: '42' })
    expect(missing.status).toBe(404)
    expect(missing.headers['x-middleware']).toBe('ran')
  })

  it('answers a throwing handler with 500', async () => {
    const r = await h3(server.http3Port as number, [{ path: '/boom' }, { path: '/users/1' }])
    expect(r.responses[0]?.status).toBe(500)
    expect(r.responses[1]?.status).toBe(200)
  })

  it('moves 5 MB each way', async () => {
    const r = await h3(server.http3Port as number, [{ method: 'POST', path: '/upload', body_size: FIVE_MB }, { path: '/download' }])
    const [up, down] = r.responses as [H3Response, H3Response]
    expect(up.status).toBe(200)
    expect(JSON.parse(up.body)).toEqual({ length: FIVE_MB, sha256: sha(pattern(FIVE_MB)) })
    expect(down.length).toBe(FIVE_MB)
    expect(down.sha256).toBe(sha(pattern(FIVE_MB)))
    expect(Number(down.headers['content-length'])).toBe(FIVE_MB)
  }, 60_000)

  it('serves 100 concurrent requests on one connection, each matching its request', async () => {
    const reqs = Array.from({ length: 100 }, (_, i) => ({ path: `/n/${i}` }))
    const r = await h3(server.http3Port as number, reqs)
    expect(r.responses.map((x) => x.body)).toEqual(reqs.map((_, i) => `n=${i}`))
  }, 60_000)

  it('advertises the http3Config values in its QUIC transport parameters', async () => {
    const r = await h3(server.http3Port as number, [{ path: '/info' }])
    expect(r.transport.max_udp_payload_size).toBe(http3Config.maxDatagramSize)
    expect(r.transport.initial_max_data).toBe(http3Config.quicMaxData)
    expect(r.transport.initial_max_stream_data_bidi_remote).toBe(http3Config.quicMaxStreamData)
    expect(r.transport.initial_max_streams_bidi).toBe(http3Config.quicMaxStreamsBidi)
    expect(r.transport.max_idle_timeout).toBe(http3Config.quicIdleTimeout * 1000)
  })

  it('turns pushResources into Link headers (no push over HTTP/3)', async () => {
    const r = await h3(server.http3Port as number, [{ path: '/page' }])
    expect(r.responses[0]?.headers.link).toBe('</static/app.js>; rel=preload; as=script')
  })

  it('advertises HTTP/3 with Alt-Svc on HTTP/1.1 and HTTP/2 responses, not on HTTP/3 ones', async () => {
    const expected = `h3=":${server.http3Port}"; ma=86400`
    const h1 = await new Promise<string | undefined>((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port: server.port, path: '/info', ca: certs.ca, servername: 'localhost', agent: false }, (res) => {
          res.resume()
          resolve(res.headers['alt-svc'] as string | undefined)
        })
        .on('error', reject)
    })
    expect(h1).toBe(expected)
    const session = http2.connect(`https://127.0.0.1:${server.port}`, { ca: certs.ca, servername: 'localhost' })
    const h2 = await new Promise<unknown>((resolve, reject) => {
      const req = session.request({ ':path': '/info' })
      req.on('response', (h) => resolve(h['alt-svc']))
      req.on('error', reject)
      req.resume()
    })
    session.close()
    expect(h2).toBe(expected)
    const r = await h3(server.http3Port as number, [{ path: '/info' }])
    expect(r.responses[0]?.headers['alt-svc']).toBeUndefined()
  })

  it('drops garbage, truncated and unknown-version datagrams and keeps serving', async () => {
    const r = await h3(server.http3Port as number, [{ path: '/users/7' }], { garbage: 50 })
    expect(JSON.parse(r.responses[0]?.body ?? '')).toEqual({ id: '7' })
    expect(server.stats().panics).toBe(0)
  })

  it('finishes an open request on graceful close', async () => {
    const own = await listen(makeApp(), { tls: { cert: certs.certFile, key: certs.keyFile }, http3Port: 0 })
    const pending = h3(own.http3Port as number, [{ path: '/slow' }])
    // Close once the request is in the handler (the Python client takes a
    // moment to start, longer on a busy machine).
    const until = Date.now() + 20_000
    while (own.stats().pending === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20))
    expect(own.stats().pending).toBe(1)
    const closed = own.close({ timeout: 5 })
    const r = await pending
    expect(r.responses[0]?.body).toBe('slow done')
    await closed
  }, 45_000)
})

describe.skipIf(!haveOpenssl)('HTTP/3 option validation', () => {
  const tls = (): { cert: string; key: string } => ({ cert: certs.certFile, key: certs.keyFile })
  it('rejects http3Port without tls, naming both', async () => {
    await expect(listen(new App(), { http3Port: 0 })).rejects.toMatchObject({
      name: 'TypeError',
      code: 'ERR_HTTPY_INVALID_OPTION',
      message: expect.stringMatching(/"http3Port" needs "tls"/),
    })
  })

  const cases: Array<[string, Record<string, unknown>]> = [
    ['maxDatagramSize', { maxDatagramSize: 1000 }],
    ['maxDatagramSize', { maxDatagramSize: 70_000 }],
    ['quicMaxStreamData', { quicMaxStreamData: -1 }],
    ['quicMaxData', { quicMaxData: 0 }],
    ['quicMaxStreamsBidi', { quicMaxStreamsBidi: 0 }],
    ['quicMaxStreamsBidi', { quicMaxStreamsBidi: 1.5 }],
    ['quicIdleTimeout', { quicIdleTimeout: 0 }],
    ['quicIdleTimeout', { quicIdleTimeout: 'long' }],
    ['bogus', { bogus: 1 }],
  ]
  for (const [key, config] of cases) {
    it(`rejects http3Config ${JSON.stringify(config)} with a TypeError naming ${key}`, async () => {
      await expect(listen(new App(), { tls: tls(), http3Port: 0, http3Config: config as never })).rejects.toMatchObject({
        name: 'TypeError',
        code: 'ERR_HTTPY_INVALID_OPTION',
        message: expect.stringContaining(`http3Config.${key}`),
      })
    })
  }

  it('rejects http3Config without http3Port', async () => {
    await expect(listen(new App(), { tls: tls(), http3Config: {} })).rejects.toThrow(/http3Config/)
  })
})
