/**
 * A running server: takes request batches from the core, runs the composed
 * handler for each, and hands every response back with one native call.
 */
import { HttpyError, HttpyTypeError, fromNative, notAResponse } from './errors.js'
import { defaultErrorResponse, internalError, isFailure } from './http-error.js'
import { native, ServerEvent, type NativeAcmeStatus, type NativePubSubStats, type NativeServer, type NativeStats } from './native.js'
import type { ResolvedOptions } from './options.js'
import { resolveTls, type TlsOptions } from './tls.js'
import { checkRegistry, mergeMetrics, METRICS_ROUTE } from './metrics.js'
import { BATCH_BODY_COUNT, BATCH_FIRST_RECORD, NO_ROUTE, recordLength, replyRoom, u32, writeLentReply, writeReply } from './record.js'
import { Headers } from './headers.js'
import { Request } from './request.js'
import { FileBody, Response } from './response.js'
import { pumpStream, isStreamBody, requestLink } from './stream.js'
import type { RouteEntry, RouteTable } from './routes.js'
import { WebSocketSessions, resolveWsOptions } from './websocket.js'

const TEXT_500 = 'content-type\ntext/plain; charset=utf-8'
const INTERNAL_500 = 'Internal Server Error'
/** Bodies up to this size are copied into the reply batch; larger ones cross on their own without a copy. */
const BATCH_BODY_MAX = 16 * 1024
const OUT_INITIAL = 64 * 1024
const MAX_BATCHES_PER_TURN = 16
/** How often the Redis link's state is read, to report an outage to `onError`. */
const PUBSUB_POLL_MS = 250
/** How often the ACME state is read, to report failed orders to `onError`. */
const ACME_POLL_MS = 250

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
  directWrites: 0, storedAnswers: 0,
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
  // Whole-body responses wait here and cross to the core together, one
  // native call per batch (layout: `ReplyBatch` in crates/core/src/reply.rs)
  // instead of one call with four converted arguments per response.
  #in: Buffer = Buffer.allocUnsafeSlow(OUT_INITIAL)
  #out: Buffer = Buffer.allocUnsafeSlow(OUT_INITIAL)
  #outLen = 0
  #outReqs: Request[] = []
  /** The batch's large bodies, lent to the core with it (`REPLY_LENT_BODY`). */
  #outBodies: Buffer[] = []
  #flushQueued = false
  readonly #flush = (): void => this.#flushOut()
  /** Polls the Redis link's state (with `pubsub.redis`) to report its failures to `onError`. */
  #pubsubWatch: NodeJS.Timeout | undefined
  #pubsubDownReported = false
  /** Polls the ACME state (with `tls.acme`) to report each failed attempt to `onError`. */
  #acmeWatch: NodeJS.Timeout | undefined
  #acmeErrorsReported = 0
  /** How requests reach their streamed bodies and abort watches. */
  readonly #link = requestLink(() => this.#native)

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
    table.fail = (err, req) => this.#errorResponse(err, req)
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
    if (opts.native.pubsubRedis !== undefined) {
      this.#pubsubWatch = setInterval(() => this.#checkPubsub(), PUBSUB_POLL_MS)
      this.#pubsubWatch.unref()
    }
    if (opts.native.tls?.acme) {
      this.#acmeWatch = setInterval(() => this.#checkAcme(), ACME_POLL_MS)
      this.#acmeWatch.unref()
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

  /** PEM of the (default) certificate chain served over TLS (`null` without TLS). */
  get certificate(): string | null {
    return this.#native?.certificate ?? null
  }

  /**
   * Replaces the TLS certificates (and client-certificate settings) without
   * a restart: every later handshake, HTTP/3 included, uses the new ones;
   * open connections keep theirs. Takes the same forms as the `tls`
   * option. A certificate that cannot be used throws (`ERR_HTTPY_TLS`,
   * naming the file and the cause) and the current ones stay in use.
   */
  setTls(tls: TlsOptions): void {
    if (!this.#opts.native.tls) {
      throw new HttpyError('ERR_HTTPY_TLS', 'setTls: this server was started without tls; it cannot switch to TLS while running')
    }
    const resolved = resolveTls(tls)
    if (!resolved) throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'setTls: expected the same forms as the "tls" option')
    if (!this.#native) throw new HttpyError('ERR_HTTPY_SERVER_CLOSED', 'setTls: the server is closed')
    try {
      this.#native.setTls(resolved)
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** The bound TCP port (useful with `port: 0`). */
  get port(): number {
    return this.#native?.port ?? 0
  }

  /** The bound address, e.g. `127.0.0.1`. */
  get address(): string {
    return this.#native?.address ?? ''
  }

  /**
   * `http://address:port`, or `https://…` with TLS; on a Unix socket
   * `http+unix://` and the percent-encoded path (the address is the path,
   * the port 0).
   */
  get url(): string {
    const scheme = this.#opts.native.tls ? 'https' : 'http'
    if (this.#opts.native.unixPath !== undefined) return `${scheme}+unix://${encodeURIComponent(this.address)}`
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
    if (this.#pubsubWatch) clearInterval(this.#pubsubWatch)
    if (this.#acmeWatch) clearInterval(this.#acmeWatch)
    n?.dispose()
    this.#resolveClosed()
  }

  /**
   * Takes batches until the core has none left (only the empty take re-arms
   * the core's wake-up, so requests arriving meanwhile cost no wake-up),
   * answering each batch's synchronous responses before taking the next. At
   * most MAX_BATCHES_PER_TURN per event-loop turn, so timers and I/O are not
   * starved; the rest is taken on the next turn.
   */
  #drain(): void {
    for (let i = 0; i < MAX_BATCHES_PER_TURN; i++) {
      const n = this.#native
      if (!n) return
      let len = n.drainInto(this.#in)
      if (len < 0) {
        this.#in = Buffer.allocUnsafeSlow(Math.max(-len, this.#in.length * 2))
        len = n.drainInto(this.#in)
      }
      if (len <= 0) return
      // The answers given while the batch runs are flushed right after it:
      // no microtask for them (one `queueMicrotask` per batch saved).
      this.#flushQueued = true
      try {
        this.#runBatch(n, len)
      } finally {
        this.#flushOut()
      }
    }
    setImmediate(this.#drainLater)
  }

  readonly #drainLater = (): void => this.#drain()

  #runBatch(n: NativeServer, len: number): void {
    // The batch's own copy (pooled when small): requests read it lazily,
    // after `#in` has been reused for later batches.
    const buf = Buffer.from(this.#in.subarray(0, len))
    const parts = u32(buf, BATCH_BODY_COUNT) === 0 ? [buf] : [buf, ...n.takeBodies()]
    const end = buf.length
    let at = BATCH_FIRST_RECORD
    while (at < end) {
      const len = recordLength(buf, at)
      const req = new Request(buf, at, parts, this.#paramNamesOf, this.#opts.trust, this.#link)
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

  /**
   * Subscribers of `topic` in this process and, with `workers`, in the
   * sibling workers as they last reported (docs/scaling.md).
   */
  _subscriberCount(topic: string): number {
    if (typeof topic !== 'string') throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'subscriberCount: topic must be a string')
    return this.#native?.wsSubscriberCount(topic) ?? 0
  }

  /**
   * Counters of pub/sub across processes (`null` when it stays in this
   * process: no `workers`, no `pubsub.redis`).
   */
  pubsubStats(): NativePubSubStats | null {
    return this.#native?.pubsubStats() ?? null
  }

  /**
   * Reports the Redis link going down (or never coming up) once per outage,
   * as an `ERR_HTTPY_PUBSUB` error to `onError` (by default, stderr).
   */
  #checkPubsub(): void {
    const s = this.#native?.pubsubStats()
    if (!s) return
    if (s.brokerUp) {
      this.#pubsubDownReported = false
    } else if (s.brokerErrors > 0 && !this.#pubsubDownReported) {
      this.#pubsubDownReported = true
      this.#report(new HttpyError('ERR_HTTPY_PUBSUB', `pubsub: Redis unavailable, publishing locally only (${s.lastError ?? 'unknown error'})`), undefined)
    }
  }

  /**
   * Where automatic certificates stand (`null` without `tls.acme`):
   * failed attempts and the last cause, certificates installed and issued,
   * and the served certificate's expiry (ms since the epoch).
   */
  acmeStatus(): NativeAcmeStatus | null {
    return this.#native?.acmeStatus() ?? null
  }

  /** Reports each failed ACME attempt as an `ERR_HTTPY_ACME` error to `onError` (by default, stderr). */
  #checkAcme(): void {
    const s = this.#native?.acmeStatus()
    if (!s || s.errors === this.#acmeErrorsReported) return
    this.#acmeErrorsReported = s.errors
    this.#report(new HttpyError('ERR_HTTPY_ACME', s.lastError ?? 'ACME: unknown error'), undefined)
  }

  /** @internal Fan-out of `app.publish`. */
  _publish(topic: string, data: string | Buffer | Uint8Array | ArrayBuffer): number {
    if (typeof topic !== 'string') throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'publish: topic must be a string')
    const n = this.#native
    if (!n) return 0
    // Messages already sent on connections go first, in order.
    this.#ws.flushSends()
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
      this.#fail(req, notAResponse(req, res))
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
      const h = res.headers
      // A template's copy brings its header block already encoded (a
      // middleware may have put a look-alike in place of the Headers).
      const headers = (h instanceof Headers ? h._wireBytes() : undefined) ?? h.toWire()
      const push = res.pushResources
      if (push !== undefined && push !== null && push.length > 0) {
        this.#sendWithPush(n, req, res, h.toWire(), pushBlock(push))
      } else if (body === null || body === undefined) {
        this.#queue(req, res.status, headers, '')
      } else if (typeof body === 'string') {
        if (body.length <= BATCH_BODY_MAX) this.#queue(req, res.status, headers, body)
        else n.respondText(req._id, res.status, h.toWire(), body)
      } else if (body instanceof Uint8Array) {
        if (body.byteLength <= BATCH_BODY_MAX) this.#queue(req, res.status, headers, body)
        else this.#queue(req, res.status, headers, Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength), true)
      } else if (body instanceof FileBody) {
        n.respondFile(req._id, res.status, h.toWire(), body.path)
      } else if (isStreamBody(body)) {
        pumpStream(n, req._id, res.status, h.toWire(), body, (err) => this.#report(err, req), () => req._clientGone())
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

  /**
   * Appends one whole-body response to the outgoing batch; the batch crosses
   * in a microtask. `headers` is the header block, or its bytes when cached.
   * A `lent` body is not copied: the core keeps a reference to it until the
   * socket has taken its bytes, and the reply names it by position.
   */
  #queue(req: Request, status: number, headers: string | Uint8Array, body: string | Uint8Array, lent = false): void {
    const need = replyRoom(headers, lent ? '' : body)
    if (this.#outLen + need > this.#out.length) {
      this.#flushOut()
      if (need > this.#out.length) this.#out = Buffer.allocUnsafeSlow(Math.max(need, this.#out.length * 2))
    }
    if (lent) {
      this.#outLen = writeLentReply(this.#out, this.#outLen, req._id, status, headers)
      this.#outBodies.push(body as Buffer)
    } else {
      this.#outLen = writeReply(this.#out, this.#outLen, req._id, status, headers, body)
    }
    this.#outReqs.push(req)
    if (!this.#flushQueued) {
      this.#flushQueued = true
      queueMicrotask(this.#flush)
    }
  }

  /** Hands the waiting responses to the core in one call. */
  #flushOut(): void {
    this.#flushQueued = false
    const len = this.#outLen
    if (len === 0) return
    const reqs = this.#outReqs
    const bodies = this.#outBodies
    this.#outLen = 0
    this.#outReqs = []
    if (bodies.length > 0) this.#outBodies = []
    const n = this.#native
    if (!n) return
    const refused = n.respondBatch(this.#out.subarray(0, len), bodies.length > 0 ? bodies : null)
    if (refused) {
      for (const r of refused) {
        const req = reqs[r.index]
        if (req) this.#fail(req, fromNative(new Error(r.message)))
      }
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

  /**
   * Answers `req` with the response for `err` (`app.onError`'s, or the
   * default). When sending that response fails too, a plain 500 goes out.
   */
  #fail(req: Request, err: unknown): void {
    if (this.#failed.has(req)) {
      this.#report(err, req)
      this.#plain500(req)
      return
    }
    this.#failed.add(req)
    const out = this.#errorResponse(err, req)
    if (out instanceof Response) this.#send(req, out)
    else void out.then((res) => this.#send(req, res))
  }

  /** Requests already answered with an error response (error path only). */
  readonly #failed = new WeakSet<Request>()

  #plain500(req: Request): void {
    const n = this.#native
    if (!n) return
    try {
      this.#queue(req, 500, TEXT_500, INTERNAL_500)
    } catch {
      n.abandon(req._id)
    }
  }

  /**
   * The response for an error thrown by a handler or middleware: from
   * `app.onError` when the app has one (an `onError` that fails gives a
   * plain 500, logged), otherwise `HttpError`'s own or a 500, the error
   * logged (or given to the `onError` option). Never throws nor rejects.
   */
  #errorResponse(err: unknown, req: Request): Response | Promise<Response> {
    const handler = this.#table.errorHandler
    if (handler === undefined) {
      this.#report(err, req)
      return defaultErrorResponse(err, this.#opts.debug)
    }
    // The app's handler replaces the default log; the onError option still observes.
    if (this.#opts.onError) this.#report(err, req)
    let out: Response | Promise<Response>
    try {
      out = handler(err, req)
    } catch (e) {
      return this.#handlerFailed(e, req)
    }
    if (out instanceof Response) return out
    if (out !== null && typeof out === 'object' && typeof (out as Promise<Response>).then === 'function') {
      return Promise.resolve(out).then(
        (res: unknown) => (res instanceof Response ? res : this.#handlerFailed(notAResponse(req, res, 'app.onError'), req)),
        (e: unknown) => this.#handlerFailed(e, req),
      )
    }
    return this.#handlerFailed(notAResponse(req, out, 'app.onError'), req)
  }

  #handlerFailed(err: unknown, req: Request): Response {
    const onError = this.#opts.onError
    if (onError) this.#report(err, req)
    else console.error(`httpy: app.onError failed for ${req.method} ${req.path}:`, err)
    return internalError(this.#opts.debug ? err : undefined)
  }

  /**
   * Reports an error to the `onError` option, or by default logs it to
   * stderr with the request's method and path. Deliberate 4xx answers
   * (`HttpError` below 500) are neither.
   */
  #report(err: unknown, req: Request | undefined): void {
    if (!isFailure(err)) return
    const onError = this.#opts.onError
    if (onError) {
      try {
        onError(err, req)
      } catch (e) {
        console.error('httpy: onError threw', e)
      }
    } else {
      console.error(`httpy: error in ${req ? `${req.method} ${req.path}` : 'the server'}:`, err)
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
