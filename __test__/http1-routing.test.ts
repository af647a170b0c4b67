/**
 * Routing over real HTTP/1.1: path parameters (including catch-alls),
 * precedence that does not depend on registration order, query strings,
 * request bodies echoed intact, and middleware order / response rewriting.
 */
import { gunzipSync, gzipSync } from 'node:zlib'
import http from 'node:http'
import { randomBytes, createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Handler, type Middleware, type Server } from '../ts/index.js'
import { listen } from './helpers/index.js'

describe('path parameters', () => {
  let server: Server
  beforeAll(async () => {
    const app = new App()
    app.get('/users/{id}', (req) => Response.json({ route: 'user', params: req.pathParams }))
    app.get('/users/{id}/posts/{postId}', (req) => Response.json({ route: 'post', params: req.pathParams }))
    app.get('/static/{path:path}', (req) => Response.json({ route: 'static', params: req.pathParams }))
    app.get('/files/{name}/raw', (req) => Response.json({ route: 'raw', params: req.pathParams }))
    server = await listen(app)
  })
  afterAll(() => server.close())

  const get = async (path: string) => {
    const r = await fetch(`${server.url}${path}`)
    return { status: r.status, body: r.status === 200 ? await r.json() : await r.text() }
  }

  it('binds single and multiple parameters', async () => {
    expect(await get('/users/42')).toEqual({ status: 200, body: { route: 'user', params: { id: '42' } } })
    expect(await get('/users/abc/posts/7')).toEqual({
      status: 200,
      body: { route: 'post', params: { id: 'abc', postId: '7' } },
    })
  })

  it('a {name:path} parameter takes the rest of the path, slashes included', async () => {
    expect(await get('/static/css/site/main.css')).toEqual({
      status: 200,
      body: { route: 'static', params: { path: 'css/site/main.css' } },
    })
    expect(await get('/static/a')).toEqual({ status: 200, body: { route: 'static', params: { path: 'a' } } })
  })

  it('percent-decodes parameter values', async () => {
    const r = await get('/users/J%C3%BCrgen%20K')
    expect(r).toEqual({ status: 200, body: { route: 'user', params: { id: 'Jürgen K' } } })
  })

  it('parameter values of every length decode alike (short ASCII ones are built in JS)', async () => {
    // 12 bytes and less: built a character at a time; 13 and more, or any
    // byte past ASCII: the UTF-8 decode. Both sides of each edge.
    for (const id of ['7', 'abcdefghijk', 'abcdefghijkl', 'abcdefghijklm', 'a'.repeat(40), 'é', 'ab€', 'abcdefghijk€']) {
      expect(await get(`/users/${encodeURIComponent(id)}`)).toEqual({ status: 200, body: { route: 'user', params: { id } } })
    }
    // A value that is all ASCII bytes but percent-decodes to a multi-byte
    // sequence is UTF-8, not Latin-1.
    expect((await get('/users/%C3%A9t%C3%A9')).body).toEqual({ route: 'user', params: { id: 'été' } })
  })

  it('a single-segment parameter does not swallow slashes', async () => {
    expect((await get('/users/1/2')).status).toBe(404)
    expect((await get('/files/a/b/raw')).status).toBe(404)
    expect(await get('/files/a/raw')).toEqual({ status: 200, body: { route: 'raw', params: { name: 'a' } } })
  })

  it('an empty segment does not match a parameter', async () => {
    expect((await get('/users/')).status).toBe(404)
  })
})

