/**
 * The request seen by handlers. It wraps one record of a native batch
 * buffer (layout: `RecordAt` in `src/contract.rs`, read with `record.ts`)
 * and decodes each field only when a handler first reads it: a handler that
 * looks at nothing but a path parameter never pays for headers, query
 * parsing or strings it ignores.
 */
import { HttpyError } from './errors.js'
import type { ReadonlyHeaders } from './headers.js'
import { HttpError } from './http-error.js'
import { AbortState } from './native.js'
import { resolveClient, type ClientView, type TrustFn } from './proxy.js'
import type { TlsInfo } from './tls.js'
import {
  CLIENT_CERT_NONE,
  CLIENT_CERT_VERIFIED,
  EXTERNAL,
  FLAG_ALLOW,
  FLAG_MULTIPART,
  FLAG_PARTS_ON_ASK,
  FLAG_STREAMED,
  FLAG_TLS,
  FLAG_TLS_PEER,
  FLAG_URL,
  RECORD_FLAGS,
  RECORD_HEADER_COUNT,
  RECORD_ID,
  RECORD_LENGTH,
  RECORD_METHOD,
  RECORD_PARAM_COUNT,
  RECORD_ROUTE,
  RECORD_VERSION,
  u16,
  u32,
  VERSIONS,
  type HttpVersion,
} from './record.js'
import { formDataOf, partsOf, type Part } from './multipart.js'
import { readAll, uploadStream, type RequestLink } from './stream.js'

export type { HttpVersion }

