/**
 * The route cache never answers one client with a response made for another
 * that the app would have refused: the auth case of issue "Safe and honest
 * by default" in every order, over HTTP/1.1, HTTP/2 and HTTP/3. Requests
 * with credentials bypass the cache unless the route keys by them; the
 * app's middleware runs on every request unless the route opts out with
 * `skipMiddleware`; `Set-Cookie` answers are never stored; `Vary` is kept.
 */
import http from 'node:http'
import http2 from 'node:http2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, HTTP3_AVAILABLE, Response, cached, type Middleware, type Server } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import { h3 } from './helpers/h3.js'
import { requireTool } from './helpers/tools.js'
import { listen } from './helpers/index.js'

interface Res {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

function get(url: string, path: string, headers: Record<string, string> = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const r = http.request(`${url}${path}`, { headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    r.on('error', reject)
    r.end()
  })
}

function h2get(session: http2.ClientHttp2Session, path: string, headers: Record<string, string> = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':path': path, ...headers })
    let status = 0
    let hdrs: Record<string, string | string[] | undefined> = {}
    let body = ''
    s.setEncoding('utf8')
    s.on('response', (h) => {
      status = Number(h[':status'])
      hdrs = h as Record<string, string | string[] | undefined>
    })
    s.on('data', (c: string) => (body += c))
    s.on('end', () => resolve({ status, headers: hdrs, body }))
    s.on('error', reject)
    s.end()
  })
}

const TOKEN = 'Bearer secret'
const calls: Record<string, number> = {}
const count = (k: string): number => (calls[k] = (calls[k] ?? 0) + 1)

/** Answers 401 unless the request carries the right bearer token. */
const auth: Middleware = async (req, next) => {
  if (req.headers.get('authorization') !== TOKEN) return Response.json({ error: 'unauthorized' }, 401)
  return next(req)
}

function authApp(cache: Parameters<typeof cached>[0]): App {
  const app = new App()
  app.use(auth)
  app.get('/api/me', () => {
    count(JSON.stringify(cache))
    return Response.json({ secret: 'alice-data' })
  }, { cache })
  return app
}

/** The sequence of the issue, run through any client: every order of no token, right token, wrong token. */
async function authSequence(send: (headers: Record<string, string>) => Promise<Res>): Promise<void> {
  const steps: Array<[Record<string, string>, number]> = [
    [{}, 401],
    [{ authorization: TOKEN }, 200],
    [{}, 401],
    [{ authorization: 'Bearer wrong' }, 401],
    [{ authorization: TOKEN }, 200],
    [{ authorization: 'Bearer wrong' }, 401],
    [{}, 401],
  ]
  for (const [headers, status] of steps) {
    const r = await send(headers)
    expect({ headers, status: r.status }).toEqual({ headers, status })
    if (status === 401) expect(r.body).not.toContain('alice-data')
    else expect(JSON.parse(r.body)).toEqual({ secret: 'alice-data' })
  }
}

describe('cached route behind an auth middleware (HTTP/1.1)', () => {
  const servers: Server[] = []
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()))
  })

  for (const cache of [
    { ttl: 300 },
    { ttl: 300, key: ['Authorization'] },
    { ttl: 300, skipMiddleware: true },
    { ttl: 300, key: ['authorization'], skipMiddleware: false },
  ]) {
    it(`never serves the secret without the token: ${JSON.stringify(cache)}`, async () => {
      const server = await listen(authApp(cache))
      servers.push(server)
      await authSequence((h) => get(server.url, '/api/me', h))
    })
  }

  it('with key: authorization, the right token is served from the cache after the first answer', async () => {
    const cache = { ttl: 300, key: ['authorization'], skipMiddleware: true }
    const server = await listen(authApp(cache))
    servers.push(server)
    const before = server.stats().nativeResponses
    for (let i = 0; i < 5; i++) expect((await get(server.url, '/api/me', { authorization: TOKEN })).status).toBe(200)
    expect(calls[JSON.stringify(cache)]).toBe(1)
    expect(server.stats().nativeResponses - before).toBe(4)
    // A wrong token has its own key: not a hit, the middleware refuses it.
    expect((await get(server.url, '/api/me', { authorization: 'Bearer wrong' })).status).toBe(401)
  })
})