describe('precedence does not depend on registration order', () => {
  const routes: Array<[string, Handler]> = [
    ['/api/users', () => Response.json({ route: 'list' })],
    ['/api/users/{id}', (req) => Response.json({ route: 'one', id: req.pathParams.id })],
    ['/api/users/{id}/profile', (req) => Response.json({ route: 'profile', id: req.pathParams.id })],
  ]
  const orders = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
  ]
  for (const order of orders) {
    it(`order ${order.join(',')}`, async () => {
      const app = new App()
      for (const i of order) {
        const [path, h] = routes[i] as [string, Handler]
        app.get(path, h)
      }
      // A literal route next to the parameter: it must win whatever the order.
      if (order[0] === 2) app.get('/api/users/me', () => Response.json({ route: 'me' }))
      const server = await listen(app)
      try {
        const j = async (p: string) => (await fetch(`${server.url}${p}`)).json()
        expect(await j('/api/users')).toEqual({ route: 'list' })
        expect(await j('/api/users/17')).toEqual({ route: 'one', id: '17' })
        expect(await j('/api/users/17/profile')).toEqual({ route: 'profile', id: '17' })
        if (order[0] === 2) expect(await j('/api/users/me')).toEqual({ route: 'me' })
        expect((await fetch(`${server.url}/api/users/17/other`)).status).toBe(404)
      } finally {
        await server.close()
      }
    })
  }

  it('literal beats parameter beats catch-all, with backtracking', async () => {
    const app = new App()
    app.get('/x/{p:path}', (req) => Response.text(`all:${req.pathParams.p}`))
    app.get('/x/{id}/edit', (req) => Response.text(`edit:${req.pathParams.id}`))
    app.get('/x/new', () => Response.text('new'))
    const server = await listen(app)
    try {
      const t = async (p: string) => (await fetch(`${server.url}${p}`)).text()
      expect(await t('/x/new')).toBe('new')
      expect(await t('/x/5/edit')).toBe('edit:5')
      // `/x/new/edit`: the literal `new` has no `edit` child, so matching
      // backtracks to the parameter.
      expect(await t('/x/new/edit')).toBe('edit:new')
      expect(await t('/x/5/view')).toBe('all:5/view')
    } finally {
      await server.close()
    }
  })
})

