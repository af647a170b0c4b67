/**
 * Type tests for the public API, checked by `tsc --noEmit` (npm run
 * typecheck): the shapes users write against must compile, misuse must not.
 * Nothing here runs; every `@ts-expect-error` fails the check if the line
 * it guards stops being an error.
 */
import { expectTypeOf } from 'vitest'
import {
  App,
  HttpyError,
  HttpyTypeError,
  Request,
  Response,
  Server,
  Supervisor,
  addMiddleware,
  cached,
  del,
  get,
  run,
  type Handler,
  type HttpyErrorCode,
  type Middleware,
  type ServerOptions,
} from 'httpy'

// Module-level registration mirrors the guide and returns the app for chaining.
expectTypeOf(get('/a', () => Response.text('a'))).toEqualTypeOf<App>()
expectTypeOf(del('/a', async () => Response.json({ ok: true }))).toEqualTypeOf<App>()
expectTypeOf(run({ port: 8080 })).toEqualTypeOf<Promise<Server>>()
// With workers, the calling (primary) process gets the supervisor instead.
expectTypeOf(run({ port: 8080, workers: 2 })).toEqualTypeOf<Promise<Server | Supervisor>>()

// Handlers receive a Request and may answer synchronously or not.
expectTypeOf<Handler>().parameters.toEqualTypeOf<[Request]>()
expectTypeOf<Handler>().returns.toEqualTypeOf<Response | Promise<Response>>()
// @ts-expect-error a handler must return a Response
get('/bad', () => 'text')

// Request fields the guide uses.
declare const req: Request
expectTypeOf(req.path).toEqualTypeOf<string>()
expectTypeOf(req.queryString).toEqualTypeOf<string>()
expectTypeOf(req.query).toEqualTypeOf<URLSearchParams>()
expectTypeOf(req.pathParams).toEqualTypeOf<Record<string, string>>()
expectTypeOf(req.body).toEqualTypeOf<Buffer>()
expectTypeOf(req.headers.get('x')).toEqualTypeOf<string | null>()
expectTypeOf(req.httpVersion).toExtend<string>()
// @ts-expect-error request fields are read-only
req.path = '/elsewhere'

// Response: mutable status/headers/body for middleware.
const res = Response.json({ a: 1 }, 201)
expectTypeOf(res.status).toEqualTypeOf<number>()
res.body = Buffer.from('x')
res.body = 'x'
res.headers.set('content-encoding', 'gzip')
expectTypeOf(new Response(Buffer.from('x'), { headers: { 'Content-Type': 'application/json' } })).toEqualTypeOf<Response>()
// @ts-expect-error a body is text or bytes, not an object
new Response({ a: 1 })

// Middleware composes like the guide's `async (request, handler)`.
const mw: Middleware = async (r, next) => {
  const out = await next(r)
  expectTypeOf(out).toEqualTypeOf<Response>()
  return out
}
addMiddleware(mw)

// cached() wraps a handler.
expectTypeOf(cached({ ttl: 300 })).toEqualTypeOf<(h: Handler) => Handler>()
// @ts-expect-error ttl is required
cached({})

// Options use the guide's names in camelCase, in seconds.
const opts: ServerOptions = {
  host: '127.0.0.1',
  port: 8080,
  readBufferSize: 65536,
  writeBufferSize: 65536,
  keepAlive: true,
  keepAliveTimeout: 120,
  requestTimeout: 30,
  maxKeepAliveRequests: 1000,
  maxConnections: 10000,
  onError: (err, r) => {
    expectTypeOf(err).toBeUnknown()
    expectTypeOf(r).toEqualTypeOf<Request | undefined>()
  },
}
void opts
// @ts-expect-error snake_case names are not options
const snake: ServerOptions = { keep_alive_timeout: 5 }
void snake

// Servers and apps.
declare const server: Server
expectTypeOf(server.port).toEqualTypeOf<number>()
expectTypeOf(server.close()).toEqualTypeOf<Promise<void>>()
expectTypeOf(server.closed).toEqualTypeOf<Promise<void>>()
expectTypeOf(new App().listen({ port: 0 })).toEqualTypeOf<Promise<Server>>()

// Errors carry stable codes.
expectTypeOf<HttpyError['code']>().toEqualTypeOf<HttpyErrorCode>()
expectTypeOf<HttpyTypeError>().toExtend<TypeError>()
expectTypeOf<'ERR_HTTPY_NO_BINARY'>().toExtend<HttpyErrorCode>()