describe('credentials and the cache key', () => {
  let server: Server
  let url: string
  beforeAll(async () => {
    const app = new App()
    const profile = (name: string) => (req: { headers: { get(n: string): string | null } }) => {
      count(name)
      return Response.text(`user=${req.headers.get('cookie') ?? 'anonymous'}`)
    }
    app.get('/profile', profile('profile'), { cache: { ttl: 60 } })
    app.get('/profile-keyed', profile('keyed'), { cache: { ttl: 60, key: ['cookie'] } })
    app.get('/login', () => {
      count('login')
      return new Response('welcome', { headers: { 'set-cookie': `s=${calls.login}` } })
    }, { cache: { ttl: 60 } })
    server = await listen(app)
    url = server.url
  })
  afterAll(async () => {
    await server?.close()
  })

  it('two users with different cookies each get their own answer (no key: the cache is bypassed)', async () => {
    for (let i = 0; i < 2; i++) {
      expect((await get(url, '/profile', { cookie: 's=alice' })).body).toBe('user=s=alice')
      expect((await get(url, '/profile', { cookie: 's=bob' })).body).toBe('user=s=bob')
      expect((await get(url, '/profile')).body).toBe('user=anonymous')
    }
    // Cookie requests ran the handler each time; the anonymous one was cached.
    expect(calls.profile).toBe(5)
  })

  it('key: cookie keeps one entry per cookie, answered natively', async () => {
    const before = server.stats().nativeResponses
    for (let i = 0; i < 3; i++) {
      expect((await get(url, '/profile-keyed', { cookie: 's=alice' })).body).toBe('user=s=alice')
      expect((await get(url, '/profile-keyed', { cookie: 's=bob' })).body).toBe('user=s=bob')
    }
    expect(calls.keyed).toBe(2)
    expect(server.stats().nativeResponses - before).toBe(4)
  })

  it('never stores a response that sets a cookie', async () => {
    const a = await get(url, '/login')
    const b = await get(url, '/login')
    expect(a.headers['set-cookie']).toEqual(['s=1'])
    expect(b.headers['set-cookie']).toEqual(['s=2'])
    expect(calls.login).toBe(2)
  })
})

