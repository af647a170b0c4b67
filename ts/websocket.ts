/**
 * WebSocket connections. The Rust core does the upgrade, framing, pings,
 * close handshake, flow control and pub/sub fan-out; this module turns its
 * event batches into `WebSocketConnection` objects with a pull API
 * (`receive()`, `for await`) and push methods that respect backpressure.
 *
 * Event batch layout: `WsEventAt` in `src/contract.rs`, read with
 * `record.ts`.
 */
import { HttpyTypeError, fromNative } from './errors.js'
import { SendResult, WsCompressionMode, type NativeServer, type NativeWsOptions } from './native.js'
import {
  EXTERNAL, putU32, u16, u32, WS_BINARY, WS_CLOSE, WS_DATA, WS_DRAIN, WS_ID, WS_KIND, WS_LENGTH, WS_PLACEMENT,
  WS_SEND_DATA, WS_SEND_ID, WS_SEND_KIND, WS_SEND_LENGTH, WS_TEXT,
} from './record.js'
import type { HttpVersion, Request } from './request.js'
import type { ReadonlyHeaders } from './headers.js'

/** A message received from the peer. */
export type WebSocketMessage = { type: 'text'; data: string } | { type: 'binary'; data: Buffer }

/** `async (ws) => { for await (const msg of ws) … }` */
export type WebSocketHandler = (ws: WebSocketConnection) => void | Promise<unknown>

/** Per-route (or, with the server option `websocket`, per-server) settings. */
export interface WebSocketOptions {
  /** Largest message accepted, in bytes; a larger one closes the connection with 1009. Default 16 MiB. */
  maxMessageSize?: number
  /** Seconds without any frame from the peer before closing with 1001; 0 disables. Default 120. */
  idleTimeout?: number
  /** Seconds between server pings; a peer that has not answered by the next ping is dropped (close code 1006). 0 disables. Default 0. */
  heartbeat?: number
  /**
   * Bytes queued for sending above which `send*()` promises wait until the
   * queue drains; also how much unread input is held before reading pauses.
   * Default 1 MiB.
   */
  highWaterMark?: number
  /** Bytes queued for sending beyond which the connection is closed with 1008 (a reader too slow even for pub/sub). Default 64 MiB. */
  maxBackpressure?: number
  /**
   * permessage-deflate (RFC 7692), when the client offers it. `'shared'`
   * (default): each message is compressed on its own, so idle sockets hold
   * no compressor and a published message is compressed once per topic.
   * `'dedicated'`: a compressor per connection that keeps its history
   * (better ratios on repetitive traffic, about 300 KB per connection).
   * `false`: not offered.
   */
  compression?: false | 'shared' | 'dedicated'
  /** Messages shorter than this many bytes are sent uncompressed. Default 128. */
  threshold?: number
  /**
   * zlib level of the messages HTTPy compresses, 1 (fastest) to 9
   * (smallest). Default 1: the least CPU; 6 sends ~16% fewer bytes of JSON
   * for ~70% more server CPU per message (docs/websocket.md, *Choosing the level*).
   */
  compressionLevel?: number
}

/** How a connection ended. */
export interface WebSocketCloseInfo {
  /** Close code: the peer's (or ours); 1005 when the close frame had none; 1006 when the connection dropped without one. */
  code: number
  reason: string
}

/**
 * Rejection of `receive()` (and the end of `for await`) once the
 * connection is closed. `code` is the WebSocket close code.
 */
export class WebSocketClosedError extends Error {
  readonly code: number
  readonly reason: string
  constructor(info: WebSocketCloseInfo) {
    super(`WebSocket closed with code ${info.code}${info.reason ? `: ${info.reason}` : ''}`)
    this.name = 'WebSocketClosedError'
    this.code = info.code
    this.reason = info.reason
  }
}

