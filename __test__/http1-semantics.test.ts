/**
 * HTTP/1.1 semantics a client relies on: 404/405 with Allow, HEAD, Date and
 * Content-Length, Connection: close in both directions, Expect:
 * 100-continue, keep-alive reuse, pipelining, and what a failing handler
 * produces (500, no stack unless `debug`, `onError` called).
 */
import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Request, type Server } from '../ts/index.js'
import { listen, rawRequest, statuses } from './helpers/index.js'

/** Splits raw HTTP/1.1 output into heads (lower-cased header map) and the bytes after each head. */
function parseHead(raw: string): { status: number; headers: Record<string, string>; rest: string } {
  const end = raw.indexOf('\r\n\r\n')
  const lines = raw.slice(0, end).split('\r\n')
  const status = Number((lines[0] ?? '').split(' ')[1])
  const headers: Record<string, string> = {}
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':')
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
  }
  return { status, headers, rest: raw.slice(end + 4) }
}

/** GET with node:http through `agent`; resolves with status, body and the local port used. */
function agentGet(
  port: number,
  path: string,
  agent: http.Agent,
): Promise<{ status: number; body: string; localPort: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, localPort: req.socket?.localPort ?? -1, headers: res.headers }),
      )
    })
    req.on('error', reject)
  })
}

