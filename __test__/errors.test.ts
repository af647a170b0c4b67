/**
 * Errors a user can see and shape: the default log of a failing handler,
 * `app.onError`, `HttpError`, error responses passing back through the
 * middleware, 400 for invalid JSON, 415 for a content type a route does not
 * accept, and mistakes named at registration (`:id` routes, a handler that
 * returns no Response behind middleware).
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { App, HttpError, HttpyTypeError, Response, type Request, type Server, type ServerOptions } from '../ts/index.js'
import { listen } from './helpers/index.js'

const servers: Server[] = []
async function start(app: App, opts: ServerOptions = {}): Promise<Server> {
  const s = await listen(app, opts)
  servers.push(s)
  return s
}
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()))
})

/** What the server writes with console.error while a test runs. */
let logged: unknown[][] = []
const origError = console.error
beforeEach(() => {
  logged = []
  console.error = (...args: unknown[]) => void logged.push(args)
})
afterEach(() => {
  console.error = origError
})
const logText = () => logged.map((a) => a.map((x) => (x instanceof Error ? x.stack : String(x))).join(' ')).join('\n')

/** Adds a header after `await next()`, as CORS or security-header middleware does. */
const stamp = (name: string) => async (req: Request, next: (r: Request) => Promise<Response>) => {
  const res = await next(req)
  res.headers.set(name, 'yes')
  return res
}

describe('a handler that throws is logged by default', () => {
  it('logs method, path and stack to stderr; the 500 body has no details', async () => {
    const app = new App()
    app.get('/boom', () => {
      throw new Error('kaboom-detail')
    })
    const s = await start(app)
    const r = await fetch(`${s.url}/boom?x=1`)
    expect(r.status).toBe(500)
    expect(await r.text()).toBe('Internal Server Error')
    const text = logText()
    expect(text).toContain('GET /boom')
    expect(text).toContain('kaboom-detail')
    expect(text).toMatch(/\n\s+at /)
  })

  it('logs a rejected async handler too', async () => {
    const app = new App()
    app.post('/later', async () => {
      await new Promise((r) => setTimeout(r, 2))
      throw new Error('late-failure')
    })
    const s = await start(app)
    expect((await fetch(`${s.url}/later`, { method: 'POST' })).status).toBe(500)
    expect(logText()).toContain('POST /later')
    expect(logText()).toContain('late-failure')
  })

  it('the onError option replaces the default log', async () => {
    const app = new App()
    app.get('/boom', () => {
      throw new Error('reported')
    })
    const seen: unknown[] = []
    const s = await start(app, { onError: (e) => void seen.push(e) })
    expect((await fetch(`${s.url}/boom`)).status).toBe(500)
    expect(seen).toHaveLength(1)
    expect(logged).toHaveLength(0)
  })

  it('debug: true still puts the stack in the 500 body', async () => {
    const app = new App()
    app.get('/boom', () => {
      throw new Error('debug-detail')
    })
    const s = await start(app, { debug: true })
    const body = await (await fetch(`${s.url}/boom`)).text()
    expect(body).toContain('debug-detail')
    expect(body).toMatch(/\n\s+at /)
    expect(logText()).toContain('GET /boom')
  })
})

describe('HttpError', () => {
  it('gives its status, headers and message as a text body; 4xx are not logged', async () => {
    const app = new App()
    app.get('/users/{id}', (req) => {
      throw new HttpError(404, `no user ${req.pathParams.id}`, { headers: { 'x-reason': 'missing' } })
    })
    app.get('/async', async () => {
      await Promise.resolve()
      throw new HttpError(409, 'conflict here')
    })
    app.get('/default-message', () => {
      throw new HttpError(429)
    })
    const s = await start(app)
    const r = await fetch(`${s.url}/users/7`)
    expect(r.status).toBe(404)
    expect(r.headers.get('x-reason')).toBe('missing')
    expect(r.headers.get('content-type')).toBe('text/plain; charset=utf-8')
    expect(await r.text()).toBe('no user 7')
    const a = await fetch(`${s.url}/async`)
    expect([a.status, await a.text()]).toEqual([409, 'conflict here'])
    const d = await fetch(`${s.url}/default-message`)
    expect([d.status, await d.text()]).toEqual([429, 'Too Many Requests'])
    expect(logged).toHaveLength(0)
  })

  it('a 5xx HttpError is logged; cause and status are kept', async () => {
    const cause = new Error('db down')
    const e = new HttpError(503, 'try later', { cause, headers: { 'retry-after': '5' } })
    expect(e).toBeInstanceOf(Error)
    expect(e.status).toBe(503)
    expect(e.cause).toBe(cause)
    const app = new App()
    app.get('/down', () => {
      throw e
    })
    const s = await start(app)
    const r = await fetch(`${s.url}/down`)
    expect([r.status, r.headers.get('retry-after'), await r.text()]).toEqual([503, '5', 'try later'])
    expect(logText()).toContain('GET /down')
  })

  it('refuses a status outside 400-599', () => {
    expect(() => new HttpError(200)).toThrow(HttpyTypeError)
    expect(() => new HttpError(600)).toThrow(/400/)
  })
})

