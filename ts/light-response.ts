/**
 * A lightweight standard `Response`. Creating the platform's `Response`
 * costs several microseconds (Web IDL conversions, a header list, a body
 * record); most handlers create one per request and the server only needs
 * its status, headers and a string or bytes body. `LightResponse` keeps the
 * constructor's arguments and creates the platform's `Response` only when
 * something beyond those is touched (`body`, `clone()`, `text()`, …).
 *
 * Frameworks call the global `Response`, so the fast path needs the global
 * replaced: `overrideGlobalResponse()` does it (the fetch handlers of
 * `serve()` and `app.fetch()` turn it on unless it was turned off first).
 * `instanceof Response` stays true for light and platform responses alike,
 * and every property and method behaves as the platform's.
 */
import * as nodeStream from 'node:stream'
import { delegateRest } from './delegate.js'

const PlatformResponse: typeof Response = globalThis.Response
const PlatformHeaders: typeof Headers = globalThis.Headers

/** Statuses whose responses have no body (a body with them is an error, as standard). */
const NULL_BODY = new Set([101, 103, 204, 205, 304])

/** What the server reads from a light response that was never realised. */
export interface LightParts {
  status: number
  /** Headers as given to the constructor (or the `Headers` they became). */
  headers: HeadersInit | undefined
  body: string | Uint8Array | null
  /** The content type the platform would add: for a string body without one. */
  defaultType: string | undefined
}

const TEXT = 'text/plain;charset=UTF-8'
/** Shared, never mutated: a response's own `Headers` is made from it on first access. */
const JSON_HEADERS: Readonly<Record<string, string>> = Object.freeze({ 'content-type': 'application/json' })
/** The init of `Response.json(data)` without one: shared, never mutated (no object spread per response). */
const JSON_INIT: ResponseInit = Object.freeze({ headers: JSON_HEADERS })

function isSimpleBody(body: unknown): body is string | Uint8Array | ArrayBuffer | null | undefined {
  return body === null || body === undefined || typeof body === 'string' || body instanceof Uint8Array || body instanceof ArrayBuffer
}

/**
 * The bytes behind each `body` stream a light response handed out. Hono
 * rebuilds a finished response whenever a middleware sets a header after
 * `await next()` (`c.header()`; `hono/cors` with an origin list does it):
 * `new Response(c.res.body, c.res)`. Creating a `ReadableStream` costs about
 * 8 µs on Node 20, a platform `Response` about 9 µs more, and a response
 * built from a stream used to be sent chunked, by reading that stream; a
 * stream found here that nobody has read or locked is taken back as its
 * bytes instead, so the rebuilt response stays light and whole.
 */
const STREAM_BYTES = new WeakMap<object, Uint8Array>()
/** `stream.isDisturbed` (read from or cancelled), which Node's types leave out for web streams. */
const isDisturbed = (nodeStream as unknown as { isDisturbed(s: object): boolean }).isDisturbed

/** A byte stream of `bytes`, as the platform makes for a string or bytes body; remembered in STREAM_BYTES. */
function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  const stream = new ReadableStream<Uint8Array>({
    type: 'bytes',
    pull(c) {
      // A byte stream takes its chunks' buffers over: enqueue a copy.
      c.enqueue(bytes.slice())
      c.close()
    },
  })
  STREAM_BYTES.set(stream, bytes)
  return stream
}

/** The bytes of a stream made by `streamOf` that is still untouched, else `undefined`. */
function untouchedBytes(body: unknown): Uint8Array | undefined {
  if (typeof body !== 'object' || body === null) return undefined
  const bytes = STREAM_BYTES.get(body)
  if (bytes === undefined) return undefined
  const stream = body as ReadableStream<Uint8Array>
  return stream.locked || isDisturbed(stream) ? undefined : bytes
}

const ENCODER = new TextEncoder()

/**
 * The body of the response a light response was rebuilt from with a null
 * body (`new Response(null, getResponse)`): Hono answers HEAD that way, by
 * dispatching GET and keeping the status and headers. The server answers a
 * HEAD request with this body's length as `Content-Length` (and no body),
 * as HTTPy's own handlers do. Set only by that rebuild and read only for
 * HEAD requests, so other responses pay nothing for it.
 */
