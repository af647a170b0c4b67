/**
 * The `headers` of the fetch path's standard `Request` (`web-request.ts`),
 * built lazily. Handlers and frameworks mostly ask for one header or two
 * (Hono's `c.req.header(name)`, `hono/cookie`, `hono/cors` all call
 * `headers.get`), so `get(name)` and `has(name)` are answered from the
 * native record, comparing the bytes of each header name there with
 * `name`, without decoding the other headers into strings or building a
 * header list. Anything else (iteration, `set`/`append`/`delete`,
 * `getSetCookie`, a name the standard refuses, whose error the platform
 * words) creates the platform's `Headers` once, from every header of the
 * record, and is answered by it from then on. The prototype chain includes
 * `Headers.prototype`, so `headers instanceof Headers` holds.
 */
import { inspect } from 'node:util'
import { delegateRest } from './delegate.js'
import type { Request as HttpyRequest } from './request.js'

const PlatformHeaders: typeof Headers = globalThis.Headers

/** A header name as the standard accepts it (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * Valid names already seen, with their lower-case form: code asks for the
 * same few names on every request, and a Map lookup costs less than the
 * regular expression and the case conversion. Bounded: past the limit,
 * names are checked every time.
 */
const NAMES = new Map<string, string>()
const NAMES_MAX = 256

/** `name` in lower case when it is a valid header name, otherwise `undefined`. */
function lowerName(name: unknown): string | undefined {
  if (typeof name !== 'string') return undefined
  const known = NAMES.get(name)
  if (known !== undefined) return known
  if (!TOKEN.test(name)) return undefined
  const lower = name.toLowerCase()
  if (NAMES.size < NAMES_MAX) NAMES.set(name, lower)
  return lower
}

/** The lazy request headers. Its type to users is `globalThis.Headers`. */
export class WebHeaders {
  readonly #req: HttpyRequest
  #real: Headers | undefined

  constructor(req: HttpyRequest) {
    this.#req = req
  }

  /** The platform `Headers` holding every header of the record, created on first need. */
  static real(h: WebHeaders): Headers {
    if (h.#real !== undefined) return h.#real
    const real = new PlatformHeaders()
    for (const [name, value] of h.#req.headers) real.append(name, value)
    h.#real = real
    return real
  }

  /**
   * Hands every later call to `headers`, the header list of the platform
   * `Request` created from these (so a change made through
   * `request.headers` is that request's, as standard).
   */
  static adopt(h: WebHeaders, headers: Headers): void {
    h.#real = headers
  }

  get(name: string): string | null {
    if (this.#real === undefined) {
      const key = lowerName(name)
      if (key !== undefined) return this.#req._header(key)
    }
    // Also a missing or invalid name: the platform throws its own TypeError.
    return Reflect.apply(PlatformHeaders.prototype.get, WebHeaders.real(this), arguments) as string | null
  }

  has(name: string): boolean {
    if (this.#real === undefined) {
      const key = lowerName(name)
      if (key !== undefined) return this.#req._header(key) !== null
    }
    return Reflect.apply(PlatformHeaders.prototype.has, WebHeaders.real(this), arguments) as boolean
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return WebHeaders.real(this)[Symbol.iterator]() as IterableIterator<[string, string]>
  }

  [inspect.custom](depth: number, options: object): string {
    return inspect(WebHeaders.real(this), { ...options, depth })
  }
}

// Everything else (append, set, delete, getSetCookie, entries, keys,
// values, forEach) is answered by the platform's Headers.
delegateRest(WebHeaders, PlatformHeaders, (h) => WebHeaders.real(h))