const DEFAULTS: Required<WebSocketOptions> = {
  maxMessageSize: 16 * 1024 * 1024,
  idleTimeout: 120,
  heartbeat: 0,
  highWaterMark: 1024 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
  compression: 'shared',
  threshold: 128,
  compressionLevel: 1,
}

const KEYS = Object.keys(DEFAULTS) as (keyof WebSocketOptions)[]

/** @internal Validates settings (naming the bad one) and merges them over `base`. */
export function resolveWsOptions(
  opts: WebSocketOptions | undefined,
  base: Required<WebSocketOptions> = DEFAULTS,
  where = 'websocket',
): Required<WebSocketOptions> {
  if (opts === undefined) return base
  if (typeof opts !== 'object' || opts === null) {
    throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', `${where}: options must be an object`)
  }
  const out = { ...base }
  for (const [k, v] of Object.entries(opts)) {
    if (v === undefined) continue
    if (!KEYS.includes(k as keyof WebSocketOptions)) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', `${where}: unknown option "${k}"`)
    }
    if (k === 'compression') {
      if (v !== false && v !== 'shared' && v !== 'dedicated') {
        throw new HttpyTypeError(
          'ERR_HTTPY_INVALID_OPTION',
          `${where}: option "compression" must be false, 'shared' or 'dedicated' (got ${String(v)})`,
        )
      }
      out.compression = v
      continue
    }
    if (k === 'threshold') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
        throw new HttpyTypeError(
          'ERR_HTTPY_INVALID_OPTION',
          `${where}: option "threshold" must be an integer number of bytes >= 0 (got ${String(v)})`,
        )
      }
      out.threshold = v
      continue
    }
    if (k === 'compressionLevel') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 9) {
        throw new HttpyTypeError(
          'ERR_HTTPY_INVALID_OPTION',
          `${where}: option "compressionLevel" must be an integer from 1 (fastest) to 9 (smallest) (got ${String(v)})`,
        )
      }
      out.compressionLevel = v
      continue
    }
    const seconds = k === 'idleTimeout' || k === 'heartbeat'
    const ok = typeof v === 'number' && Number.isFinite(v) && (seconds ? v >= 0 : Number.isInteger(v) && v >= 1)
    if (!ok) {
      throw new HttpyTypeError(
        'ERR_HTTPY_INVALID_OPTION',
        `${where}: option "${k}" must be ${seconds ? 'a number of seconds >= 0' : 'a positive integer number of bytes'} (got ${String(v)})`,
      )
    }
    out[k as Exclude<keyof WebSocketOptions, 'compression' | 'threshold' | 'compressionLevel'>] = v as number
  }
  return out
}

/** @internal */
export function nativeWsOptions(o: Required<WebSocketOptions>): NativeWsOptions {
  return {
    maxMessageSize: o.maxMessageSize,
    idleTimeoutMs: o.idleTimeout * 1000,
    heartbeatMs: o.heartbeat * 1000,
    highWaterMark: o.highWaterMark,
    maxBackpressure: Math.max(o.maxBackpressure, o.highWaterMark),
    compression:
      o.compression === 'dedicated'
        ? WsCompressionMode.Dedicated
        : o.compression === 'shared'
          ? WsCompressionMode.Shared
          : WsCompressionMode.Off,
    compressionThreshold: o.threshold,
    compressionLevel: o.compressionLevel,
  }
}

const SENT = Promise.resolve(true)
const DROPPED = Promise.resolve(false)

/**
 * @internal Where a connection's messages go: small ones are written into
 * one buffer per event-loop turn and handed over in one native call
 * (`WebSocketSessions`); the rest, and everything that must not overtake
 * them, flush that buffer first.
 */
interface SendQueue {
  /** Appends a message to the turn's batch; false when it is too large to batch. */
  queueText(id: number, text: string): boolean
  queueBinary(id: number, data: Buffer): boolean
  /** Hands the batch over now (before a call that must not overtake it). */
  flushSends(): void
  /** Makes sure the turn's batch (and deferred frames) go out this turn. */
  schedule(): void
}