describe('cached route in an app with middleware (the JS-side cache)', () => {
  let server: Server
  let url: string
  let seen = 0
  beforeAll(async () => {
    const app = new App()
    app.use(async (req, next) => {
      const res = await next(req)
      res.headers.set('x-seen', String(++seen))
      return res
    })
    app.get('/lang', (req) => {
      count('js-lang')
      return new Response(`lang=${req.headers.get('accept-language')}`, { headers: { vary: 'Accept-Language' } })
    }, { cache: { ttl: 60 } })
    app.get('/short', () => Response.text(String(count('js-short'))), { cache: { ttl: 0.2 } })
    app.get('/setcookie', () => new Response(String(count('js-setcookie')), { headers: { 'set-cookie': 'a=1' } }), { cache: { ttl: 60 } })
    app.get('/private', () => new Response(String(count('js-private')), { headers: { 'cache-control': 'private' } }), { cache: { ttl: 60 } })
    app.get('/nocache', () => new Response(String(count('js-nocache')), { headers: { 'cache-control': 'no-cache' } }), { cache: { ttl: 60 } })
    app.get('/varystar', () => new Response(String(count('js-varystar')), { headers: { vary: '*' } }), { cache: { ttl: 60 } })
    server = await listen(app)
    url = server.url
  })
  afterAll(async () => {
    await server?.close()
  })

  it('runs the middleware on every hit; the handler once per Vary value', async () => {
    const before = server.stats().nativeResponses
    const marks: string[] = []
    for (let i = 0; i < 3; i++) {
      for (const lang of ['en', 'fr']) {
        const r = await get(url, '/lang', { 'accept-language': lang })
        expect(r.body).toBe(`lang=${lang}`)
        marks.push(String(r.headers['x-seen']))
      }
    }
    expect(new Set(marks).size).toBe(6)
    expect(calls['js-lang']).toBe(2)
    expect(server.stats().nativeResponses - before).toBe(0)
  })

  it('expires after ttl, never stores Set-Cookie, private, no-cache or Vary: * answers', async () => {
    const a = await get(url, '/short')
    expect((await get(url, '/short')).body).toBe(a.body)
    await new Promise((r) => setTimeout(r, 300))
    expect((await get(url, '/short')).body).not.toBe(a.body)
    for (const p of ['/setcookie', '/private', '/nocache', '/varystar']) {
      const x = await get(url, p)
      const y = await get(url, p)
      expect(Number(y.body)).toBe(Number(x.body) + 1)
    }
  })

  it('middleware added after listen stops the core from answering hits of that route', async () => {
    const app = new App()
    app.get('/c', () => Response.text(String(count('late'))), { cache: { ttl: 60 } })
    const s = await listen(app)
    try {
      expect((await get(s.url, '/c')).status).toBe(200)
      expect((await get(s.url, '/c')).status).toBe(200)
      expect(calls.late).toBe(1)
      app.use(auth)
      expect((await get(s.url, '/c')).status).toBe(401)
      expect((await get(s.url, '/c', { authorization: TOKEN })).status).toBe(200)
    } finally {
      await s.close()
    }
  })

  it('rejects bad cache options with ERR_HTTPY_INVALID_OPTION', () => {
    const app = new App()
    expect(() => app.get('/x', () => Response.text('x'), { cache: { ttl: 1, key: ['bad header'] } })).toThrow(/"key" must be an array of header names/)
    expect(() => app.get('/x', () => Response.text('x'), { cache: { ttl: 1, skipMiddleware: 'yes' as unknown as boolean } })).toThrow(/"skipMiddleware" must be a boolean/)
  })
})

describe.skipIf(!requireTool('openssl'))('the auth sequence over HTTP/2 and HTTP/3', () => {
  let certs: TestCerts
  let server: Server
  beforeAll(async () => {
    certs = makeCerts()
    server = await listen(authApp({ ttl: 300, skipMiddleware: true }), {
      tls: { cert: certs.certFile, key: certs.keyFile },
      ...(HTTP3_AVAILABLE ? { http3Port: 0 } : {}),
    })
  })
  afterAll(async () => {
    await server?.close()
    certs?.cleanup()
  })

  it('HTTP/2 (TLS, ALPN h2)', async () => {
    const session = http2.connect(server.url, { ca: certs.ca })
    try {
      await authSequence((h) => h2get(session, '/api/me', h))
    } finally {
      session.close()
    }
  })

  it.skipIf(!HTTP3_AVAILABLE || !requireTool('aioquic'))('HTTP/3 (aioquic client; skipped only in a build without HTTP/3)', async () => {
    const port = server.http3Port as number
    await authSequence((headers) => h3get(port, certs.ca, headers))
  })
})

/** One GET /api/me over HTTP/3 through the independent aioquic client. */
async function h3get(port: number, ca: string, headers: Record<string, string>): Promise<Res> {
  const r = (await h3(port, [{ path: '/api/me', headers }], { ca })).responses[0]
  if (!r) throw new Error('the HTTP/3 client gave no response')
  return { status: r.status, headers: r.headers, body: r.body }
}

describe('the JS-side cache keeps what was sent', () => {
  it('a handler that changes its buffer after returning it does not change the cached answer', async () => {
    const shared = Buffer.from('first')
    const app = new App()
    app.use((req, next) => next(req))
    app.get('/buf', () => {
      const res = new Response(shared)
      // The handler's buffer changes after the answer was made.
      setImmediate(() => shared.write('xxxxx'))
      return res
    }, { cache: { ttl: 60 } })
    const s = await listen(app)
    try {
      expect((await get(s.url, '/buf')).body).toBe('first')
      await new Promise((r) => setTimeout(r, 20))
      expect((await get(s.url, '/buf')).body).toBe('first')
    } finally {
      await s.close()
    }
  })
})
