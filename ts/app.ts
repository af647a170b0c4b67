/**
 * `App`: registers the routes and middleware of one server (validating
 * each where it is written) into its `RouteTable` (`routes.ts`), and starts
 * the server. Matching happens natively, so the table is sent to the core on
 * `listen()` and again whenever it changes.
 */
import { serve, refuseWorkersInListen, type Supervisor } from './cluster.js'
import { statSync } from 'node:fs'
import { resolve } from 'node:path'
import { HttpyTypeError, fromNative } from './errors.js'
import { fromFetch, type FetchHandler } from './fetch.js'
import { native, type NativeStatic } from './native.js'
import { resolveOptions, type ResolvedOptions, type ServerOptions } from './options.js'
import { acceptsPolicy } from './accepts.js'
import { multipartLimits, type MultipartOptions } from './multipart.js'
import { cachingHandler, type CachePolicy } from './route-cache.js'
import { Response } from './response.js'
import { paramNamesOf, RouteTable, WEBSOCKET, type ErrorHandler, type Handler, type Middleware } from './routes.js'
import { Server } from './server.js'
import { resolveWsOptions, type WebSocketHandler, type WebSocketOptions } from './websocket.js'

export type { ErrorHandler, Handler, Middleware, Next } from './routes.js'

export interface CacheOptions {
  /** Seconds a cached response stays fresh. */
  ttl: number
  /**
   * Request headers whose values join the cache key (case-insensitive). A
   * request carrying `Authorization` or `Cookie` is never answered from the
   * cache unless that header is named here, so each credential gets its own
   * entry: `key: ['authorization']`.
   */
  key?: readonly string[]
  /**
   * Answer hits without running the app's middleware (in the core, without
   * entering JS). Only for routes whose middleware does nothing a cached
   * answer needs — no authentication, no per-client headers: a hit skips
   * every middleware of the app. Default false: when the app has middleware,
   * it runs on every request and only the handler's answer is reused.
   */
  skipMiddleware?: boolean
}

export interface RouteOptions {
  /** Cache 200 GET/HEAD responses of this route for `ttl` seconds. */
  cache?: CacheOptions
  /**
   * Media types the route takes as request body, e.g. `'application/json'`
   * or `['text/*', 'application/xml']` (parameters such as `charset` are
   * ignored). A request with a non-empty body of another type, or without
   * `Content-Type`, gets `415 Unsupported Media Type` (with `Accept-Post` /
   * `Accept-Patch`) before the handler runs. Requests without a body pass.
   */
  accepts?: string | readonly string[]
  /**
   * Stream long request bodies to the handler instead of reading them whole
   * first: a body that ends within 64 KiB still arrives whole (`req.body`),
   * a longer or unbounded one is read chunk by chunk with `req.stream()` (or
   * `await req.bytes()/text()/json()`), with backpressure, `maxBodySize`
   * still enforced. Default false.
   */
  streamBody?: boolean
  /**
   * Parse `multipart/form-data` bodies in the server while they stream,
   * with these limits (`true`: the defaults), and hand them to the handler
   * as parts: `for await (const part of req.parts())`, or
   * `await req.formData()`. Past a limit the client gets 413 naming it; a
   * malformed body gets 400. Other bodies stream as with `streamBody`.
   */
  multipart?: true | MultipartOptions
}

/** Options of `app.fetch()` (and `serve({ fetch })`). */
export interface FetchOptions {
  /**
   * Limits of `request.formData()` on a `multipart/form-data` body, which
   * the server parses while it streams (`true` or unset: the defaults of
   * the `multipart` route option). Past one the client gets 413 naming it;
   * a malformed body gets 400.
   */
  multipart?: true | MultipartOptions
}