describe('error responses pass back through the middleware', () => {
  it('a thrown handler, an HttpError and onError responses carry the headers middleware adds', async () => {
    const app = new App()
    app.use(stamp('x-outer'))
    app.use(stamp('x-inner'))
    app.get('/throws', () => {
      throw new Error('x')
    })
    app.get('/rejects', async () => {
      throw new Error('x')
    })
    app.get('/http-error', () => {
      throw new HttpError(403, 'forbidden')
    })
    const s = await start(app, { onError: () => {} })
    for (const path of ['/throws', '/rejects']) {
      const r = await fetch(`${s.url}${path}`)
      expect([r.status, r.headers.get('x-outer'), r.headers.get('x-inner')]).toEqual([500, 'yes', 'yes'])
    }
    const h = await fetch(`${s.url}/http-error`)
    expect([h.status, h.headers.get('x-outer'), h.headers.get('x-inner'), await h.text()]).toEqual([403, 'yes', 'yes', 'forbidden'])
  })

  it('an error thrown by a middleware is answered directly, with its status and headers', async () => {
    const app = new App()
    app.use(stamp('x-outer'))
    app.use(async (req, next) => {
      if (req.headers.get('authorization') !== 'Bearer ok') throw new HttpError(401, 'no token', { headers: { 'www-authenticate': 'Bearer' } })
      return next(req)
    })
    app.get('/me', () => Response.text('me'))
    const s = await start(app)
    const r = await fetch(`${s.url}/me`)
    expect([r.status, r.headers.get('www-authenticate'), await r.text()]).toEqual([401, 'Bearer', 'no token'])
    const ok = await fetch(`${s.url}/me`, { headers: { authorization: 'Bearer ok' } })
    expect([ok.status, ok.headers.get('x-outer')]).toEqual([200, 'yes'])
  })
})

describe('app.onError', () => {
  const build = () => {
    const app = new App()
    app.get('/throws', () => {
      throw new Error('plain failure')
    })
    app.get('/http-error', () => {
      throw new HttpError(404, 'nope')
    })
    app.get('/ok', () => Response.text('ok'))
    return app
  }

  it('makes the response for any error, HttpError included, and replaces the default log', async () => {
    const app = build()
    const seen: Array<{ err: unknown; path: string }> = []
    app.onError((err, req) => {
      seen.push({ err, path: req.path })
      const status = err instanceof HttpError ? err.status : 500
      return Response.json({ error: err instanceof Error ? err.message : String(err) }, status)
    })
    app.use(stamp('x-mw'))
    const s = await start(app)
    const r = await fetch(`${s.url}/throws`)
    expect([r.status, r.headers.get('x-mw')]).toEqual([500, 'yes'])
    expect(await r.json()).toEqual({ error: 'plain failure' })
    const h = await fetch(`${s.url}/http-error`)
    expect(h.status).toBe(404)
    expect(await h.json()).toEqual({ error: 'nope' })
    expect(seen.map((x) => x.path)).toEqual(['/throws', '/http-error'])
    expect(seen[1]?.err).toBeInstanceOf(HttpError)
    expect(logged).toHaveLength(0)
  })

  it('may be async, and works without middleware', async () => {
    const app = build()
    app.onError(async (err) => {
      await new Promise((r) => setTimeout(r, 2))
      return Response.text(`handled: ${(err as Error).message}`, { status: 502 })
    })
    const s = await start(app)
    const r = await fetch(`${s.url}/throws`)
    expect([r.status, await r.text()]).toEqual([502, 'handled: plain failure'])
  })

  it('an onError that throws, rejects or returns no Response gives a plain 500, logged', async () => {
    const cases: Array<(err: unknown) => Response | Promise<Response>> = [
      () => {
        throw new Error('handler-of-errors broke')
      },
      async () => {
        throw new Error('handler-of-errors broke')
      },
      () => 'oops' as unknown as Response,
    ]
    for (const onError of cases) {
      logged = []
      const app = build()
      app.onError(onError)
      const s = await start(app)
      const r = await fetch(`${s.url}/throws`)
      expect([r.status, await r.text()]).toEqual([500, 'Internal Server Error'])
      expect(logText()).toMatch(/onError/)
      expect((await fetch(`${s.url}/ok`)).status).toBe(200)
    }
  })

  it('is refused when not a function', () => {
    expect(() => new App().onError('x' as unknown as () => Response)).toThrow(HttpyTypeError)
  })
})

