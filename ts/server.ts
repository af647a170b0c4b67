/**
 * A running server: takes request batches from the core, runs the composed
 * handler for each, and hands every response back with one native call.
 */
import { HttpyError, HttpyTypeError, fromNative } from './errors.js'
import { native, ServerEvent, type NativeServer, type NativeStats } from './native.js'
import type { ResolvedOptions } from './options.js'
import { checkRegistry, mergeMetrics, METRICS_ROUTE } from './metrics.js'
import { NO_ROUTE, recordLength } from './record.js'
import { Request } from './request.js'
import { FileBody, Response } from './response.js'
import { pumpStream, isStreamBody } from './stream.js'
import type { RouteEntry, RouteTable } from './routes.js'
import { WebSocketSessions, resolveWsOptions } from './websocket.js'

const TEXT_500 = 'content-type\ntext/plain; charset=utf-8'

export interface CloseOptions {
  /** Seconds to wait for in-flight requests before dropping connections (default: `shutdownTimeout`). */
  timeout?: number
  /**
   * Seconds to keep serving, with `ready` false (health checks answering
   * 503), before the close starts (default: `shutdownDelay`, 0).
   */
  delay?: number
}

export interface ServerStats extends NativeStats {}

const ZERO_STATS: ServerStats = {
  connectionsOpen: 0, connectionsTotal: 0, requestsTotal: 0, pending: 0, nativeResponses: 0,
  rejectedOverload: 0, timedOut: 0, panics: 0, heldResponders: 0, websocketsOpen: 0, websocketsTotal: 0,
  connectionsIdle: 0, staticCacheHits: 0, staticCacheMisses: 0, staticCacheEntries: 0, staticCacheBytes: 0,
}

export class Server {
  readonly #table: RouteTable
  readonly #opts: ResolvedOptions
  #native: NativeServer | undefined
  #finalStats: ServerStats | undefined
  /** `#table.entries`, read per request. */
  readonly #routes: RouteEntry[]
  readonly #paramNamesOf: (route: number) => readonly string[]
  #closing = false
  #closed = false
  #draining = false
  #closePromise: Promise<void> | undefined
  readonly closed: Promise<void>
  #resolveClosed!: () => void
  readonly #ws: WebSocketSessions

  /** @internal */
  static _start(table: RouteTable, opts: ResolvedOptions): Server {
    return new Server(table, opts)
  }

  private constructor(table: RouteTable, opts: ResolvedOptions) {
    this.#table = table
    this.#opts = opts
    this.#routes = table.entries
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    this.#ws = new WebSocketSessions((err, req) => this.#report(err, req))
    this.#paramNamesOf = table.paramNamesOf
    checkRegistry(opts.metrics?.registry)
    try {
      this.#native = native.NativeServer.listen(opts.native, this.#nativeRoutes(), (event) => this.#onEvent(event))
    } catch (e) {
      const err = fromNative(e)
      if ((err as HttpyError).code === 'EADDRINUSE' && !opts.native.reusePort) {
        err.message += ' (to share a port between processes, set reusePort: true in each of them, or use run({ workers }))'
      }
      throw err
    }
    if (opts.native.tls?.selfSigned) {
      console.warn(
        `httpy: tls 'self-signed': generated a development certificate for localhost, 127.0.0.1 and ::1 ` +
          `(clients will not trust it; server.certificate holds its PEM)`,
      )
    }
  }

  /** The UDP port serving HTTP/3 (`undefined` when HTTP/3 is off). */
  get http3Port(): number | undefined {
    return this.#native?.http3Port ?? undefined
  }

  /** PEM of the certificate chain served over TLS (`null` without TLS). */
  get certificate(): string | null {
    return this.#native?.certificate ?? null
  }

  /** The bound TCP port (useful with `port: 0`). */
  get port(): number {
    return this.#native?.port ?? 0
  }

  /** The bound address, e.g. `127.0.0.1`. */
  get address(): string {
    return this.#native?.address ?? ''
  }

  /** `http://address:port`, or `https://…` with TLS. */
  get url(): string {
    const a = this.address.includes(':') ? `[${this.address}]` : this.address
    return `${this.#opts.native.tls ? 'https' : 'http'}://${a}:${this.port}`
  }

  get isClosed(): boolean {
    return this.#closing || this.#closed
  }

  /**
   * True while the server accepts work and no shutdown has begun: what a
   * readiness probe should report (see `App.healthCheck`).
   */
  get ready(): boolean {
    return !this.#draining && !this.#closing && !this.#closed
  }

  /** The metrics endpoint's path, when metrics are on. */
  get metricsPath(): string | undefined {
    return this.#opts.metrics?.path
  }

  /** Access log lines dropped because the writer thread could not keep up. */
  accessLogDropped(): number {
    return this.#native?.accessLogDropped() ?? 0
  }

