/**
 * `App`: the route table and middleware of one server. Handlers are
 * registered here; matching happens natively, so the table is sent to the
 * core on `listen()` and again whenever it changes.
 */
import { refuseWorkersInListen } from './cluster.js'
import { HttpyTypeError, fromNative } from './errors.js'
import { native, type NativeRoute } from './native.js'
import { resolveOptions, type ServerOptions } from './options.js'
import type { Request } from './request.js'
import { Response } from './response.js'
import { Server } from './server.js'
import { resolveWsOptions, type WebSocketHandler, type WebSocketOptions } from './websocket.js'

export type Handler = (req: Request) => Response | Promise<Response>
export type Next = (req: Request) => Promise<Response>
/** `async (req, next) => { const res = await next(req); …; return res }` */
export type Middleware = (req: Request, next: Next) => Response | Promise<Response>

export interface CacheOptions {
  /** Seconds a cached response stays fresh. */
  ttl: number
}

export interface RouteOptions {
  /** Cache 200 GET/HEAD responses of this route for `ttl` seconds. */
  cache?: CacheOptions
}

/** @internal */
export interface RouteEntry {
  method: string
  pattern: string
  handler: Handler
  paramNames: readonly string[]
  /** The handler wrapped in every middleware, rebuilt when middleware changes. */
  composed: (req: Request) => Response | Promise<Response>
  /** Set on WebSocket routes (method `WEBSOCKET`). */
  ws?: { handler: WebSocketHandler; options: WebSocketOptions | undefined }
}

/** Route-table method of WebSocket routes (matched only by upgrade requests). */
const WEBSOCKET = 'WEBSOCKET'

/**
 * The innermost handler of a WebSocket route: a `101` response that tells
 * the server to accept the upgrade. Middleware sees the upgrade request
 * like any other and may return another response instead (a 401, …) to
 * refuse it, or add headers to this one.
 */
function acceptUpgrade(): Response {
  const res = new Response(null)
  res.status = 101
  return res
}

const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

function paramNamesOf(pattern: string): string[] {
  const names: string[] = []
  for (const seg of pattern.split('/')) {
    if (seg.startsWith('{') && seg.endsWith('}')) names.push(seg.slice(1, -1).split(':')[0] as string)
  }
  return names
}