const HEAD_BODY = new WeakMap<object, string | Uint8Array>()

/** Arguments a light response keeps as they are: a simple body, no init or a plain one with a valid status. */
function plainArgs(body: unknown, init: ResponseInit | undefined): body is string | Uint8Array | ArrayBuffer | null | undefined {
  const status = init?.status
  return (
    isSimpleBody(body) &&
    (init === undefined ||
      (typeof init === 'object' &&
        !(init instanceof PlatformResponse) &&
        (status === undefined || (Number.isInteger(status) && status >= 200 && status <= 599 && !(body != null && NULL_BODY.has(status))))))
  )
}

/** A simple body as a light response keeps it: bytes copied, as the platform copies them. */
function ownBody(b: string | Uint8Array | ArrayBuffer | null | undefined): string | Uint8Array | null {
  if (b instanceof ArrayBuffer) return new Uint8Array(b.slice(0))
  if (b instanceof Uint8Array) return new Uint8Array(b)
  return b ?? null
}

export class LightResponse {
  #body: string | Uint8Array | null = null
  #init: ResponseInit | undefined
  #headers: Headers | undefined
  #real: Response | undefined
  /** `body` as a stream, once asked for it or when built from one (`streamOf`). */
  #stream: ReadableStream<Uint8Array> | undefined

  constructor(body?: BodyInit | null, init?: ResponseInit) {
    if (!plainArgs(body, init)) {
      // A light response's untouched stream as the body, or a light
      // response as the init (Hono's rebuild), stays light; anything else
      // is built (and checked) by the platform at once.
      if (!this.#rebuild(body, init)) this.#real = new PlatformResponse(body, init)
      return
    }
    this.#init = init
    this.#body = ownBody(body)
  }

  /**
   * `new Response(c.res.body, c.res)` and the like: a body that is a light
   * response's untouched stream (`streamOf`) is taken as its bytes (the
   * stream stays this response's `body`), and a light response given as
   * the init gives its status and a copy of its headers, as the standard
   * says. False, having changed nothing, when the arguments are not such.
   */
  #rebuild(body: BodyInit | null | undefined, init: ResponseInit | undefined): boolean {
    const bytes = untouchedBytes(body)
    const fromLight = typeof init === 'object' && init !== null && #real in init
    if (bytes === undefined && !fromLight) return false
    const from = init as unknown as LightResponse
    const use: ResponseInit | undefined = fromLight ? { status: from.status, statusText: from.statusText } : init
    const own = bytes ?? body
    if (!plainArgs(own, use)) return false
    if (fromLight) {
      this.#headers = new PlatformHeaders(from.headers)
      if (own == null) {
        const length = LightResponse.#lengthSource(from)
        if (length !== undefined) HEAD_BODY.set(this, length)
      }
    }
    if (bytes !== undefined) this.#stream = body as ReadableStream<Uint8Array>
    this.#init = use
    // Bytes made by streamOf are never changed: no copy.
    this.#body = bytes ?? ownBody(own as string | Uint8Array | ArrayBuffer | null | undefined)
    return true
  }