/** Read-only, case-insensitive view of request headers. */
class RequestHeaders implements ReadonlyHeaders {
  readonly #names: string[]
  readonly #values: string[]
  constructor(names: string[], values: string[]) {
    this.#names = names
    this.#values = values
  }
  get(name: string): string | null {
    const key = name.toLowerCase()
    let found: string | null = null
    for (let i = 0; i < this.#names.length; i++) {
      if (this.#names[i] === key) {
        const v = this.#values[i] as string
        found = found === null ? v : `${found}${key === 'cookie' ? '; ' : ', '}${v}`
      }
    }
    return found
  }
  getAll(name: string): string[] {
    const key = name.toLowerCase()
    const out: string[] = []
    for (let i = 0; i < this.#names.length; i++) if (this.#names[i] === key) out.push(this.#values[i] as string)
    return out
  }
  has(name: string): boolean {
    return this.#names.includes(name.toLowerCase())
  }
  *entries(): IterableIterator<[string, string]> {
    for (let i = 0; i < this.#names.length; i++) yield [this.#names[i] as string, this.#values[i] as string]
  }
  keys(): IterableIterator<string> {
    return this.#names.values()
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries()
  }
  forEach(fn: (value: string, name: string) => void): void {
    for (let i = 0; i < this.#names.length; i++) fn(this.#values[i] as string, this.#names[i] as string)
  }
  toJSON(): Record<string, string> {
    const o: Record<string, string> = {}
    for (const k of new Set(this.#names)) o[k] = this.get(k) as string
    return o
  }
  get size(): number {
    return this.#names.length
  }
}

/**
 * Methods decoded without a native call: `latin1Slice` costs about 35 ns
 * per string, comparing a few bytes with a constant a few, and a constant
 * is an internalized string, which frameworks then use as a property key
 * (Hono's router) without hashing it first.
 */
function knownMethod(b: Buffer, at: number, len: number): string | undefined {
  // By length, then the first byte: at most one comparison of the rest.
  let m: string
  switch (len) {
    case 3:
      m = b[at] === 71 ? 'GET' : 'PUT'
      break
    case 4:
      m = b[at] === 80 ? 'POST' : 'HEAD'
      break
    case 5:
      m = 'PATCH'
      break
    case 6:
      m = 'DELETE'
      break
    case 7:
      m = 'OPTIONS'
      break
    default:
      return undefined
  }
  return sameBytes(b, at, len, m) ? m : undefined
}

/**
 * The last value read for each of a few header names: a client sends the
 * same `Host`, `Accept` or `Cookie` on each request, so when the record
 * holds the same bytes as the value last read under that name, that string
 * is returned instead of decoding a new one (a byte comparison costs about
 * half the native call). One entry per name, so an app that reads two
 * headers per request keeps both (a single entry for all names was
 * replaced on every read). Names are compared with `===`: the callers
 * pass the same string each time (a constant, or the lower-case form
 * `web-headers.ts` keeps), so a lookup is a few pointer comparisons. At
 * most `VALUE_SLOTS` names; past that, the oldest name's slot is reused.
 */
const VALUE_SLOTS = 8
const slotNames: string[] = []
const slotValues: string[] = []
let nextSlot = 0

function slotOf(name: string): number {
  for (let i = 0; i < slotNames.length; i++) if (slotNames[i] === name) return i
  const i = nextSlot
  nextSlot = (nextSlot + 1) % VALUE_SLOTS
  slotNames[i] = name
  slotValues[i] = ''
  return i
}

/** `len` bytes of `b` at `at` as a string, the one last read under `name` when the bytes are the same. */
function valueOf(b: Buffer, at: number, len: number, name: string): string {
  const i = slotOf(name)
  const last = slotValues[i] as string
  return sameBytes(b, at, len, last) ? last : (slotValues[i] = b.latin1Slice(at, at + len))
}

/**
 * A path parameter's value (UTF-8, percent-decoded by the core). A short
 * ASCII value (an id, a slug) is built here, a character at a time: up to
 * 12 characters V8 makes a flat string of each step, and the loop costs
 * less than the `utf8Slice` C++ call (~0.1 µs of fixed cost on Node 20;
 * docs/performance.md §17.9). Longer or non-ASCII values take the call.
 */
const SHORT_PARAM = 12

function paramOf(b: Buffer, at: number, len: number): string {
  if (len <= SHORT_PARAM) {
    let s = ''
    let j = 0
    for (; j < len; j++) {
      const c = b[at + j] as number
      if (c > 0x7f) break
      s += String.fromCharCode(c)
    }
    if (j === len) return s
  }
  return b.utf8Slice(at, at + len)
}

function sameBytes(b: Buffer, at: number, len: number, s: string): boolean {
  if (s.length !== len) return false
  for (let j = 0; j < len; j++) if (b[at + j] !== s.charCodeAt(j)) return false
  return true
}

/**
 * An HTTP request.
 *
 * ```ts
 * get('/api/users/{id}', (req) => Response.json({ id: req.pathParams.id, q: req.query.get('q') }))
 * ```
 */
export class Request {
  /** @internal */ readonly _id: number
  /** @internal */ readonly _route: number
  readonly #buf: Buffer
  readonly #external: Buffer[]
  readonly #paramNames: readonly string[]
  // Offsets into #buf, found by one pass over the fixed part of the record.
  readonly #paramCount: number
  readonly #headerCount: number
  readonly #flags: number
  readonly #version: number
  readonly #methodAt: number
  readonly #pathAt: number
  readonly #queryAt: number
  readonly #ipAt: number
  #restAt: number
  #method?: string
  #path?: string
  #queryString?: string
  #query?: URLSearchParams
  #params?: Record<string, string>
  #headers?: RequestHeaders
  #body?: Buffer
  #allow?: string | null
  #tls?: TlsInfo | null
  /** Offset of the header block (set by `#headerBlock`), -1 until found. */
  #headersAt = -1
  /** Offset of the TLS peer facts (set by `#headerBlock`), -1 when absent. */
  #peerAt = -1
  #ip?: string
  readonly #trust: TrustFn | undefined
  #client?: ClientView
  readonly #link: RequestLink | undefined
  #bodyTaken = false
  #collecting?: Promise<Buffer>
  #abort?: AbortController

  /** @internal Built by the server from a native record. */
  constructor(
    buf: Buffer,
    at: number,
    external: Buffer[],
    paramNamesOf: (route: number) => readonly string[],
    trust?: TrustFn,
    link?: RequestLink,
  ) {
    this.#trust = trust
    this.#link = link
    this.#buf = buf
    this.#external = external
    this._id = u32(buf, at + RECORD_ID)
    this._route = u32(buf, at + RECORD_ROUTE)
    this.#version = buf[at + RECORD_VERSION] as number
    this.#flags = buf[at + RECORD_FLAGS] as number
    this.#paramCount = u16(buf, at + RECORD_PARAM_COUNT)
    this.#headerCount = u16(buf, at + RECORD_HEADER_COUNT)
    let o = at + RECORD_METHOD
    this.#methodAt = o
    o += 2 + u16(buf, o)
    this.#pathAt = o
    o += 4 + u32(buf, o)
    this.#queryAt = o
    o += 4 + u32(buf, o)
    this.#ipAt = o
    o += 2 + u16(buf, o) + 2
    this.#restAt = o
    this.#paramNames = paramNamesOf(this._route)
  }

  /** Upper-case method, e.g. `GET`. */
  get method(): string {
    if (this.#method !== undefined) return this.#method
    const b = this.#buf
    const at = this.#methodAt + 2
    const len = u16(b, this.#methodAt)
    return (this.#method = knownMethod(b, at, len) ?? b.latin1Slice(at, at + len))
  }

  /** Path as received, percent-encoded, without the query string. */
  get path(): string {
    return (this.#path ??= this.#buf.latin1Slice(this.#pathAt + 4, this.#pathAt + 4 + u32(this.#buf, this.#pathAt)))
  }

  /** Raw query string without `?` (empty when there is none). */
  get queryString(): string {
    if (this.#queryString !== undefined) return this.#queryString
    const len = u32(this.#buf, this.#queryAt)
    // Most requests have no query: no native call for an empty string.
    return (this.#queryString = len === 0 ? '' : this.#buf.latin1Slice(this.#queryAt + 4, this.#queryAt + 4 + len))
  }

  /** Parsed query string. */
  get query(): URLSearchParams {
    return (this.#query ??= new URLSearchParams(this.queryString))
  }

  /** Path + query, as in the request line. */
  get url(): string {
    const q = this.queryString
    return q ? `${this.path}?${q}` : this.path
  }

  /** Values of the route's `{name}` parameters, percent-decoded. */
  get pathParams(): Record<string, string> {
    if (this.#params) return this.#params
    const params: Record<string, string> = {}
    let o = this.#restAt
    for (let i = 0; i < this.#paramCount; i++) {
      const len = u32(this.#buf, o)
      const name = this.#paramNames[i]
      if (name !== undefined) params[name] = paramOf(this.#buf, o + 4, len)
      o += 4 + len
    }
    return (this.#params = params)
  }

  /**
   * Offset of the header block: the first call walks the parameters, the
   * allow list and the TLS peer facts (noting where those facts are), and
   * the offset is kept, so a second header read (`Host` for a fetch
   * handler's URL, then one its code asks for) starts there at once. The
   * allow list is sliced only when `_allow` is read.
   */
  #headerBlock(): number {
    if (this.#headersAt >= 0) return this.#headersAt
    let o = this.#restAt
    for (let i = 0; i < this.#paramCount; i++) o += 4 + u32(this.#buf, o)
    if (this.#flags & FLAG_ALLOW) o += 2 + u16(this.#buf, o)
    if (this.#flags & FLAG_TLS_PEER) {
      this.#peerAt = o
      o += 2 + u16(this.#buf, o)
      if (this.#buf[o++] !== CLIENT_CERT_NONE) {
        o += 2 + u16(this.#buf, o)
        o += 2 + u16(this.#buf, o)
      }
    }
    return (this.#headersAt = o)
  }

  /**
   * The TLS connection's SNI name and client certificate (`null` in
   * cleartext). The certificate is there when the client sent one (`tls:
   * { requestCert: true, ca }`).
   */
  get tls(): TlsInfo | null {
    if (this.#tls !== undefined) return this.#tls
    if (!(this.#flags & FLAG_TLS)) return (this.#tls = null)
    this.#headerBlock()
    let o = this.#peerAt
    if (o < 0) return (this.#tls = { servername: null, clientCertificate: null })
    const b = this.#buf
    const str = (at: number): string => b.utf8Slice(at + 2, at + 2 + u16(b, at))
    const servername = str(o) || null
    o += 2 + u16(b, o)
    const kind = b[o++]
    if (kind === CLIENT_CERT_NONE) return (this.#tls = { servername, clientCertificate: null })
    const subject = str(o)
    o += 2 + u16(b, o)
    return (this.#tls = {
      servername,
      clientCertificate: { subject, fingerprint256: str(o), authorized: kind === CLIENT_CERT_VERIFIED },
    })
  }

  /** Request headers (names are lower-case). */
  get headers(): RequestHeaders {
    if (this.#headers) return this.#headers
    let o = this.#headerBlock()
    const names: string[] = new Array(this.#headerCount)
    const values: string[] = new Array(this.#headerCount)
    for (let i = 0; i < this.#headerCount; i++) {
      const nl = u16(this.#buf, o)
      names[i] = this.#buf.latin1Slice(o + 2, o + 2 + nl)
      o += 2 + nl
      const vl = u32(this.#buf, o)
      values[i] = this.#buf.latin1Slice(o + 4, o + 4 + vl)
      o += 4 + vl
    }
    this.#headers = new RequestHeaders(names, values)
    this.#bodyAt = o
    return this.#headers
  }

  #bodyAt = -1

  /**
   * True when the body streams (a route with `streamBody`, or a fetch
   * handler, and a body longer than 64 KiB or of unknown length): read it
   * with `stream()` or `await bytes()/text()/json()`; `body` throws.
   */
  get streamed(): boolean {
    return (this.#flags & FLAG_STREAMED) !== 0
  }

  /**
   * The whole request body (empty when there is none). On a streamed
   * request, only after `await req.bytes()` (or `text()`/`json()`);
   * before, it throws `ERR_HTTPY_BODY_STREAMED`.
   */
  get body(): Buffer {
    if (this.#body) return this.#body
    if (this.#flags & FLAG_STREAMED) {
      throw new HttpyError(
        'ERR_HTTPY_BODY_STREAMED',
        `the body of ${this.method} ${this.path} streams: read it with req.stream(), or await req.bytes(), req.text() or req.json()`,
      )
    }
    if (this.#bodyAt < 0) void this.headers
    const o = this.#bodyAt
    const len = u32(this.#buf, o)
    if (this.#buf[o + 4] === EXTERNAL) {
      this.#body = this.#external[1 + u32(this.#buf, o + 5)] as Buffer
    } else {
      this.#body = this.#buf.subarray(o + 5, o + 5 + len)
    }
    return this.#body
  }

  /**
   * The body as a web `ReadableStream` of `Uint8Array` chunks, readable
   * once (`for await (const chunk of req.stream())`, `pipeTo`,
   * `Readable.fromWeb`). On a streamed request the chunks come from the
   * socket as the consumer asks for them: while it does not read, the
   * client is not read either. Past `maxBodySize` the client gets 413 and
   * the stream errors with `ERR_HTTPY_BODY_TOO_LARGE`; a client that leaves
   * mid-body errors it with `ERR_HTTPY_BODY_ABORTED`.
   */
  stream(): ReadableStream<Uint8Array> {
    if (this.#flags & FLAG_MULTIPART) {
      throw new HttpyError(
        'ERR_HTTPY_BODY_STREAMED',
        `the multipart body of ${this.method} ${this.path} was parsed by the server: read it with req.parts() or req.formData()`,
      )
    }
    if (this.#bodyTaken) throw new HttpyError('ERR_HTTPY_BODY_USED', 'the request body was already read')
    this.#bodyTaken = true
    if (this.#flags & FLAG_STREAMED) return uploadStream(this.#link, this._id, false, () => this._clientGone())
    const body = this.body
    return new ReadableStream<Uint8Array>({
      start(c) {
        if (body.length !== 0) c.enqueue(body)
        c.close()
      },
    })
  }

  /**
   * The parts of a `multipart/form-data` body, one after another, on a
   * route with the `multipart` option: the server parses the body as it
   * arrives and enforces the route's limits (413 naming the limit; a
   * malformed body is a 400 naming the problem, and the iteration throws).
   * Read each part (`part.stream()`, `bytes()`, `text()`) before asking for
   * the next; what is left unread is skipped.
   *
   * ```ts
   * for await (const part of req.parts()) {
   *   if (part.filename) await pipeline(Readable.fromWeb(part.stream()), createWriteStream(dest(part.filename)))
   *   else fields[part.name] = await part.text()
   * }
   * ```
   */
  parts(): AsyncGenerator<Part, void, undefined> {
    if (!(this.#flags & (FLAG_MULTIPART | FLAG_PARTS_ON_ASK))) {
      const type = this.headers.get('content-type') ?? 'none'
      throw new HttpyError(
        'ERR_HTTPY_NOT_SUPPORTED',
        `req.parts() needs a multipart/form-data body on a route with the multipart option (this one: content-type ${type})`,
      )
    }
    if (this.#bodyTaken) throw new HttpyError('ERR_HTTPY_BODY_USED', 'the request body was already read')
    this.#bodyTaken = true
    return partsOf(uploadStream(this.#link, this._id, (this.#flags & FLAG_PARTS_ON_ASK) !== 0, () => this._clientGone()))
  }

  /**
   * @internal A fetch route's `multipart/form-data` body, not read yet:
   * `formData()`/`parts()` have the core parse it, `stream()` gives its bytes.
   */
  get _partsOnAsk(): boolean {
    return (this.#flags & FLAG_PARTS_ON_ASK) !== 0 && !this.#bodyTaken
  }

  /**
   * The body as a standard `FormData`: the parts the server parsed (a
   * multipart route; files become `File`s, held in memory), or otherwise a
   * `multipart/form-data` or `application/x-www-form-urlencoded` body read
   * whole and parsed by the platform.
   */
  async formData(): Promise<FormData> {
    if (this.#flags & (FLAG_MULTIPART | FLAG_PARTS_ON_ASK)) return formDataOf(this.parts())
    const type = this.headers.get('content-type') ?? ''
    const body = this.#flags & FLAG_STREAMED ? await this.bytes() : this.body
    try {
      return await new globalThis.Response(body as Uint8Array<ArrayBuffer>, {
        headers: { 'content-type': type },
      }).formData()
    } catch (e) {
      throw new HttpError(400, `invalid form body (content-type ${type || 'none'}): ${e instanceof Error ? e.message : String(e)}`, { cause: e })
    }
  }

  /** The whole body, read to its end when it streams (then kept: `body` returns it too). */
  bytes(): Promise<Buffer> {
    if (!(this.#flags & FLAG_STREAMED) || this.#body) return Promise.resolve(this.body)
    return (this.#collecting ??= readAll(this.stream()).then((b) => (this.#body = b)))
  }

  /** The body decoded as UTF-8. */
  async text(): Promise<string> {
    return (this.#flags & FLAG_STREAMED ? await this.bytes() : this.body).toString('utf8')
  }

  /**
   * The body parsed as JSON. Invalid JSON (an empty body included) rejects
   * with `HttpError(400)`, so a handler that lets it propagate answers
   * `400 invalid JSON body: …` rather than a 500; the `SyntaxError` is its
   * `cause`.
   */
  async json<T = unknown>(): Promise<T> {
    const body = this.#flags & FLAG_STREAMED ? await this.bytes() : this.body
    try {
      return JSON.parse(body.toString('utf8')) as T
    } catch (e) {
      throw new HttpError(400, `invalid JSON body: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
    }
  }

  /**
   * Aborted when the response can no longer be delivered: the client
   * closed the connection or reset the stream, or the server answered in
   * the handler's place (`requestTimeout`, a 413 mid-upload), or a
   * streamed response found its client gone. Watching starts when this is
   * first read, so requests that never look at it pay nothing.
   */
  get signal(): AbortSignal {
    if (this.#abort) return this.#abort.signal
    const c = (this.#abort = new AbortController())
    const state = this.#link?.watchAbort(this._id, () => this._clientGone()) ?? AbortState.Answered
    if (state === AbortState.Gone) this._clientGone()
    return c.signal
  }

  /** @internal The answer can no longer be delivered. */
  _clientGone(): void {
    const c = this.#abort
    if (c && !c.signal.aborted) {
      c.abort(new DOMException('the client went away before the response was delivered', 'AbortError'))
    }
  }

  /** `'1.0'`, `'1.1'`, `'2'` or `'3'`. */
  get httpVersion(): HttpVersion {
    return VERSIONS[this.#version] ?? '1.1'
  }

  /**
   * `'https'` when the connection is TLS, else `'http'`; behind a trusted
   * proxy (`trustProxy`), the scheme the client used with the proxy.
   */
  get scheme(): 'http' | 'https' {
    return this.#trust ? this.#fromProxy().scheme : this.#ownScheme()
  }

  #ownScheme(): 'http' | 'https' {
    return this.#flags & FLAG_TLS ? 'https' : 'http'
  }

  #fromProxy(): ClientView {
    return (this.#client ??= resolveClient(
      this.#trust as TrustFn,
      this.remoteAddress,
      this.#ownScheme(),
      this.headers.get('host'),
      this.headers,
    ))
  }

  /** Peer address of the TCP connection. */
  get remoteAddress(): string {
    return (this.#ip ??= this.#buf.latin1Slice(this.#ipAt + 2, this.#ipAt + 2 + u16(this.#buf, this.#ipAt)))
  }

  get remotePort(): number {
    return u16(this.#buf, this.#ipAt + 2 + u16(this.#buf, this.#ipAt))
  }

  /**
   * Client address: the connection's peer, or, when the peer is a trusted
   * proxy (`trustProxy`), the address it reports (`Forwarded`,
   * `X-Forwarded-For`, `X-Real-IP`).
   */
  get ip(): string {
    return this.#trust ? this.#fromProxy().ip : this.remoteAddress
  }

  /** `Host` header value, if any; behind a trusted proxy, its `X-Forwarded-Host`/`Forwarded: host=`. */
  get host(): string | null {
    return this.#trust ? this.#fromProxy().host : this.#header('host')
  }

  /**
   * The value of header `name` (lower case), as `headers.get(name)` gives
   * it, read from the record without decoding the other headers: a fetch
   * handler's `request.url` needs `Host` on every request, and decoding a
   * browser's dozen headers into strings cost more than the rest of its
   * path. Names are compared byte by byte (the core lower-cases them).
   */
  #header(name: string): string | null {
    if (this.#headers) return this.#headers.get(name)
    // The one `Host` of a record with the URL trailer: no walk.
    if (this.#flags & FLAG_URL && name === 'host') return this.#urlHost()
    const b = this.#buf
    let o = this.#headerBlock()
    let found: string | null = null
    for (let i = 0; i < this.#headerCount; i++) {
      const nl = u16(b, o)
      let same = nl === name.length
      for (let j = 0; same && j < nl; j++) same = b[o + 2 + j] === name.charCodeAt(j)
      o += 2 + nl
      const vl = u32(b, o)
      if (same) {
        const v = valueOf(b, o + 4, vl, name)
        found = found === null ? v : `${found}${name === 'cookie' ? '; ' : ', '}${v}`
      }
      o += 4 + vl
    }
    this.#bodyAt = o
    return found
  }

  /**
   * The URL trailer (`RecordFlag.Url`, written by the core when the request
   * has exactly one `Host`, made of characters an authority may hold):
   * `scheme://host path ?query`, then its u32 length as the record's last
   * four bytes; this returns where that length is (the URL's end).
   */
  #urlEnd(): number {
    const at = this.#methodAt - RECORD_METHOD
    return at + u32(this.#buf, at + RECORD_LENGTH) - 4
  }

  /** The `Host` value inside the URL trailer, between `scheme://` and the path. */
  #urlHost(): string {
    const b = this.#buf
    const end = this.#urlEnd()
    const at = end - u32(b, end)
    const scheme = this.#flags & FLAG_TLS ? 8 : 7 // "https://" or "http://"
    const pathLen = u32(b, this.#pathAt)
    const queryLen = u32(b, this.#queryAt)
    const hostLen = end - at - scheme - pathLen - (queryLen === 0 ? 0 : 1 + queryLen)
    return valueOf(b, at + scheme, hostLen, 'host')
  }

  /**
   * @internal The absolute URL as the core wrote it after the record
   * (`scheme://host`, path, `?query`): one flat string from one slice, for
   * a fetch handler's `request.url`. `undefined` when the record has none
   * (no usable `Host`) or a trusted proxy's headers decide the scheme and
   * host: the caller builds it then.
   */
  _absoluteUrl(): string | undefined {
    if (!(this.#flags & FLAG_URL) || this.#trust) return undefined
    const end = this.#urlEnd()
    return this.#buf.latin1Slice(end - u32(this.#buf, end), end)
  }

  /**
   * @internal One header's value (`name` lower case, combined as
   * `headers.get` combines them) without decoding the others: the fetch
   * path's lazy `Headers` (`web-headers.ts`) answers `get`/`has` with it.
   */
  _header(name: string): string | null {
    return this.#header(name)
  }

  /** @internal Methods allowed on this path when no route matched this method. */
  get _allow(): string | null {
    if (this.#allow !== undefined) return this.#allow
    if (!(this.#flags & FLAG_ALLOW)) return (this.#allow = null)
    // Read for a 405 only: the parameters are walked again here rather
    // than the list's offset kept on every request.
    let o = this.#restAt
    for (let i = 0; i < this.#paramCount; i++) o += 4 + u32(this.#buf, o)
    return (this.#allow = this.#buf.latin1Slice(o + 2, o + 2 + u16(this.#buf, o)))
  }
}

declare global {
  interface Buffer {
    latin1Slice(start: number, end: number): string
    utf8Slice(start: number, end: number): string
  }
}