function notFound(req: Request): Response {
  const allow = req._allow
  if (allow !== null) {
    return new Response('Method Not Allowed', {
      status: 405,
      headers: { allow, 'content-type': 'text/plain; charset=utf-8' },
    })
  }
  return new Response('Not Found', { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8' } })
}

/**
 * An isolated application: routes, middleware and its own server.
 *
 * ```ts
 * const app = new App()
 * app.get('/hello/{name}', (req) => Response.text(`hello ${req.pathParams.name}`))
 * const server = await app.listen({ port: 0 })
 * ```
 */
export class App {
  /** @internal */ readonly routes: RouteEntry[] = []
  /** @internal */ readonly middleware: Middleware[] = []
  /** @internal */ missHandler: (req: Request) => Response | Promise<Response> = notFound
  #server: Server | undefined

  /** Registers `handler` for `method(s)` on `path`. */
  route(methods: string | readonly string[], path: string, handler: Handler, opts?: RouteOptions): this {
    if (typeof handler !== 'function') {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', `handler for ${String(path)} must be a function`)
    }
    const list = typeof methods === 'string' ? [methods] : methods
    let fn = handler
    if (opts?.cache) fn = cached(opts.cache)(fn)
    for (const m of list) {
      const method = String(m).toUpperCase()
      if (method === WEBSOCKET) {
        throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', 'use websocket(path, handler) for WebSocket routes')
      }
      if (!METHOD.test(method)) throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', `invalid method ${JSON.stringify(m)}`)
      if (typeof path !== 'string') throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', 'path must be a string')
      try {
        native.validateRoute(method, path)
      } catch (e) {
        throw fromNative(e)
      }
      const running = this.#server && !this.#server.isClosed ? this.#server : undefined
      if (running?.metricsPath === path) {
        throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', `${path} is the metrics endpoint of the running server`)
      }
      if (this.routes.some((r) => r.method === method && r.pattern === path)) {
        throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', `${method} ${path} is already registered`)
      }
      this.routes.push({ method, pattern: path, handler: fn, paramNames: paramNamesOf(path), composed: fn })
    }
    this.#changed(true)
    return this
  }

  get(path: string, handler: Handler, opts?: RouteOptions): this {
    return this.route('GET', path, handler, opts)
  }
  post(path: string, handler: Handler, opts?: RouteOptions): this {
    return this.route('POST', path, handler, opts)
  }
  put(path: string, handler: Handler, opts?: RouteOptions): this {
    return this.route('PUT', path, handler, opts)
  }
  patch(path: string, handler: Handler, opts?: RouteOptions): this {
    return this.route('PATCH', path, handler, opts)
  }
  delete(path: string, handler: Handler, opts?: RouteOptions): this {
    return this.route('DELETE', path, handler, opts)
  }
  /** Alias of `delete` (a reserved word as a bare function name). */
  del(path: string, handler: Handler, opts?: RouteOptions): this {
    return this.delete(path, handler, opts)
  }
  head(path: string, handler: Handler, opts?: RouteOptions): this {
    return this.route('HEAD', path, handler, opts)
  }
  options(path: string, handler: Handler, opts?: RouteOptions): this {
    return this.route('OPTIONS', path, handler, opts)
  }

  /**
   * Registers a WebSocket route. Upgrade requests to `path` run through the
   * middleware first; when the chain returns the route's `101` the
   * connection is upgraded and `handler` runs with it. A plain request to
   * a WebSocket-only path gets `426 Upgrade Required`.
   *
   * ```ts
   * app.websocket('/ws', async (ws) => {
   *   for await (const msg of ws) if (msg.type === 'text') await ws.sendText(msg.data)
   * }, { heartbeat: 30 })
   * ```
   */
  websocket(path: string, handler: WebSocketHandler, opts?: WebSocketOptions): this {
    if (typeof handler !== 'function') {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', `websocket handler for ${String(path)} must be a function`)
    }
    if (typeof path !== 'string') throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', 'path must be a string')
    resolveWsOptions(opts, undefined, `websocket ${path}`)
    try {
      native.validateRoute(WEBSOCKET, path)
    } catch (e) {
      throw fromNative(e)
    }
    if (this.routes.some((r) => r.method === WEBSOCKET && r.pattern === path)) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', `websocket ${path} is already registered`)
    }
    this.routes.push({
      method: WEBSOCKET,
      pattern: path,
      handler: acceptUpgrade,
      paramNames: paramNamesOf(path),
      composed: acceptUpgrade,
      ws: { handler, options: opts === undefined ? undefined : { ...opts } },
    })
    this.#changed(true)
    return this
  }

  /**
   * Sends `data` (text for a string, binary otherwise) to every WebSocket
   * subscribed to `topic`; the fan-out happens in Rust. Returns the number
   * of connections it was queued for (0 when the app is not listening).
   */
  publish(topic: string, data: string | Buffer | Uint8Array | ArrayBuffer): number {
    const s = this.#server
    if (!s || s.isClosed) return 0
    return s._publish(topic, data)
  }

  /** Adds a middleware; middleware runs in registration order around every request, 404s included. */
  use(mw: Middleware): this {
    if (typeof mw !== 'function') throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'middleware must be a function')
    this.middleware.push(mw)
    this.#changed(false)
    return this
  }

  /** Same as `use` (the guide's `add_middleware`). */
  addMiddleware(mw: Middleware): this {
    return this.use(mw)
  }

  /**
   * Registers a readiness endpoint for load balancers and Kubernetes: `200
   * {"status":"ok"}` while the server is ready, `503 {"status":"draining"}`
   * from the moment a shutdown begins (while `shutdownDelay` keeps serving).
   *
   * ```ts
   * app.healthCheck('/readyz')
   * ```
   */
  healthCheck(path = '/healthz'): this {
    return this.get(path, () =>
      this.#server?.ready
        ? Response.json({ status: 'ok' })
        : Response.json({ status: 'draining' }, { status: 503, headers: { 'retry-after': '1' } }),
    )
  }

  /** Starts serving. Resolves once the port is bound. */
  async listen(options?: ServerOptions): Promise<Server> {
    if (this.#server && !this.#server.isClosed) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'this app is already listening')
    }
    const resolved = resolveOptions(options, this.middleware.length > 0)
    refuseWorkersInListen(resolved.workers)
    this.#compose()
    const server = Server._start(this, resolved)
    this.#server = server
    void server.closed.then(() => {
      if (this.#server === server) this.#server = undefined
    })
    return server
  }

  /** The running server, if any. */
  get server(): Server | undefined {
    return this.#server
  }

  /** @internal */
  nativeRoutes(): NativeRoute[] {
    return this.routes.map((r, id) => ({ method: r.method, pattern: r.pattern, id }))
  }

  #compose(): void {
    const wrap = (inner: (req: Request) => Response | Promise<Response>) => {
      let fn = inner
      for (let i = this.middleware.length - 1; i >= 0; i--) {
        const mw = this.middleware[i] as Middleware
        const next = fn
        const nextAsync: Next = (req) => {
          try {
            return Promise.resolve(next(req))
          } catch (e) {
            return Promise.reject(e)
          }
        }
        fn = (req) => mw(req, nextAsync)
      }
      return fn
    }
    for (const r of this.routes) r.composed = wrap(r.handler)
    this.missHandler = wrap(notFound)
  }

  #changed(routes: boolean): void {
    this.#compose()
    const s = this.#server
    if (s && !s.isClosed) s._routesChanged(routes)
  }
}