// A text of more UTF-16 units than this, or a binary message of more bytes,
// goes in its own call (large binaries are then lent, not copied).
const BATCH_TEXT_MAX = 8 * 1024
const BATCH_BINARY_MAX = 16 * 1024 - 1

function toBuffer(data: unknown, what: string): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (data instanceof ArrayBuffer) return Buffer.from(data)
  if (typeof data === 'string') return Buffer.from(data)
  throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', `${what}: data must be a Buffer, Uint8Array, ArrayBuffer or string`)
}

/** Codes an endpoint may send (RFC 6455 section 7.4). */
function validCloseCode(code: number): boolean {
  return (
    Number.isInteger(code) &&
    ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999))
  )
}

/**
 * One WebSocket connection, handed to the route's handler once the upgrade
 * is accepted.
 *
 * ```ts
 * app.websocket('/ws/{room}', async (ws) => {
 *   ws.subscribe(ws.pathParams.room)
 *   for await (const msg of ws) {
 *     if (msg.type === 'text') app.publish(ws.pathParams.room, msg.data)
 *   }
 * })
 * ```
 *
 * Sending never throws on a closed connection: `sendText`/`sendBinary`/
 * `ping` resolve to `false` instead (so an unawaited send cannot crash the
 * process with an unhandled rejection); they resolve to `true` once the
 * frame is queued under the high-water mark.
 */
export class WebSocketConnection implements AsyncIterable<WebSocketMessage> {
  readonly #id: number
  readonly #request: Request
  readonly #opts: Required<WebSocketOptions>
  readonly #out: SendQueue
  #native: NativeServer | undefined
  /**
   * Set when a batch left this connection's queue above its high-water
   * mark, cleared by the `Drain` event: meanwhile sends go one by one, so
   * each learns whether it must wait.
   */
  #full = false
  #inbox: WebSocketMessage[] = []
  #head = 0
  #inboxBytes = 0
  #paused = false
  #waiters: { resolve: (m: WebSocketMessage) => void; reject: (e: unknown) => void }[] = []
  #listener: ((msg: WebSocketMessage) => void) | undefined
  #listenerFailed: ((err: unknown) => void) | undefined
  #drainWaiters: ((ok: boolean) => void)[] = []
  #closing = false
  #info: WebSocketCloseInfo | undefined
  #resolveClosed!: (info: WebSocketCloseInfo) => void
  /** Settles with the close code and reason once the connection has ended (for any reason). */
  readonly closedPromise: Promise<WebSocketCloseInfo>

  /** @internal */
  constructor(
    id: number,
    request: Request,
    native: NativeServer,
    opts: Required<WebSocketOptions>,
    out: SendQueue,
  ) {
    this.#id = id
    this.#out = out
    this.#request = request
    this.#native = native
    this.#opts = opts
    this.closedPromise = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
  }

  /** Path of the upgrade request, without the query. */
  get path(): string {
    return this.#request.path
  }
  /** Route parameters of the upgrade request (`/ws/{room}` → `{ room }`). */
  get pathParams(): Record<string, string> {
    return this.#request.pathParams
  }
  /** Query of the upgrade request. */
  get query(): URLSearchParams {
    return this.#request.query
  }
  /** Headers of the upgrade request. */
  get headers(): ReadonlyHeaders {
    return this.#request.headers
  }
  /**
   * How the socket came: `'1.1'` (an HTTP/1.1 upgrade) or `'2'` (an
   * extended CONNECT on an HTTP/2 stream, RFC 8441). Same as
   * `request.httpVersion`.
   */
  get httpVersion(): HttpVersion {
    return this.#request.httpVersion
  }
  /** The upgrade request itself (`remoteAddress`, `scheme`, …). */
  get request(): Request {
    return this.#request
  }
  /** True once a close was sent or received: nothing more can be sent. */
  get closed(): boolean {
    return this.#closing || this.#info !== undefined
  }
  /** How the connection ended, once it has. */
  get closeInfo(): WebSocketCloseInfo | undefined {
    return this.#info
  }