export interface StaticOptions {
  /** Seconds for `Cache-Control: public, max-age=…`; unset sends no `Cache-Control`. */
  maxAge?: number
  /** Adds `immutable` to `Cache-Control` (with a one-year max-age when `maxAge` is unset). */
  immutable?: boolean
  /** Send a strong `ETag` and answer `If-None-Match`. Default true. */
  etag?: boolean
  /** File served for a directory; `false` disables. Default `'index.html'`. */
  index?: string | false
  /** Paths with a segment starting with `.`: `'ignore'` (404, default), `'deny'` (403) or `'allow'`. */
  dotfiles?: 'ignore' | 'deny' | 'allow'
  /**
   * Milliseconds a file is served from the core's file cache before it is
   * checked against the disk again (one `stat`); an edited file is served
   * fresh at most this long after the change. `0` checks on every request.
   * Default 1000.
   */
  revalidate?: number
}

/** Marks a handler wrapped by `cached()`, so a route can cache it natively. */
const CACHED = Symbol('httpy.cached')

interface CachedTag {
  policy: CachePolicy
  handler: Handler
}

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

/** The methods a mounted fetch handler (`app.fetch(path, handler)`) answers. */
const FETCH_METHODS: readonly string[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']

const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

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
  /** @internal */ readonly table = new RouteTable()
  #server: Server | undefined

  /** Registers `handler` for `method(s)` on `path`. */
  route(methods: string | readonly string[], path: string, handler: Handler, opts?: RouteOptions): this {
    return this.#add(methods, path, handler, opts, undefined)
  }

  #add(
    methods: string | readonly string[],
    path: string,
    handler: Handler,
    opts: RouteOptions | undefined,
    staticFiles: NativeStatic | undefined,
  ): this {
    if (typeof handler !== 'function') {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', `handler for ${String(path)} must be a function`)
    }
    const list = typeof methods === 'string' ? [methods] : methods
    // `cached(...)(handler)` and `{cache: {ttl}}` both become a native cache
    // on the route; the JS wrapper is bypassed so entries are not kept twice.
    let fn = handler
    let cache: CachePolicy | undefined
    const tag = (handler as Handler & { [CACHED]?: CachedTag })[CACHED]
    if (tag) {
      fn = tag.handler
      cache = tag.policy
    }
    if (opts?.cache) cache = cachePolicy(opts.cache)
    const accepts = opts?.accepts === undefined ? undefined : acceptsPolicy(opts.accepts)
    for (const m of list) {
      const method = String(m).toUpperCase()
      if (method === WEBSOCKET) {
        throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', 'use websocket(path, handler) for WebSocket routes')
      }
      if (!METHOD.test(method)) throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', `invalid method ${JSON.stringify(m)}`)
      if (typeof path !== 'string') throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', 'path must be a string')
      refuseForeignSyntax(path)
      try {
        native.validateRoute(method, path)
      } catch (e) {
        throw fromNative(e)
      }
      const running = this.#server && !this.#server.isClosed ? this.#server : undefined
      if (running?.metricsPath === path) {
        throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', `${path} is the metrics endpoint of the running server`)
      }
      if (this.table.has(method, path)) {
        throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', `${method} ${path} is already registered`)
      }
      const cachedHandler = cache ? cachingHandler(fn, cache) : undefined
      const streamBody = opts?.streamBody === true || opts?.multipart !== undefined ? true : undefined
      const multipart = opts?.multipart === undefined ? undefined : multipartLimits(opts.multipart)
      this.table.entries.push({ method, pattern: path, handler: fn, paramNames: paramNamesOf(path), composed: fn, cache, cachedHandler, staticFiles, accepts, streamBody, multipart })
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
    refuseForeignSyntax(path)
    resolveWsOptions(opts, undefined, `websocket ${path}`)
    try {
      native.validateRoute(WEBSOCKET, path)
    } catch (e) {
      throw fromNative(e)
    }
    if (this.table.has(WEBSOCKET, path)) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', `websocket ${path} is already registered`)
    }
    this.table.entries.push({
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

  /**
   * WebSockets subscribed to `topic`: in this process and, under
   * `run({ workers })`, in every worker of the server (each worker's count
   * as it last reported it: fresh to within the time a message takes over a
   * local socket, well under a millisecond). Subscribers of other servers
   * sharing a Redis are not counted. 0 when the app is not listening.
   */
  subscriberCount(topic: string): number {
    const s = this.#server
    if (!s || s.isClosed) return 0
    return s._subscriberCount(topic)
  }

  /**
   * Serves the files under `dir` at `urlPrefix`, natively: content type,
   * `ETag`/`Last-Modified`, 304, ranges, `index.html`, precompressed
   * `.br`/`.gz` siblings. Paths that leave `dir` (`..`, encoded or not,
   * symlinks out of it) give 404. Requests here do not enter JS, so
   * middleware does not see them. Files are cached by the core (small ones
   * in memory, bounded per server) and checked against the disk again
   * every `revalidate` ms.
   *
   * ```ts
   * app.serveStatic('/static', './public', { maxAge: 86400 })
   * ```
   */
  serveStatic(urlPrefix: string, dir: string, opts: StaticOptions = {}): this {
    if (typeof urlPrefix !== 'string' || !urlPrefix.startsWith('/')) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'serveStatic: the URL prefix must be a string starting with "/"')
    }
    if (typeof dir !== 'string' || dir.length === 0) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'serveStatic: dir must be a non-empty string')
    }
    const root = resolve(dir)
    let isDir = false
    try {
      isDir = statSync(root).isDirectory()
    } catch {
      isDir = false
    }
    if (!isDir) throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', `serveStatic: ${JSON.stringify(dir)} is not a directory`)
    if (typeof opts !== 'object' || opts === null) throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'serveStatic: options must be an object')
    const { maxAge, immutable = false, etag = true, index = 'index.html', dotfiles = 'ignore', revalidate = 1000 } = opts
    if (maxAge !== undefined && (typeof maxAge !== 'number' || !Number.isFinite(maxAge) || maxAge < 0)) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'serveStatic: "maxAge" must be a number of seconds >= 0')
    }
    if (typeof immutable !== 'boolean') throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'serveStatic: "immutable" must be a boolean')
    if (typeof etag !== 'boolean') throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'serveStatic: "etag" must be a boolean')
    if (index !== false && (typeof index !== 'string' || index.length === 0 || /[/\\\0]/.test(index))) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'serveStatic: "index" must be a file name or false')
    }
    if (dotfiles !== 'ignore' && dotfiles !== 'deny' && dotfiles !== 'allow') {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'serveStatic: "dotfiles" must be "ignore", "deny" or "allow"')
    }
    if (typeof revalidate !== 'number' || !Number.isFinite(revalidate) || revalidate < 0) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'serveStatic: "revalidate" must be a number of milliseconds >= 0')
    }
    const prefix = urlPrefix.replace(/\/+$/, '')
    const spec: NativeStatic = {
      dir: root,
      maxAge: maxAge === undefined ? undefined : Math.floor(maxAge),
      immutable,
      etag,
      index: index === false ? '' : index,
      dotfiles,
      revalidateMs: revalidate,
    }
    // Never called: the core answers every request of a mount.
    const unreachable: Handler = () => new Response('Not Found', { status: 404 })
    return this.#add('GET', `${prefix}/{path:path}`, unreachable, undefined, spec)
  }

  /**
   * Serves a WHATWG fetch-style handler, `(request, info) => Response`
   * (Hono's `app.fetch`, itty-router, a Bun/Deno/Workers module's
   * `fetch`). With a path, it answers that route for the usual methods
   * (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS); without one it answers
   * every request no route matched (any method), in place of 404/405. The
   * catch-all must be set before `listen()`. Middleware wraps it as it
   * wraps any route.
   *
   * ```ts
   * app.get('/health', () => Response.text('ok'))
   * app.fetch(hono.fetch)                          // everything else
   * app.fetch('/legacy/{rest:path}', legacy.fetch) // one mount
   * ```
   */
  fetch(handler: FetchHandler, options?: FetchOptions): this
  fetch(path: string, handler: FetchHandler, options?: FetchOptions): this
  fetch(pathOrHandler: string | FetchHandler, handlerOrOptions?: FetchHandler | FetchOptions, maybeOptions?: FetchOptions): this {
    const path = typeof pathOrHandler === 'string' ? pathOrHandler : undefined
    const handler = path === undefined ? pathOrHandler : handlerOrOptions
    const options = (path === undefined ? handlerOrOptions : maybeOptions) as FetchOptions | undefined
    // `request.formData()` on a multipart body: parsed by the core, with these limits.
    const multipart = multipartLimits(options?.multipart ?? true)
    if (typeof handler !== 'function') {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', `fetch handler${path === undefined ? '' : ` for ${path}`} must be a function`)
    }
    const adapted = fromFetch(handler as FetchHandler, () => this.#server)
    if (path !== undefined) {
      this.route(FETCH_METHODS, path, adapted, { streamBody: true })
      for (const e of this.table.entries) {
        if (e.pattern === path && e.handler === adapted) {
          e.multipart = multipart
          e.partsOnAsk = true
        }
      }
      return this
    }
    if (this.#server && !this.#server.isClosed) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', 'the catch-all fetch handler must be set before listen()')
    }
    if (this.table.fallback) throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', 'a catch-all fetch handler is already set')
    this.table.fallback = adapted
    this.table.fallbackMultipart = multipart
    this.#changed(true)
    return this
  }

  /** Adds a middleware; middleware runs in registration order around every request, 404s included. */
  use(mw: Middleware): this {
    if (typeof mw !== 'function') throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'middleware must be a function')
    this.table.middleware.push(mw)
    // Routes go to the core again: a cached route's hits may no longer skip JS.
    this.#changed(true)
    return this
  }

  /**
   * Sets the handler that makes the response for an error thrown (or a
   * promise rejected) by a handler or middleware, `HttpError`s included.
   * Its response passes back through the middleware outside the failure,
   * like any other. It replaces the default log of failures to stderr; the
   * `onError` server option, when set, still receives them. If it throws or
   * returns no Response, the client gets a plain 500 and that error is
   * logged.
   *
   * ```ts
   * app.onError((err, req) => {
   *   if (err instanceof HttpError) return Response.json({ error: err.message }, { status: err.status, headers: err.headers })
   *   console.error(req.method, req.path, err)
   *   return Response.json({ error: 'internal error' }, 500)
   * })
   * ```
   */
  onError(handler: ErrorHandler): this {
    if (typeof handler !== 'function') throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'onError: the error handler must be a function')
    this.table.errorHandler = handler
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
    this.#refuseIfListening()
    const resolved = this.#resolve(options)
    refuseWorkersInListen(resolved.workers)
    return this.#start(resolved)
  }

  /**
   * @internal `run()` for this app: one server in this process, or, with
   * `workers` in the primary process, a supervisor of worker processes.
   * The options are resolved once, here.
   */
  async _run(options?: ServerOptions): Promise<Server | Supervisor> {
    const resolved = this.#resolve(options)
    return serve(resolved, async () => {
      this.#refuseIfListening()
      return this.#start(resolved)
    })
  }

  #refuseIfListening(): void {
    if (this.#server && !this.#server.isClosed) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'this app is already listening')
    }
  }

  #resolve(options: ServerOptions | undefined): ResolvedOptions {
    const resolved = resolveOptions(options, this.table.middleware.length > 0 || this.table.fallback !== undefined)
    // A fetch catch-all reads bodies as streams (`request.body`).
    if (this.table.fallback !== undefined) {
      resolved.native.streamMissBodies = true
      resolved.native.missMultipart = this.table.fallbackMultipart
    }
    // Records end with the request's absolute URL only for fetch-style
    // handlers (the catch-all, or a mount: `partsOnAsk` marks fetch routes),
    // the only readers of `request.url`. A mount added after `listen()`
    // builds its URLs from the record's fields instead (docs/performance.md §13.6).
    resolved.native.requestUrls = this.table.fallback !== undefined || this.table.entries.some((e) => e.partsOnAsk === true)
    return resolved
  }

  #start(resolved: ResolvedOptions): Server {
    this.table.compose()
    const server = Server._start(this.table, resolved)
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

  #changed(routes: boolean): void {
    this.table.compose()
    const s = this.#server
    if (s && !s.isClosed) s._routesChanged(routes)
  }
}