  /** What tells the length of `r`'s body, when it was never realised nor its stream touched. */
  static #lengthSource(r: LightResponse): string | Uint8Array | undefined {
    if (r.#body === null) return HEAD_BODY.get(r)
    if (r.#real !== undefined) return undefined
    if (r.#stream !== undefined && untouchedBytes(r.#stream) === undefined) return undefined
    return r.#body
  }

  /**
   * For a HEAD request: the body whose length the answer declares, when
   * `r` was rebuilt with a null body from a response that had one
   * (`HEAD_BODY`); otherwise `undefined`.
   */
  static headBody(r: object): string | Uint8Array | undefined {
    return HEAD_BODY.get(r)
  }

  /** The platform response behind `r`, created on first need. */
  static real(r: LightResponse): Response {
    if (r.#real) return r.#real
    if (r.#stream !== undefined) {
      // The stream handed out (or given) is the body, whatever was read of it.
      r.#real = new PlatformResponse(r.#stream, { ...r.#init, headers: r.headers })
      r.#stream = undefined
    } else {
      const init = r.#headers ? { ...r.#init, headers: r.#headers } : r.#init
      r.#real = new PlatformResponse(r.#body as BodyInit | null, init)
    }
    r.#headers = undefined
    return r.#real
  }

  /**
   * Status, headers and body of a response never realised; `undefined`
   * once it was, or when its body stream has been read or locked.
   */
  static parts(r: object): LightParts | undefined {
    if (!(#real in r) || r.#real) return undefined
    // Read or locked: the server's general path reports it (`bodyUsed`).
    if (r.#stream !== undefined && untouchedBytes(r.#stream) === undefined) return undefined
    const body = r.#body
    return {
      status: r.#init?.status ?? 200,
      headers: r.#headers ?? r.#init?.headers,
      body,
      defaultType: typeof body === 'string' ? TEXT : undefined,
    }
  }

  get status(): number {
    return this.#real ? this.#real.status : (this.#init?.status ?? 200)
  }

  get ok(): boolean {
    const s = this.status
    return s >= 200 && s <= 299
  }

  get statusText(): string {
    return this.#real ? this.#real.statusText : (this.#init?.statusText ?? '')
  }

  get headers(): Headers {
    if (this.#real) return this.#real.headers
    if (this.#headers) return this.#headers
    const h = new PlatformHeaders(this.#init?.headers)
    if (typeof this.#body === 'string' && !h.has('content-type')) h.set('content-type', TEXT)
    return (this.#headers = h)
  }

  /**
   * The body as a byte stream. Made here, without the platform's response,
   * and known again when given to `new Response()` untouched.
   */
  get body(): ReadableStream<Uint8Array> | null {
    if (this.#real) return this.#real.body
    if (this.#stream !== undefined) return this.#stream
    const b = this.#body
    if (b === null) return null
    return (this.#stream = streamOf(typeof b === 'string' ? ENCODER.encode(b) : b))
  }

  get bodyUsed(): boolean {
    if (this.#real) return this.#real.bodyUsed
    return this.#stream !== undefined && isDisturbed(this.#stream)
  }

  get [Symbol.toStringTag](): string {
    return 'Response'
  }

  /** `Response.json(data, init)` without the platform's response. */
  static json(data: unknown, init?: ResponseInit): Response {
    const body = JSON.stringify(data)
    if (body === undefined) throw new TypeError('Response.json: the value is not JSON-serialisable')
    if (init === undefined) return new LightResponse(body, JSON_INIT) as unknown as Response
    let headers: HeadersInit = JSON_HEADERS
    if (init?.headers !== undefined) {
      const h = new PlatformHeaders(init.headers)
      if (!h.has('content-type')) h.set('content-type', 'application/json')
      headers = h
    }
    return new LightResponse(body, { ...init, headers }) as unknown as Response
  }

  static [Symbol.hasInstance](v: unknown): boolean {
    // `instanceof Response` (the replaced global) holds for platform responses too.
    if (this === LightResponse) return v instanceof PlatformResponse
    return Function.prototype[Symbol.hasInstance].call(this, v)
  }
}

// Everything else is answered by the platform's response.
delegateRest(LightResponse, PlatformResponse, (r) => LightResponse.real(r))
// Static methods not defined here (`redirect`, `error`) are the platform's.
Object.setPrototypeOf(LightResponse, PlatformResponse)

let choice: boolean | undefined

/**
 * Replaces `globalThis.Response` with the lightweight one (`true`) or puts
 * the platform's back (`false`). The fetch handlers of `serve()` and
 * `app.fetch()` turn it on when nothing chose before them.
 */
export function overrideGlobalResponse(on: boolean): void {
  choice = on
  const want = on ? (LightResponse as unknown as typeof Response) : PlatformResponse
  if (globalThis.Response !== want) {
    Object.defineProperty(globalThis, 'Response', { value: want, writable: true, configurable: true, enumerable: false })
  }
}

/** Turns the override on unless a choice was made already. */
export function defaultToLightResponse(): void {
  if (choice === undefined) overrideGlobalResponse(true)
}

/** The platform's own `Response`, whatever the global is now. */
export { PlatformResponse }