  /**
   * The next message. Rejects with a `WebSocketClosedError` (carrying
   * `code` and `reason`) once the connection is closed and every message
   * received before has been read.
   */
  receive(): Promise<WebSocketMessage> {
    if (this.#head < this.#inbox.length) return Promise.resolve(this.#take())
    if (this.#info) return Promise.reject(new WebSocketClosedError(this.#info))
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }))
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WebSocketMessage> {
    for (;;) {
      let msg: WebSocketMessage
      try {
        msg = await this.receive()
      } catch (e) {
        if (e instanceof WebSocketClosedError) return
        throw e
      }
      yield msg
    }
  }

  /**
   * Sends a text message. Resolves `true` once queued, `false` if the
   * connection is closed. While the connection's outgoing queue is above
   * the high-water mark, the promise waits until it has drained (sends made
   * in the event-loop turn that took it over the mark still resolve at once:
   * the server learns of the mark when the turn's messages are handed over).
   */
  sendText(data: string): Promise<boolean> {
    if (typeof data !== 'string') {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'sendText: data must be a string')
    }
    const n = this.#native
    if (!n || this.closed) return DROPPED
    if (!this.#full && this.#out.queueText(this.#id, data)) return SENT
    this.#out.flushSends()
    return this.#result(n.wsSendText(this.#id, data))
  }