describe('native answers: 404, 405, HEAD, Date, Content-Length', () => {
  let server: Server
  beforeAll(async () => {
    const app = new App()
    app.get('/page', () => Response.text('twelve bytes'))
    app.post('/page', () => Response.text('posted'))
    app.put('/only-put', () => Response.text('put'))
    app.head('/own-head', () => new Response(null, { headers: { 'x-own': 'yes', 'content-length': '99' } }))
    app.get('/empty', () => new Response(null, { status: 204 }))
    server = await listen(app)
  })
  afterAll(() => server.close())

  it('404 for an unknown path, with a body and Content-Length', async () => {
    const r = await fetch(`${server.url}/missing`)
    expect(r.status).toBe(404)
    const body = await r.text()
    expect(body.length).toBeGreaterThan(0)
    expect(r.headers.get('content-length')).toBe(String(Buffer.byteLength(body)))
  })

  it('405 with Allow listing the methods of the path (HEAD where GET is)', async () => {
    const r = await fetch(`${server.url}/page`, { method: 'DELETE' })
    expect(r.status).toBe(405)
    const allow = (r.headers.get('allow') ?? '').split(',').map((s) => s.trim()).sort()
    expect(allow).toEqual(['GET', 'HEAD', 'POST'])
    const p = await fetch(`${server.url}/only-put`)
    expect(p.status).toBe(405)
    expect(p.headers.get('allow')).toBe('PUT')
  })

  it('HEAD on a GET route: same headers, Content-Length of the GET body, no body bytes', async () => {
    const { text, closed } = await rawRequest(
      server.port,
      'HEAD /page HTTP/1.1\r\nHost: x\r\n\r\nGET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    )
    expect(closed).toBe(true)
    expect(statuses(text)).toEqual([200, 200])
    const head = parseHead(text)
    expect(head.headers['content-length']).toBe('12')
    expect(head.headers['content-type']).toBe('text/plain; charset=utf-8')
    // The next bytes after the HEAD response's head are the GET's status line.
    expect(head.rest.startsWith('HTTP/1.1 200')).toBe(true)
    expect(parseHead(head.rest).rest).toBe('twelve bytes')
  })

  it('an explicit HEAD route wins over the GET fallback', async () => {
    const r = await fetch(`${server.url}/own-head`, { method: 'HEAD' })
    expect(r.status).toBe(200)
    expect(r.headers.get('x-own')).toBe('yes')
    expect(await r.text()).toBe('')
  })

  it('every response carries a valid Date header', async () => {
    for (const p of ['/page', '/missing']) {
      const r = await fetch(`${server.url}${p}`)
      const d = r.headers.get('date')
      expect(d).toMatch(/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/)
      expect(Math.abs(Date.parse(d as string) - Date.now())).toBeLessThan(5000)
      await r.arrayBuffer()
    }
  })

  it('204 has neither body nor Content-Length', async () => {
    const { text } = await rawRequest(server.port, 'GET /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    const h = parseHead(text)
    expect(h.status).toBe(204)
    expect(h.headers['content-length']).toBeUndefined()
    expect(h.rest).toBe('')
  })
})

describe('405 reached through middleware', () => {
  let server: Server
  const seen: string[] = []
  beforeAll(async () => {
    const app = new App()
    // Reads the headers both ways before the route lookup: the walks pass the
    // record's Allow list and must leave it intact for the 405 answer.
    app.use((req, next) => {
      seen.push(`${req._header('x-probe')}|${req.headers.get('x-probe')}`)
      return next(req)
    })
    app.get('/mw', () => Response.text('get'))
    app.delete('/mw', () => Response.text('deleted'))
    server = await listen(app)
  })
  afterAll(() => server.close())

  it('answers 405 with the methods of the path after the headers were walked', async () => {
    const r = await fetch(`${server.url}/mw`, { method: 'PATCH', headers: { 'x-probe': 'p1' } })
    expect(r.status).toBe(405)
    const allow = (r.headers.get('allow') ?? '').split(',').map((s) => s.trim()).sort()
    expect(allow).toEqual(['DELETE', 'GET', 'HEAD'])
    expect(seen).toContain('p1|p1')
  })
})

describe('connection handling', () => {
  let server: Server
  beforeAll(async () => {
    const app = new App()
    app.get('/ok', () => Response.text('ok'))
    app.get('/bye', () => new Response('bye', { headers: { connection: 'close' } }))
    app.get('/slow/{ms}', async (req) => {
      await new Promise((r) => setTimeout(r, Number(req.pathParams.ms)))
      return Response.text(`slept ${req.pathParams.ms}`)
    })
    app.post('/len', (req) => Response.text(String(req.body.length)))
    server = await listen(app, { maxBodySize: 1000 })
  })
  afterAll(() => server.close())

  it('keep-alive: one connection serves many requests', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      const ports = new Set<number>()
      for (let i = 0; i < 10; i++) {
        const r = await agentGet(server.port, '/ok', agent)
        expect(r.status).toBe(200)
        expect(r.body).toBe('ok')
        ports.add(r.localPort)
      }
      expect(ports.size).toBe(1)
    } finally {
      agent.destroy()
    }
  })

  it('client Connection: close is honoured: the server answers, says close, and closes', async () => {
    const { text, closed } = await rawRequest(
      server.port,
      'GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    )
    expect(closed).toBe(true)
    expect(statuses(text)).toEqual([200])
    expect(parseHead(text).headers.connection).toBe('close')
  })

  it('issue-2-pipelined-after-close: the close response is delivered, the request after it is not answered', async () => {
    const { text, closed } = await rawRequest(
      server.port,
      'GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n',
    )
    expect(closed).toBe(true)
    expect(statuses(text)).toEqual([200])
  })

  it('issue-2-handler-close-pipelined: a handler setting Connection: close delivers its response, then closes', async () => {
    const { text, closed } = await rawRequest(
      server.port,
      'GET /bye HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n',
    )
    expect(closed).toBe(true)
    expect(statuses(text)).toEqual([200])
    const h = parseHead(text)
    expect(h.headers.connection).toBe('close')
    expect(h.rest).toBe('bye')
  })

  it('HTTP/1.0 without keep-alive is closed after one response', async () => {
    const { text, closed } = await rawRequest(server.port, 'GET /ok HTTP/1.0\r\n\r\n')
    expect(closed).toBe(true)
    expect(text).toMatch(/^HTTP\/1\.[01] 200/)
    expect(parseHead(text).rest).toBe('ok')
  })

  it('pipelined requests are answered in order, even when the first is the slowest', async () => {
    const reqs =
      'GET /slow/150 HTTP/1.1\r\nHost: x\r\n\r\n' +
      'GET /slow/1 HTTP/1.1\r\nHost: x\r\n\r\n' +
      'GET /ok HTTP/1.1\r\nHost: x\r\n\r\n' +
      'GET /slow/50 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
    const { text, closed } = await rawRequest(server.port, reqs, 5000)
    expect(closed).toBe(true)
    expect(statuses(text)).toEqual([200, 200, 200, 200])
    const bodies = [...text.matchAll(/\r\n\r\n(slept \d+|ok)/g)].map((m) => m[1])
    expect(bodies).toEqual(['slept 150', 'slept 1', 'ok', 'slept 50'])
  })

  it('issue-2-half-close: a client that shuts down its write side still gets every response', async () => {
    for (const n of [1, 5]) {
      const sock = net.connect(server.port, '127.0.0.1')
      await new Promise((r) => sock.once('connect', r))
      let got = ''
      sock.on('data', (c: Buffer) => (got += c.toString('latin1')))
      const done = new Promise((r) => sock.once('close', r))
      // end(): send the requests, then FIN, as `printf … | nc` does.
      sock.end('GET /slow/30 HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(n))
      await done
      expect(statuses(got)).toEqual(Array(n).fill(200))
      expect(got.split('slept 30').length - 1).toBe(n)
    }
  })

  it('Expect: 100-continue gets 100 before the body is sent, then the answer', async () => {
    const sock = net.connect(server.port, '127.0.0.1')
    try {
      await new Promise((r) => sock.once('connect', r))
      let got = ''
      sock.on('data', (c: Buffer) => (got += c.toString('latin1')))
      sock.write('POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n')
      const deadline = Date.now() + 3000
      while (!got.includes('\r\n\r\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
      expect(got).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n$/)
      sock.write('hello')
      while (!got.includes('\r\n\r\n5') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
      expect(statuses(got)).toEqual([100, 200])
      expect(got.endsWith('\r\n\r\n5')).toBe(true)
    } finally {
      sock.destroy()
    }
  })

  it('Expect: 100-continue with an oversize Content-Length: 413 at once, no 100', async () => {
    const { text, closed } = await rawRequest(
      server.port,
      'POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n',
    )
    expect(closed).toBe(true)
    expect(statuses(text)).toEqual([413])
  })

  it('node:http with Expect: 100-continue works end to end', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: server.port,
          method: 'POST',
          path: '/len',
          agent: false,
          headers: { expect: '100-continue', 'content-length': '3' },
        },
        (res) => {
          let b = ''
          res.on('data', (c: Buffer) => (b += c))
          res.on('end', () => resolve(b))
        },
      )
      req.on('continue', () => req.end('abc'))
      req.on('error', reject)
    })
    expect(body).toBe('3')
  })
})

