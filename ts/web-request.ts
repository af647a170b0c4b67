/**
 * A standard (WHATWG) `Request` over HTTPy's own request, built lazily.
 *
 * `method`, `url` and `headers` are answered from the native record
 * without creating the platform's `Request` (`headers` is itself lazy:
 * `web-headers.ts`); `text()`, `json()` and
 * `arrayBuffer()` read the body HTTPy already holds (or, when it streams,
 * read HTTPy's stream to its end). `signal` is HTTPy's own. Anything else
 * (`body` as a stream, `formData()`, `clone()`, `cache`, …) creates the
 * real `Request` once, from those same values, and is answered by it from
 * then on. The object's prototype chain includes `Request.prototype`, so
 * `request instanceof Request` holds.
 */
import { delegateRest } from './delegate.js'
import type { Request as HttpyRequest } from './request.js'
import { WebHeaders } from './web-headers.js'

const GlobalRequest = globalThis.Request

/** Characters allowed in a `Host` value used to build the request URL. */
const HOST = /^[A-Za-z0-9\-._~%!$&'()*+,;=:[\]]+$/

/**
 * The last `Host` value found valid, and the URL prefix built from it:
 * clients send the same one on every request (and `req.host` hands back
 * the same string for the same bytes), so a string comparison replaces the
 * regular expression and one concatenation the two of the prefix.
 */
let lastHost = ''
let lastScheme = ''
let lastPrefix = ''
function validHost(host: string): boolean {
  if (!HOST.test(host)) return false
  lastHost = host
  lastScheme = ''
  return true
}

/** Methods whose requests carry no body in a standard `Request`. */
function bodyless(method: string): boolean {
  return method === 'GET' || method === 'HEAD'
}

/**
 * Where a request's URL comes from when the request has no usable `Host`
 * (an HTTP/1.0 client, a malformed value): the listening address.
 */
export type FallbackAuthority = () => string

/** The lazy request. Built by `fetch.ts` per request; its type to users is `globalThis.Request`. */
export class WebRequest {
  readonly #req: HttpyRequest
  readonly #fallback: FallbackAuthority
  #url: string | undefined
  #headers: WebHeaders | undefined
  #real: Request | undefined
  #used = false

  constructor(req: HttpyRequest, fallback: FallbackAuthority) {
    this.#req = req
    this.#fallback = fallback
  }

  /** The platform `Request`, created on first need. */
  static real(r: WebRequest): Request {
    return r.#realRequest()
  }

  #realRequest(): Request {
    if (this.#real) return this.#real
    const method = this.#req.method
    const headers = (this.#headers ??= new WebHeaders(this.#req))
    const init: RequestInit & { duplex?: 'half' } = {
      method,
      headers: WebHeaders.real(headers),
      signal: this.signal,
    }
    if (!bodyless(method)) {
      if (this.#used) {
        // The body was read through the fast path: the real request's is
        // consumed too, so `bodyUsed` and a second read behave as standard.
        init.body = new ReadableStream({ start: (c) => c.close() })
        init.duplex = 'half'
      } else if (this.#req.streamed) {
        // The socket, chunk by chunk, with backpressure.
        init.body = this.#req.stream() as unknown as BodyInit
        init.duplex = 'half'
      } else if (this.#req.body.byteLength > 0) {
        init.body = this.#req.body as unknown as BodyInit
      }
    }
    const real = new GlobalRequest(this.url, init)
    if (this.#used && !real.bodyUsed && real.body) void real.body.getReader().read().catch(() => {})
    // `request.headers` stays the same object, now answered by the real
    // request's own header list.
    WebHeaders.adopt(headers, real.headers)
    this.#real = real
    return real
  }

  get method(): string {
    return this.#req.method
  }

  /** Absolute URL: scheme (proxy-aware with `trustProxy`), `Host` (or the listening address), path and query. */
  get url(): string {
    if (this.#url !== undefined) return this.#url
    const req = this.#req
    // Written whole by the core when the request has one usable `Host`:
    // one slice, already flat (no concatenation for Hono's `getPath` to
    // flatten on its first read).
    const whole = req._absoluteUrl()
    if (whole !== undefined) return (this.#url = whole)
    const host = req.host
    const scheme = req.scheme
    if (host !== null && host.length > 0 && (host === lastHost || validHost(host))) {
      if (scheme !== lastScheme) {
        lastScheme = scheme
        lastPrefix = `${scheme}://${host}`
      }
      return (this.#url = lastPrefix + req.url)
    }
    return (this.#url = `${scheme}://${this.#fallback()}${req.url}`)
  }

  /** The lazy `Headers` (`web-headers.ts`): one header read from the record costs one header. */
  get headers(): Headers {
    return (this.#headers ??= new WebHeaders(this.#req)) as unknown as Headers
  }

  /**
   * Aborted when the client goes away before the response is delivered
   * (HTTPy's `req.signal`); watched only once read.
   */
  get signal(): AbortSignal {
    return this.#req.signal
  }

  get bodyUsed(): boolean {
    return this.#real ? this.#real.bodyUsed : this.#used
  }

  /** Reads the body, once, as the standard body methods do. */
  #read<T>(convert: (body: Buffer | null) => T): Promise<T> {
    try {
      if (this.#used) throw new TypeError('Body is unusable: Body has already been read')
      this.#used = true
      if (bodyless(this.#req.method)) return Promise.resolve(convert(null))
      if (this.#req.streamed) return this.#req.bytes().then(convert)
      return Promise.resolve(convert(this.#req.body))
    } catch (e) {
      return Promise.reject(e)
    }
  }

  text(): Promise<string> {
    if (this.#real) return this.#real.text()
    return this.#read((b) => (b === null ? '' : b.toString('utf8')))
  }

  json(): Promise<unknown> {
    if (this.#real) return this.#real.json()
    return this.#read((b) => JSON.parse(b === null ? '' : b.toString('utf8')) as unknown)
  }

  /**
   * A `multipart/form-data` body is parsed by the core while it streams,
   * with the route's multipart limits (past one, the client gets 413 naming
   * it and this rejects; a malformed body, 400); other forms go to the
   * platform's parser.
   */
  formData(): Promise<FormData> {
    if (this.#real || !this.#req._partsOnAsk) return WebRequest.real(this).formData()
    try {
      if (this.#used) throw new TypeError('Body is unusable: Body has already been read')
      this.#used = true
      return this.#req.formData()
    } catch (e) {
      return Promise.reject(e)
    }
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    if (this.#real) return this.#real.arrayBuffer()
    return this.#read((b) => {
      const out = new ArrayBuffer(b === null ? 0 : b.byteLength)
      if (b !== null) new Uint8Array(out).set(b)
      return out
    })
  }

  get [Symbol.toStringTag](): string {
    return 'Request'
  }
}

// Everything else is answered by the platform's request.
delegateRest(WebRequest, GlobalRequest, (r) => WebRequest.real(r))