  /** The Prometheus text of the native metrics (`null` when metrics are off). */
  metricsText(): string | null {
    return this.#native?.metricsText() ?? null
  }

  /**
   * Counters from the core (connections, pending requests, …). After the
   * server has closed, the last totals stay readable (gauges read 0).
   */
  stats(): ServerStats {
    if (!this.#native) {
      return { ...(this.#finalStats ?? ZERO_STATS) }
    }
    return this.#native.stats()
  }

  /**
   * Graceful close: stop accepting, let in-flight requests finish, close
   * idle connections; after `timeout` seconds drop what is left.
   */
  close(opts?: CloseOptions): Promise<void> {
    const timeout = opts?.timeout ?? this.#opts.shutdownTimeout
    if (typeof timeout !== 'number' || !(timeout >= 0)) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'close: "timeout" must be a number of seconds >= 0')
    }
    const delay = opts?.delay ?? this.#opts.shutdownDelay
    if (typeof delay !== 'number' || !(delay >= 0) || !Number.isFinite(delay)) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'close: "delay" must be a number of seconds >= 0')
    }
    if (this.#closePromise) return this.#closePromise
    this.#draining = true
    const start = (): void => {
      if (!this.#closing && this.#native) {
        this.#closing = true
        this.#native.close(timeout * 1000)
      }
    }
    if (delay > 0) {
      // Keep serving while load balancers notice the failing readiness probe.
      setTimeout(start, delay * 1000)
    } else {
      start()
    }
    this.#closePromise = this.closed
    return this.#closePromise
  }

  /** @internal */
  _routesChanged(routes: boolean): void {
    if (routes && this.#native) this.#native.setRoutes(this.#nativeRoutes())
  }

  /** The app's routes, plus the metrics endpoint when JS serves it (merged registry). */
  #nativeRoutes() {
    const routes = this.#table.nativeRoutes()
    const m = this.#opts.metrics
    if (m) {
      const clash = this.#routes.find((r) => r.pattern === m.path)
      if (clash) {
        throw new HttpyTypeError(
          'ERR_HTTPY_INVALID_OPTION',
          `metrics path ${m.path} collides with route ${clash.method} ${clash.pattern}; set metrics.path to another path`,
        )
      }
      if (m.registry) routes.push({ method: 'GET', pattern: m.path, id: METRICS_ROUTE })
    }
    return routes
  }

  #onEvent(event: number): void {
    if (event === ServerEvent.Requests) this.#drain()
    else if (event === ServerEvent.Ws) this.#drainWs()
    else if (event === ServerEvent.Closed) this.#finishClose()
  }

  #finishClose(): void {
    if (this.#closed) return
    this.#closed = true
    this.#closing = true
    const n = this.#native
    this.#native = undefined
    if (n) {
      // What is open now is gone once the core is released; the totals stay.
      this.#finalStats = {
        ...n.stats(),
        connectionsOpen: 0, connectionsIdle: 0, pending: 0, heldResponders: 0, websocketsOpen: 0,
        staticCacheEntries: 0, staticCacheBytes: 0,
      }
      // Close events queued before the end still reach their connections.
      const parts = n.wsDrain()
      if (parts.length !== 0) this.#ws.dispatch(parts)
    }
    this.#ws.closeAll()
    n?.dispose()
    this.#resolveClosed()
  }

  #drain(): void {
    const n = this.#native
    if (!n) return
    const parts = n.drain()
    if (parts.length === 0) return
    const buf = parts[0] as Buffer
    const end = buf.length
    let at = 0
    while (at < end) {
      const len = recordLength(buf, at)
      const req = new Request(buf, at, parts, this.#paramNamesOf, this.#opts.trust)
      at += len
      this.#run(req)
    }
  }

  #drainWs(): void {
    const n = this.#native
    if (!n) return
    const parts = n.wsDrain()
    if (parts.length !== 0) this.#ws.dispatch(parts)
  }

  /** @internal Fan-out of `app.publish`. */
  _publish(topic: string, data: string | Buffer | Uint8Array | ArrayBuffer): number {
    if (typeof topic !== 'string') throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'publish: topic must be a string')
    const n = this.#native
    if (!n) return 0
    if (typeof data === 'string') return n.wsPublishText(topic, data)
    if (Buffer.isBuffer(data)) return n.wsPublishBinary(topic, data)
    if (data instanceof Uint8Array) return n.wsPublishBinary(topic, Buffer.from(data.buffer, data.byteOffset, data.byteLength))
    if (data instanceof ArrayBuffer) return n.wsPublishBinary(topic, Buffer.from(data))
    throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'publish: data must be a string, Buffer, Uint8Array or ArrayBuffer')
  }

  #run(req: Request): void {
    const route = req._route
    if (route === METRICS_ROUTE) {
      void this.#scrape(req)
      return
    }
    const fn = route === NO_ROUTE ? this.#table.missHandler : (this.#routes[route] as RouteEntry).composed
    let out: Response | Promise<Response>
    try {
      out = fn(req)
    } catch (e) {
      this.#fail(req, e)
      return
    }
    // Hot path: a synchronous handler's response is sent without a microtask.
    if (out instanceof Response) {
      this.#send(req, out)
    } else if (out !== null && typeof out === 'object' && typeof (out as Promise<Response>).then === 'function') {
      ;(out as Promise<Response>).then(
        (res) => this.#send(req, res),
        (err: unknown) => this.#fail(req, err),
      )
    } else {
      this.#send(req, out)
    }
  }

  async #scrape(req: Request): Promise<void> {
    try {
      const own = this.#native?.metricsText() ?? ''
      const text = await mergeMetrics(own, this.#opts.metrics?.registry)
      this.#send(req, new Response(text, { headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' } }))
    } catch (e) {
      this.#fail(req, e)
    }
  }

  #send(req: Request, res: unknown): void {
    const n = this.#native
    if (!n) return
    if (!(res instanceof Response)) {
      this.#fail(
        req,
        new HttpyTypeError(
          'ERR_HTTPY_INVALID_RESPONSE',
          `handler for ${req.method} ${req.path} returned ${res === null ? 'null' : typeof res}, not a Response`,
        ),
      )
      return
    }
    try {
      if (res.status === 101) {
        const ws = this.#routes[req._route]?.ws
        if (ws) {
          this.#ws.accept(n, req, res.headers.toWire(), ws.handler, resolveWsOptions(ws.options, this.#opts.websocket))
          return
        }
      }
      const body = res.body
      const headers = res.headers.toWire()
      const push = res.pushResources
      if (push !== undefined && push !== null && push.length > 0) {
        this.#sendWithPush(n, req, res, headers, pushBlock(push))
      } else if (body === null || body === undefined || typeof body === 'string') {
        n.respondText(req._id, res.status, headers, body)
      } else if (Buffer.isBuffer(body)) {
        n.respondBytes(req._id, res.status, headers, body)
      } else if (body instanceof Uint8Array) {
        n.respondBytes(req._id, res.status, headers, Buffer.from(body.buffer, body.byteOffset, body.byteLength))
      } else if (body instanceof FileBody) {
        n.respondFile(req._id, res.status, headers, body.path)
      } else if (isStreamBody(body)) {
        pumpStream(n, req._id, res.status, headers, body, (err) => this.#report(err, req))
      } else {
        throw new HttpyTypeError(
          'ERR_HTTPY_INVALID_RESPONSE',
          `unsupported response body type ${Object.prototype.toString.call(body)}`,
        )
      }
    } catch (e) {
      this.#fail(req, fromNative(e))
    }
  }

  #sendWithPush(n: NativeServer, req: Request, res: Response, headers: string, push: string): void {
    const body = res.body
    if (body === null || body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) {
      n.respondPush(req._id, res.status, headers, body, push)
    } else if (body instanceof Uint8Array) {
      n.respondPush(req._id, res.status, headers, Buffer.from(body.buffer, body.byteOffset, body.byteLength), push)
    } else {
      throw new HttpyTypeError(
        'ERR_HTTPY_INVALID_RESPONSE',
        `unsupported response body type ${Object.prototype.toString.call(body)}`,
      )
    }
  }

  #fail(req: Request, err: unknown): void {
    this.#report(err, req)
    const n = this.#native
    if (!n) return
    const body = this.#opts.debug
      ? `Internal Server Error\n\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}`
      : 'Internal Server Error'
    try {
      n.respondText(req._id, 500, TEXT_500, body)
    } catch {
      n.abandon(req._id)
    }
  }

  #report(err: unknown, req: Request | undefined): void {
    const onError = this.#opts.onError
    if (onError) {
      try {
        onError(err, req)
      } catch (e) {
        console.error('httpy: onError threw', e)
      }
    } else if (this.#opts.debug) {
      console.error('httpy: handler error', err)
    }
  }
}

/** `pushResources` as the core takes it: `path\nas\npath\nas…`. */
function pushBlock(list: ReadonlyArray<readonly [string, string]>): string {
  const parts: string[] = []
  for (const entry of list) {
    const [path, as] = Array.isArray(entry) ? entry : []
    if (typeof path !== 'string' || typeof as !== 'string' || path.includes('\n') || as.includes('\n')) {
      throw new HttpyTypeError(
        'ERR_HTTPY_INVALID_RESPONSE',
        'pushResources must be a list of [path, as] string pairs, e.g. [["/static/app.js", "script"]]',
      )
    }
    parts.push(path, as)
  }
  return parts.join('\n')
}

export { HttpyError }