describe('handler failures → 500', () => {
  const errors: Array<{ err: unknown; path: string | undefined }> = []
  let server: Server
  let debugServer: Server

  const build = () => {
    const app = new App()
    app.get('/throws', () => {
      throw new Error('secret-detail-throw')
    })
    app.get('/rejects', async () => {
      await new Promise((r) => setTimeout(r, 5))
      throw new Error('secret-detail-reject')
    })
    app.get('/not-a-response', (() => ({ status: 200, body: 'nope' })) as unknown as () => Response)
    app.get('/undefined', (() => undefined) as unknown as () => Response)
    app.get('/bad-header', () => {
      const r = Response.text('x')
      // Bypasses Headers validation the way a careless middleware might.
      ;(r as { headers: unknown }).headers = { toWire: () => 'bad name\nv' }
      return r
    })
    app.get('/ok', () => Response.text('still fine'))
    return app
  }

  beforeAll(async () => {
    server = await listen(build(), {
      onError: (err: unknown, req: Request | undefined) => errors.push({ err, path: req?.path }),
    })
    debugServer = await listen(build(), { debug: true, onError: () => {} })
  })
  afterAll(async () => {
    await server.close()
    await debugServer.close()
  })

  // What onError receives for each: the handler's own error, or the one naming what was wrong.
  const reported: Record<string, RegExp> = {
    '/throws': /^secret-detail-throw$/,
    '/rejects': /^secret-detail-reject$/,
    '/not-a-response': /Response/,
    '/undefined': /Response/,
    '/bad-header': /header/i,
  }
  for (const path of Object.keys(reported)) {
    it(`${path}: 500 without details, onError called, server keeps serving`, async () => {
      errors.length = 0
      const r = await fetch(`${server.url}${path}`)
      expect(r.status).toBe(500)
      const body = await r.text()
      expect(body).toBe('Internal Server Error')
      expect(body).not.toMatch(/secret-detail|at .*\.ts/)
      expect(errors.length).toBe(1)
      expect(errors[0]?.path).toBe(path)
      expect(errors[0]?.err).toBeInstanceOf(Error)
      expect((errors[0]?.err as Error).message).toMatch(reported[path] as RegExp)
      const ok = await fetch(`${server.url}/ok`)
      expect(await ok.text()).toBe('still fine')
    })
  }

  it('with debug: true the 500 body carries the message and stack', async () => {
    const r = await fetch(`${debugServer.url}/throws`)
    expect(r.status).toBe(500)
    const body = await r.text()
    expect(body).toContain('secret-detail-throw')
    expect(body).toMatch(/\n\s+at /)
  })

  it('an onError that throws does not take the server down', async () => {
    const app = new App()
    app.get('/throws', () => {
      throw new Error('x')
    })
    const s = await listen(app, {
      onError: () => {
        throw new Error('onError failed')
      },
    })
    const origError = console.error
    console.error = () => {}
    try {
      expect((await fetch(`${s.url}/throws`)).status).toBe(500)
      expect((await fetch(`${s.url}/throws`)).status).toBe(500)
    } finally {
      console.error = origError
      await s.close()
    }
  })
})

describe('peer address in the request record', () => {
  it('IPv4 and IPv6 peers reach the handler as text, with their port', async () => {
    const app = () => {
      const a = new App()
      a.get('/who', (req) => Response.json({ ip: req.remoteAddress, port: req.remotePort }))
      return a
    }
    const v4 = await listen(app())
    const v6 = await listen(app(), { host: '::1' })
    try {
      const a = (await (await fetch(`http://127.0.0.1:${v4.port}/who`)).json()) as { ip: string; port: number }
      expect(a.ip).toBe('127.0.0.1')
      expect(a.port).toBeGreaterThan(0)
      const b = (await (await fetch(`http://[::1]:${v6.port}/who`)).json()) as { ip: string; port: number }
      expect(b.ip).toBe('::1')
      expect(b.port).toBeGreaterThan(0)
    } finally {
      await v4.close()
      await v6.close()
    }
  })
})