  /** Sends a binary message (Buffer, Uint8Array or ArrayBuffer). Same result as `sendText`. */
  sendBinary(data: Buffer | Uint8Array | ArrayBuffer): Promise<boolean> {
    const buf = toBuffer(data, 'sendBinary')
    const n = this.#native
    if (!n || this.closed) return DROPPED
    if (!this.#full && this.#out.queueBinary(this.#id, buf)) return SENT
    this.#out.flushSends()
    return this.#result(n.wsSendBinary(this.#id, buf))
  }

  /** Sends a ping (payload up to 125 bytes). The peer's pong is handled (and its silence detected) by the `heartbeat` option. */
  ping(data?: string | Buffer | Uint8Array): Promise<boolean> {
    const buf = data === undefined ? undefined : toBuffer(data, 'ping')
    if (buf && buf.length > 125) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'ping: payload must be at most 125 bytes')
    }
    const n = this.#native
    if (!n || this.closed) return DROPPED
    this.#out.flushSends()
    return this.#result(n.wsPing(this.#id, buf ?? null))
  }

  /**
   * Starts the closing handshake (default code 1000) and resolves once the
   * connection has ended. Codes: 1000–1003, 1007–1014, 3000–4999; reason
   * up to 123 bytes of UTF-8.
   */
  close(code = 1000, reason = ''): Promise<void> {
    if (!validCloseCode(code)) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', `close: invalid close code ${String(code)}`)
    }
    if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'close: reason must be a string of at most 123 bytes')
    }
    if (!this.closed && this.#native) {
      this.#closing = true
      this.#out.flushSends()
      this.#native.wsClose(this.#id, code, reason)
    }
    return this.closedPromise.then(() => undefined)
  }

  /** Receives every message `app.publish(topic, …)` sends from now on. Returns false if the connection is closed. */
  subscribe(topic: string): boolean {
    if (typeof topic !== 'string') throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'subscribe: topic must be a string')
    return this.#native?.wsSubscribe(this.#id, topic) ?? false
  }

  /** Stops receiving `topic`. Returns false if the connection was not subscribed. */
  unsubscribe(topic: string): boolean {
    if (typeof topic !== 'string') throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'unsubscribe: topic must be a string')
    return this.#native?.wsUnsubscribe(this.#id, topic) ?? false
  }

  #result(status: number): Promise<boolean> {
    this.#out.schedule()
    if (status === SendResult.Queued) {
      this.#full = false
      return SENT
    }
    if (status === SendResult.Closed) return DROPPED
    return new Promise((resolve) => this.#drainWaiters.push(resolve))
  }

  /**
   * Hands every message to `listener` as it arrives, synchronously, instead
   * of queueing it for `receive()` / `for await` (messages already queued go
   * to it first, in order). The fastest way to consume messages: no promise
   * and no async-iterator step per message. Returns a promise that settles
   * like `closedPromise`, or rejects with what the listener threw (the
   * connection is then closed with 1011, as for a throwing handler), so the
   * handler can simply return it:
   *
   * ```ts
   * app.websocket('/echo', (ws) => ws.onMessage((m) => void ws.sendText(String(m.data))))
   * ```
   *
   * A handler that returns without awaiting it closes the connection, as
   * always. Backpressure still applies to sends (their promises), and the
   * listener runs on the event loop, so a slow listener slows reading.
   */
  onMessage(listener: (msg: WebSocketMessage) => void): Promise<WebSocketCloseInfo> {
    if (typeof listener !== 'function') {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'onMessage: listener must be a function')
    }
    this.#listener = listener
    const done = new Promise<WebSocketCloseInfo>((resolve, reject) => {
      this.#listenerFailed = reject
      void this.closedPromise.then(resolve)
    })
    while (this.#listener === listener && this.#head < this.#inbox.length) this.#deliver(this.#take())
    return done
  }

  #deliver(msg: WebSocketMessage): void {
    try {
      ;(this.#listener as (msg: WebSocketMessage) => void)(msg)
    } catch (e) {
      this.#listener = undefined
      this.#listenerFailed?.(e)
    }
  }

  #take(): WebSocketMessage {
    const msg = this.#inbox[this.#head] as WebSocketMessage
    this.#inbox[this.#head++] = undefined as unknown as WebSocketMessage
    if (this.#head === this.#inbox.length) {
      this.#inbox = []
      this.#head = 0
    }
    this.#inboxBytes -= msg.data.length
    if (this.#paused && this.#inboxBytes <= this.#opts.highWaterMark / 2) {
      this.#paused = false
      this.#native?.wsPause(this.#id, false)
    }
    return msg
  }

  /** @internal */
  _message(msg: WebSocketMessage): void {
    if (this.#listener) {
      this.#deliver(msg)
      return
    }
    const w = this.#waiters.shift()
    if (w) {
      w.resolve(msg)
      return
    }
    this.#inbox.push(msg)
    this.#inboxBytes += msg.data.length
    // The handler is behind: stop reading the socket instead of buffering.
    if (!this.#paused && this.#inboxBytes > this.#opts.highWaterMark) {
      this.#paused = true
      this.#native?.wsPause(this.#id, true)
    }
  }

  /** @internal */
  _drain(): void {
    this.#full = false
    const ws = this.#drainWaiters
    this.#drainWaiters = []
    for (const r of ws) r(true)
  }

  /** @internal A batch left the queue above the high-water mark. */
  _full(): void {
    this.#full = true
  }

  /** @internal */
  _closed(info: WebSocketCloseInfo): void {
    if (this.#info) return
    this.#info = info
    this.#native = undefined
    for (const r of this.#drainWaiters) r(false)
    this.#drainWaiters = []
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w.reject(new WebSocketClosedError(info))
    this.#resolveClosed(info)
  }
}

/**
 * Texts up to this many UTF-16 units are written by `writeShort`'s loop:
 * `Buffer#write` is a C++ call whose fixed cost (argument checks, handle
 * scope, the encoder's set-up; ~0.1 µs per call in a 32-byte echo's
 * profile on Node 20) is more than such a text's whole copy. Longer texts
 * keep the native encoder, which is faster per byte; the limit was not
 * tuned (docs/websocket.md, *The plain echo itemised*).
 */
const ASCII_LOOP_MAX = 64

/**
 * Writes `text` as UTF-8 at `at` and returns its byte length: a loop while
 * it is ASCII (its UTF-8 is its code units), `Buffer#write` from the first
 * other character on (that write starts again at `at`).
 */
function writeShort(out: Buffer, text: string, at: number): number {
  const n = text.length
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c > 0x7f) return out.write(text, at)
    out[at + i] = c
  }
  return n
}