/**
 * Route parameters are written `{name}` (and a catch-all `{name:path}`).
 * Express/Hono's `:name` and `*` would be taken as literal segments that
 * never match, so they are refused with the pattern to write instead.
 */
function refuseForeignSyntax(path: string): void {
  const segments = path.split('/')
  let foreign = false
  const fixed = segments.map((seg) => {
    const param = /^:([A-Za-z_$][\w$]*)(?:\(.*\))?\??$/.exec(seg)
    if (param) {
      foreign = true
      return `{${param[1]}}`
    }
    if (seg === '*' || /^\*[A-Za-z_$][\w$]*$/.test(seg)) {
      foreign = true
      return `{${seg.length > 1 ? seg.slice(1) : 'rest'}:path}`
    }
    return seg
  })
  if (foreign) {
    throw new HttpyTypeError(
      'ERR_HTTPY_INVALID_ROUTE',
      `route ${JSON.stringify(path)} uses Express-style :param or * segments, which HTTPy would match literally; write ${JSON.stringify(fixed.join('/'))}`,
    )
  }
}

function cachePolicy(opts: CacheOptions): CachePolicy {
  if (!opts || typeof opts.ttl !== 'number' || !Number.isFinite(opts.ttl) || !(opts.ttl > 0)) {
    throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'cached: "ttl" must be a positive number of seconds')
  }
  const key = opts.key ?? []
  if (!Array.isArray(key) || key.some((k) => typeof k !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k))) {
    throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'cached: "key" must be an array of header names')
  }
  if (opts.skipMiddleware !== undefined && typeof opts.skipMiddleware !== 'boolean') {
    throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'cached: "skipMiddleware" must be a boolean')
  }
  return { ttl: opts.ttl, key: key.map((k) => k.toLowerCase()), skipMiddleware: opts.skipMiddleware === true }
}

/**
 * Caches a handler's 200 GET responses for `ttl` seconds, keyed by path and
 * query (plus the request headers named in the response's `Vary` and in
 * `key`) — the guide's `@cached(ttl_seconds=…)`. Same as `{cache: {ttl}}`.
 * Requests with `Authorization` or `Cookie` bypass the cache unless `key`
 * names that header. When the app has middleware, it runs on every request
 * and only the handler's answer is reused; without middleware (or with
 * `skipMiddleware: true`) hits are answered by the core without entering
 * JS. Concurrent misses for one key run the handler once.
 *
 * ```ts
 * get('/api/expensive-operation', cached({ ttl: 300 })(async () => Response.json({ result: 'expensive calculation' })))
 * ```
 */
export function cached(opts: CacheOptions): (handler: Handler) => Handler {
  const policy = cachePolicy(opts)
  return (handler) => {
    if (typeof handler !== 'function') throw new HttpyTypeError('ERR_HTTPY_INVALID_ROUTE', 'cached: handler must be a function')
    // Called directly (not as a route) it is simply the handler.
    const wrapped: Handler & { [CACHED]?: CachedTag } = (req) => handler(req)
    wrapped[CACHED] = { policy, handler }
    return wrapped
  }
}