interface CacheEntry {
  expires: number
  status: number
  headers: [string, string][]
  body: Response['body']
}

/**
 * Caches a handler's 200 responses for `ttl` seconds, keyed by path and
 * query (the guide's `@cached(ttl_seconds=…)`). Concurrent misses for one key
 * run the handler once.
 *
 * ```ts
 * get('/api/expensive-operation', cached({ ttl: 300 })(async () => Response.json({ result: 'expensive calculation' })))
 * ```
 */
export function cached(opts: CacheOptions): (handler: Handler) => Handler {
  if (!opts || typeof opts.ttl !== 'number' || !(opts.ttl > 0)) {
    throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'cached: "ttl" must be a positive number of seconds')
  }
  const ttlMs = opts.ttl * 1000
  return (handler) => {
    const cache = new Map<string, CacheEntry>()
    const inflight = new Map<string, Promise<Response>>()
    const replay = (e: CacheEntry) => new Response(e.body, { status: e.status, headers: e.headers })
    return async (req) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') return handler(req)
      const key = `${req.path}?${req.queryString}`
      const hit = cache.get(key)
      if (hit && hit.expires > Date.now()) return replay(hit)
      let p = inflight.get(key)
      if (!p) {
        p = Promise.resolve(handler(req))
        inflight.set(key, p)
        p.then(
          (res) => {
            inflight.delete(key)
            const cc = res.headers.get('cache-control') ?? ''
            if (res.status === 200 && !/no-store|private/i.test(cc)) {
              cache.set(key, { expires: Date.now() + ttlMs, status: res.status, headers: [...res.headers], body: res.body })
            }
          },
          () => inflight.delete(key),
        )
        return p
      }
      const res = await p
      return new Response(res.body, { status: res.status, headers: [...res.headers] })
    }
  }
}