/** Bytes of an event batch decoded at once for its short ASCII texts (see `dispatch`). */
const TEXT_WINDOW = 8 * 1024

function isAscii(b: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if ((b[i] as number) > 0x7f) return false
  return true
}

/**
 * @internal The JS half of a server's WebSocket connections: accepts
 * upgrades, runs handlers, dispatches event batches.
 */
export class WebSocketSessions implements SendQueue {
  readonly #conns = new Map<number, WebSocketConnection>()
  readonly #report: (err: unknown, req: Request | undefined) => void
  #native: NativeServer | undefined
  #flushScheduled = false
  /** The turn's small messages (`WsSendAt` layout), handed over in one call. */
  #out = Buffer.allocUnsafeSlow(64 * 1024)
  #outLen = 0
  // Sends queue frames without waking the writers; one flush per event-loop
  // turn hands them over, so a burst costs one wake-up per connection.
  readonly #flush = (): void => {
    this.#flushScheduled = false
    if (this.#outLen !== 0) this.flushSends()
    else this.#native?.wsFlush()
  }

  schedule(): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    setImmediate(this.#flush)
  }

  queueText(id: number, text: string): boolean {
    if (text.length > BATCH_TEXT_MAX) return false
    // Worst case of the UTF-8 form, so the write cannot overflow.
    const at = this.#reserve(WS_SEND_DATA + text.length * 3)
    const len = text.length <= ASCII_LOOP_MAX ? writeShort(this.#out, text, at + WS_SEND_DATA) : this.#out.write(text, at + WS_SEND_DATA)
    this.#put(at, WS_TEXT, id, len)
    return true
  }

  queueBinary(id: number, data: Buffer): boolean {
    if (data.length > BATCH_BINARY_MAX) return false
    const at = this.#reserve(WS_SEND_DATA + data.length)
    this.#out.set(data, at + WS_SEND_DATA)
    this.#put(at, WS_BINARY, id, data.length)
    return true
  }

  /** Room for `need` bytes at the end of the batch (handing it over first if full). */
  #reserve(need: number): number {
    if (this.#outLen + need > this.#out.length) this.flushSends()
    return this.#outLen
  }

  #put(at: number, kind: number, id: number, len: number): void {
    const out = this.#out
    out[at + WS_SEND_KIND] = kind
    putU32(out, at + WS_SEND_ID, id)
    putU32(out, at + WS_SEND_LENGTH, len)
    this.#outLen = at + WS_SEND_DATA + len
    this.schedule()
  }

  /**
   * Hands the turn's batch over. Never throws: it runs from `setImmediate`
   * and from any connection's send, so a batch the core refuses (the
   * encoding above makes that a bug: the messages before the fault are
   * sent, the rest dropped) goes to the server's `onError` instead of
   * becoming an uncaught exception or another connection's failure.
   */
  flushSends(): void {
    const len = this.#outLen
    if (len === 0) return
    this.#outLen = 0
    let full: number[] | undefined
    try {
      full = this.#native?.wsSendBatch(this.#out.subarray(0, len))
    } catch (e) {
      this.#report(fromNative(e), undefined)
      return
    }
    if (full) for (const id of full) this.#conns.get(id)?._full()
  }

  constructor(report: (err: unknown, req: Request | undefined) => void) {
    this.#report = report
  }

  get size(): number {
    return this.#conns.size
  }