describe('query strings and bodies', () => {
  let server: Server
  beforeAll(async () => {
    const app = new App()
    app.get('/q', (req) =>
      Response.json({ qs: req.queryString, q: req.query.getAll('q'), n: req.query.get('n'), path: req.path }),
    )
    app.post('/echo', (req) =>
      new Response(req.body, { headers: { 'content-type': req.headers.get('content-type') ?? 'application/octet-stream' } }),
    )
    app.post('/json', async (req) => {
      const data = await req.json<{ items: unknown[] }>()
      return Response.json({ got: data, count: data.items.length })
    })
    app.put('/hash', (req) =>
      Response.json({ sha256: createHash('sha256').update(req.body).digest('hex'), length: req.body.length }),
    )
    server = await listen(app)
  })
  afterAll(() => server.close())

  it('parses query strings (repeated keys, encoding, empty)', async () => {
    const r = await (await fetch(`${server.url}/q?q=a&q=b%20c&n=%E2%9C%93&empty=`)).json()
    expect(r).toEqual({ qs: 'q=a&q=b%20c&n=%E2%9C%93&empty=', q: ['a', 'b c'], n: '✓', path: '/q' })
    const none = await (await fetch(`${server.url}/q`)).json()
    expect(none).toEqual({ qs: '', q: [], n: null, path: '/q' })
  })

  it('echoes a JSON body and parses it', async () => {
    const payload = { items: Array.from({ length: 500 }, (_, i) => ({ id: i, name: `Item ${i}`, tags: ['a', 'ü'] })) }
    const r = await fetch(`${server.url}/json`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload),
    })
    expect(r.status).toBe(200)
    expect(await r.json()).toEqual({ got: payload, count: 500 })
  })

  it('echoes a 5 MB binary body byte for byte', async () => {
    const data = randomBytes(5 * 1024 * 1024)
    const r = await fetch(`${server.url}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: data,
    })
    expect(r.status).toBe(200)
    expect(r.headers.get('content-length')).toBe(String(data.length))
    const back = Buffer.from(await r.arrayBuffer())
    expect(back.length).toBe(data.length)
    expect(back.equals(data)).toBe(true)
  })

  it('reassembles a chunked request body', async () => {
    const parts = Array.from({ length: 64 }, () => randomBytes(40_000))
    const whole = Buffer.concat(parts)
    const body = await new Promise<{ sha256: string; length: number }>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: server.port, method: 'PUT', path: '/hash', agent: false },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())))
        },
      )
      req.on('error', reject)
      // No content-length: node:http sends Transfer-Encoding: chunked.
      let i = 0
      const next = () => {
        if (i === parts.length) return req.end()
        req.write(parts[i++], () => setImmediate(next))
      }
      next()
    })
    expect(body).toEqual({ sha256: createHash('sha256').update(whole).digest('hex'), length: whole.length })
  })
})

describe('middleware', () => {
  it('runs in registration order around the handler, 404s included', async () => {
    const app = new App()
    const trace: string[] = []
    const tag =
      (name: string): Middleware =>
      async (req, next) => {
        trace.push(`${name}>`)
        const res = await next(req)
        trace.push(`<${name}`)
        res.headers.append('x-trace', name)
        return res
      }
    app.use(tag('a'))
    app.use(tag('b'))
    app.get('/h', () => {
      trace.push('handler')
      return Response.text('ok')
    })
    const server = await listen(app)
    try {
      const r = await fetch(`${server.url}/h`)
      expect(await r.text()).toBe('ok')
      expect(trace).toEqual(['a>', 'b>', 'handler', '<b', '<a'])
      expect(r.headers.get('x-trace')).toBe('b, a')
      trace.length = 0
      const miss = await fetch(`${server.url}/nope`)
      expect(miss.status).toBe(404)
      expect(trace).toEqual(['a>', 'b>', '<b', '<a'])
    } finally {
      await server.close()
    }
  })

  it('a middleware can answer without calling next', async () => {
    const app = new App()
    let handlerRan = false
    app.use((req, next) => (req.headers.get('authorization') ? next(req) : Response.json({ error: 'auth' }, 401)))
    app.get('/secret', () => {
      handlerRan = true
      return Response.text('s')
    })
    const server = await listen(app)
    try {
      const r = await fetch(`${server.url}/secret`)
      expect(r.status).toBe(401)
      expect(handlerRan).toBe(false)
      const ok = await fetch(`${server.url}/secret`, { headers: { authorization: 'x' } })
      expect(await ok.text()).toBe('s')
    } finally {
      await server.close()
    }
  })

  it("the guide's gzip compression middleware works as written", async () => {
    // The guide's compress_response / compression_middleware, in TypeScript.
    function compressResponse(response: Response, minSize = 1024): Response {
      if (response.headers.has('Content-Encoding')) return response
      const contentType = response.headers.get('Content-Type') ?? ''
      const compressible =
        contentType.startsWith('text/') ||
        contentType === 'application/json' ||
        contentType === 'application/xml' ||
        contentType === 'application/javascript'
      const body = response.body ?? ''
      // Files and streams are not bytes in hand: leave them to the native compression.
      if (typeof body !== 'string' && !(body instanceof Uint8Array)) return response
      const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length
      if (compressible && size >= minSize) {
        const compressedBody = gzipSync(body)
        response.headers.set('Content-Encoding', 'gzip')
        response.headers.set('Content-Length', String(compressedBody.length))
        response.body = compressedBody
      }
      return response
    }
    const compressionMiddleware: Middleware = async (request, handler) => {
      const response = await handler(request)
      return compressResponse(response)
    }

    const app = new App()
    app.addMiddleware(compressionMiddleware)
    const data = Array.from({ length: 2000 }, (_, i) => ({ id: i, name: `Item ${i}` }))
    app.get('/api/large-dataset', () => Response.json(data))
    app.get('/small', () => Response.json({ ok: true }))
    app.get('/bin', () => new Response(Buffer.alloc(4096, 7), { headers: { 'content-type': 'application/octet-stream' } }))
    const server = await listen(app)
    try {
      // A raw client so that nothing decompresses behind our back.
      const raw = await new Promise<{ headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: server.port, path: '/api/large-dataset', agent: false }, (res) => {
            const chunks: Buffer[] = []
            res.on('data', (c: Buffer) => chunks.push(c))
            res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }))
          })
          .on('error', reject)
      })
      expect(raw.headers['content-encoding']).toBe('gzip')
      expect(raw.headers['content-length']).toBe(String(raw.body.length))
      const plain = JSON.stringify(data)
      expect(raw.body.length).toBeLessThan(plain.length / 3)
      expect(gunzipSync(raw.body).toString()).toBe(plain)

      // fetch decompresses transparently, as a browser would.
      expect(await (await fetch(`${server.url}/api/large-dataset`)).json()).toEqual(data)

      const small = await fetch(`${server.url}/small`)
      expect(small.headers.get('content-encoding')).toBeNull()
      expect(await small.json()).toEqual({ ok: true })
      const bin = await fetch(`${server.url}/bin`)
      expect(bin.headers.get('content-encoding')).toBeNull()
      expect(Buffer.from(await bin.arrayBuffer()).equals(Buffer.alloc(4096, 7))).toBe(true)
    } finally {
      await server.close()
    }
  })
})