describe('bad client input is a 4xx', () => {
  it('req.json() on invalid JSON rejects with HttpError 400 and a short reason', async () => {
    const app = new App()
    app.post('/echo', async (req) => Response.json(await req.json()))
    const s = await start(app)
    const r = await fetch(`${s.url}/echo`, { method: 'POST', body: '{"a": ', headers: { 'content-type': 'application/json' } })
    expect(r.status).toBe(400)
    const text = await r.text()
    expect(text).toMatch(/^invalid JSON body/)
    expect(text.length).toBeLessThan(200)
    const ok = await fetch(`${s.url}/echo`, { method: 'POST', body: '{"a":1}' })
    expect(await ok.json()).toEqual({ a: 1 })
    expect(logged).toHaveLength(0)
  })

  it('a route with accepts answers 415 to another content type, through the middleware', async () => {
    const app = new App()
    app.use(stamp('x-mw'))
    app.post('/json', async (req) => Response.json(await req.json()), { accepts: 'application/json' })
    app.put('/any-text', async (req) => Response.text(await req.text()), { accepts: ['text/*', 'application/xml'] })
    const s = await start(app)
    const bad = await fetch(`${s.url}/json`, { method: 'POST', body: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
    expect([bad.status, bad.headers.get('x-mw'), bad.headers.get('accept-post')]).toEqual([415, 'yes', 'application/json'])
    const none = await fetch(`${s.url}/json`, { method: 'POST', body: Buffer.from('{}') })
    expect(none.status).toBe(415)
    const good = await fetch(`${s.url}/json`, { method: 'POST', body: '{"k":2}', headers: { 'content-type': 'Application/JSON; charset=utf-8' } })
    expect([good.status, await good.text()]).toEqual([200, '{"k":2}'])
    const text = await fetch(`${s.url}/any-text`, { method: 'PUT', body: 'hi', headers: { 'content-type': 'text/csv' } })
    expect([text.status, await text.text()]).toEqual([200, 'hi'])
    const xml = await fetch(`${s.url}/any-text`, { method: 'PUT', body: '<a/>', headers: { 'content-type': 'application/xml' } })
    expect(xml.status).toBe(200)
    const img = await fetch(`${s.url}/any-text`, { method: 'PUT', body: 'x', headers: { 'content-type': 'image/png' } })
    expect(img.status).toBe(415)
    expect(logged).toHaveLength(0)
  })

  it('a request without a body passes a route with accepts', async () => {
    const app = new App()
    app.get('/q', () => Response.text('no body needed'), { accepts: 'application/json' })
    const s = await start(app)
    expect((await fetch(`${s.url}/q`)).status).toBe(200)
  })

  it('an invalid accepts option is refused at registration', () => {
    for (const accepts of ['json', '', ['application/json', 3], 'a/b/c']) {
      expect(() => new App().post('/x', () => Response.text(''), { accepts: accepts as string })).toThrow(
        expect.objectContaining({ code: 'ERR_HTTPY_INVALID_OPTION' }),
      )
    }
  })
})

describe('mistakes named at registration', () => {
  it('rejects Express-style :params with a hint to write {name}', () => {
    const app = new App()
    expect(() => app.get('/users/:id', () => Response.text(''))).toThrow(
      expect.objectContaining({ code: 'ERR_HTTPY_INVALID_ROUTE', message: expect.stringContaining('/users/{id}') }),
    )
    expect(() => app.get('/a/:x/b/:y', () => Response.text(''))).toThrow(/\/a\/\{x\}\/b\/\{y\}/)
    expect(() => app.websocket('/rooms/:room', () => {})).toThrow(/\{room\}/)
    expect(() => app.get('/files/*', () => Response.text(''))).toThrow(/\{rest:path\}/)
    // A colon inside a segment is a literal, as before.
    expect(() => app.get('/v1/items:batchGet', () => Response.text(''))).not.toThrow()
  })

  it('a handler returning no Response behind a middleware is named before the middleware sees it', async () => {
    const app = new App()
    app.use(stamp('x-mw'))
    app.get('/bad', (() => ({ status: 200 })) as unknown as () => Response)
    app.get('/bad-async', (async () => undefined) as unknown as () => Promise<Response>)
    const seen: unknown[] = []
    const s = await start(app, { onError: (e) => void seen.push(e) })
    for (const path of ['/bad', '/bad-async']) {
      const r = await fetch(`${s.url}${path}`)
      expect([r.status, r.headers.get('x-mw')]).toEqual([500, 'yes'])
    }
    expect(seen).toHaveLength(2)
    for (const e of seen) {
      expect(e).toMatchObject({ code: 'ERR_HTTPY_INVALID_RESPONSE' })
      expect((e as Error).message).toMatch(/handler for GET \/bad/)
    }
  })
})