  /** Completes the upgrade of `req` and starts `handler`. Throws on invalid headers. */
  accept(
    n: NativeServer,
    req: Request,
    headers: string,
    handler: WebSocketHandler,
    opts: Required<WebSocketOptions>,
  ): void {
    if (!n.wsAccept(req._id, headers, nativeWsOptions(opts))) return
    this.#native = n
    const ws = new WebSocketConnection(req._id, req, n, opts, this)
    this.#conns.set(req._id, ws)
    let out: void | Promise<unknown>
    try {
      out = handler(ws)
    } catch (e) {
      this.#failed(ws, req, e)
      return
    }
    Promise.resolve(out).then(
      () => {
        // A handler that returns is done with the connection.
        if (!ws.closed) void ws.close(1000)
      },
      (e: unknown) => this.#failed(ws, req, e),
    )
  }

  #failed(ws: WebSocketConnection, req: Request, err: unknown): void {
    // The peer going away is not a server error.
    if (err instanceof WebSocketClosedError && ws.closeInfo) return
    this.#report(err, req)
    if (!ws.closed) void ws.close(1011, 'internal error')
  }

  /** Dispatches one batch from `wsDrain()`. */
  dispatch(parts: Buffer[]): void {
    const buf = parts[0] as Buffer
    // Short ASCII texts are cut out of one latin1 string of the batch's
    // bytes [winAt, winEnd) (`substring`: a JIT builtin, a view of that
    // string from 13 characters on) instead of one `utf8Slice` C++ call per
    // message (~0.1 µs of fixed cost each on Node 20). A kept message holds
    // at most TEXT_WINDOW bytes of string, like Node's 8 KB Buffer pool.
    let lastId = -1
    let last: WebSocketConnection | undefined
    let win = ''
    let winAt = 0
    let winEnd = 0
    let at = 0
    while (at < buf.length) {
      const kind = buf[at + WS_KIND] as number
      const id = u32(buf, at + WS_ID)
      const len = u32(buf, at + WS_LENGTH)
      const external = buf[at + WS_PLACEMENT] === EXTERNAL
      const start = at + WS_DATA
      at = start + (external ? 4 : len)
      // A socket read's messages come as a run of one connection's events:
      // the map is asked once per run.
      if (id !== lastId) {
        lastId = id
        last = this.#conns.get(id)
      }
      const ws = last
      if (!ws) continue
      // Text is decoded straight from the batch (no Buffer view per message).
      if (kind === WS_TEXT && !external) {
        const end = start + len
        if (len > ASCII_LOOP_MAX || !isAscii(buf, start, end)) {
          ws._message({ type: 'text', data: buf.utf8Slice(start, end) })
          continue
        }
        if (start < winAt || end > winEnd) {
          winAt = start
          winEnd = Math.min(buf.length, start + TEXT_WINDOW)
          win = buf.latin1Slice(winAt, winEnd)
        }
        ws._message({ type: 'text', data: win.substring(start - winAt, end - winAt) })
        continue
      }
      const data = external ? (parts[1 + u32(buf, start)] as Buffer) : buf.subarray(start, start + len)
      switch (kind) {
        case WS_TEXT:
          ws._message({ type: 'text', data: data.toString('utf8') })
          break
        case WS_BINARY:
          ws._message({ type: 'binary', data })
          break
        case WS_CLOSE:
          this.#conns.delete(id)
          lastId = -1
          ws._closed({ code: data.length >= 2 ? u16(data, 0) : 1005, reason: data.toString('utf8', 2) })
          break
        case WS_DRAIN:
          ws._drain()
          break
      }
    }
  }

  /** The server is gone: end every connection still known. */
  closeAll(): void {
    this.#native = undefined
    this.#outLen = 0
    for (const ws of this.#conns.values()) ws._closed({ code: 1006, reason: 'server closed' })
    this.#conns.clear()
  }
}
