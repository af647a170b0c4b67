/**
 * A standard (WHATWG) `Response` turned into HTTPy's own, for the server's
 * usual paths: a body the platform holds as a string or bytes goes through
 * the batched whole-body path without being read through a stream; a
 * `ReadableStream` body is streamed with backpressure; any other body
 * (a `Blob`, `FormData`, a used-then-rebuilt stream) is read whole first.
 */
import { HttpyTypeError } from './errors.js'
import { Headers as HttpyHeaders, onlyName, type HeadersInit as HttpyHeadersInit } from './headers.js'
import { LightResponse, PlatformResponse } from './light-response.js'
import { Response as HttpyResponse } from './response.js'

/** The shape of the platform's internal body record that this module reads. */
interface BodyState {
  stream?: ReadableStream<Uint8Array> | null
  source?: unknown
}
interface ResponseState {
  body?: BodyState | null
}

/**
 * The key under which Node's `Response` keeps its state. Reading the body's
 * source from it avoids creating and draining a stream for the common
 * `new Response('text')` / `Response.json(…)`. When a Node version stores
 * it differently, the key is not found and every body takes the general
 * path below (correct, only slower).
 */
const STATE: symbol | undefined = (() => {
  try {
    const probe = new PlatformResponse('x')
    for (const k of Object.getOwnPropertySymbols(probe)) {
      const v = (probe as unknown as Record<symbol, unknown>)[k] as ResponseState | undefined
      if (String(k) === 'Symbol(state)' && v && typeof v === 'object' && v.body && v.body.source === 'x') return k
    }
  } catch {
    // fall through: no fast path
  }
  return undefined
})()

function statusOf(res: Response): number {
  const status = res.status
  if (status < 200 || status > 999) {
    throw new HttpyTypeError(
      'ERR_HTTPY_INVALID_RESPONSE',
      res.type === 'error'
        ? 'fetch handler returned Response.error(), which has no status to send'
        : `fetch handler returned a Response with status ${status}`,
    )
  }
  return status
}

function headersOf(res: Response): HttpyHeaders {
  const out = new HttpyHeaders()
  // Iteration yields each Set-Cookie on its own and the others joined.
  // A `Content-Length` goes along: the core drops it from a whole body's
  // answer (it frames the body itself) and keeps it only on a HEAD answer
  // without a body, where it tells what a GET would carry.
  for (const [name, value] of res.headers) out.append(name, value)
  return out
}

/**
 * Checked header sets of light responses with at most one field, by field
 * name and value (and the default content type): handlers and frameworks
 * give the same field on every response (Hono's `c.json()` and `c.text()`
 * pass one `Content-Type`), so each response gets a copy-on-write copy of
 * a template whose wire form is already built, instead of checking,
 * storing and serialising the field again. The lookups are by strings the
 * code holds as constants (their hashes cached), not by a key built per
 * response. Bounded: past the limit, new sets are built every time.
 */
const TEMPLATES: [Map<string, Map<string, HttpyHeaders>>, Map<string, Map<string, HttpyHeaders>>] = [new Map(), new Map()]
let templateCount = 0
const TEMPLATES_MAX = 256
/** Templates of responses given no headers at all: without and with a default content type. */
const NO_FIELDS: Map<string | undefined, HttpyHeaders> = new Map()

/** HTTPy headers for a light response's init (a `Content-Length` among them is settled by the core, as in `headersOf`). */
function lightHeaders(init: HeadersInit | undefined, defaultType: string | undefined): HttpyHeaders {
  let byValue: Map<string, HttpyHeaders> | undefined
  let value = ''
  if (init === undefined) {
    const t = NO_FIELDS.get(defaultType)
    if (t !== undefined) return new HttpyHeaders(t)
  } else if (typeof init === 'object' && init !== null) {
    const name = onlyName(init)
    if (name !== undefined) {
      const byName = TEMPLATES[defaultType === undefined ? 0 : 1]
      value = (init as Record<string, string>)[name] as string
      byValue = byName.get(name)
      const t = byValue?.get(value)
      if (t !== undefined) return new HttpyHeaders(t)
      if (byValue === undefined && templateCount < TEMPLATES_MAX) byName.set(name, (byValue = new Map()))
    }
  }
  const headers = new HttpyHeaders(init as HttpyHeadersInit | undefined)
  if (defaultType !== undefined && !headers.has('content-type')) headers.set('content-type', defaultType)
  if (templateCount >= TEMPLATES_MAX || (init !== undefined && byValue === undefined)) return headers
  // The template itself is never handed out: every response gets a copy,
  // which makes its own map on its first change.
  headers._template()
  templateCount++
  if (init === undefined) NO_FIELDS.set(defaultType, headers)
  else byValue?.set(value, headers)
  return new HttpyHeaders(headers)
}

function known(source: unknown): source is string | Uint8Array {
  return typeof source === 'string' || source instanceof Uint8Array
}

/**
 * `out`, made from `res`, answering a HEAD request: a light response
 * rebuilt with a null body from one that had a body (Hono's HEAD:
 * `new Response(null, await getResponse)`) is given that body, which the
 * core measures for `Content-Length` and leaves out, as it does for
 * HTTPy's own handlers.
 */
export function forHead(out: HttpyResponse | Promise<HttpyResponse>, res: unknown): HttpyResponse | Promise<HttpyResponse> {
  if (out instanceof HttpyResponse && out.body === null) {
    const body = LightResponse.headBody(res as object)
    if (body !== undefined) out.body = body
  }
  return out
}

/** `toHttpyResponse` for a HEAD request (`forHead`). */
export function toHttpyHeadResponse(res: unknown): HttpyResponse | Promise<HttpyResponse> {
  return forHead(toHttpyResponse(res), res)
}

/** `res` as HTTPy's Response; a promise only when the body has to be read first. */
export function toHttpyResponse(res: unknown): HttpyResponse | Promise<HttpyResponse> {
  if (!(res instanceof PlatformResponse)) {
    throw new HttpyTypeError(
      'ERR_HTTPY_INVALID_RESPONSE',
      `fetch handler returned ${describe(res)}, not a Response (globalThis.Response)`,
    )
  }
  const light = LightResponse.parts(res)
  if (light !== undefined) {
    // Never realised: the constructor's arguments are all there is.
    return new HttpyResponse(light.body, { status: light.status, headers: lightHeaders(light.headers, light.defaultType) })
  }
  const status = statusOf(res)
  const state = STATE === undefined ? undefined : ((res as unknown as Record<symbol, unknown>)[STATE] as ResponseState | undefined)
  const body = state?.body
  if (state !== undefined && (body === null || body === undefined)) {
    return new HttpyResponse(null, { status, headers: headersOf(res) })
  }
  if (res.bodyUsed) {
    throw new HttpyTypeError('ERR_HTTPY_INVALID_RESPONSE', 'fetch handler returned a Response whose body was already read')
  }
  if (body && known(body.source) && (body.stream === undefined || body.stream === null || !body.stream.locked)) {
    return new HttpyResponse(body.source, { status, headers: headersOf(res) })
  }
  if (body && body.source === null) {
    // Made from a ReadableStream: stream it out.
    return new HttpyResponse(res.body as unknown as AsyncIterable<Uint8Array>, { status, headers: headersOf(res) })
  }
  if (state === undefined && res.body === null) {
    return new HttpyResponse(null, { status, headers: headersOf(res) })
  }
  if (state === undefined) {
    // Without the platform's state nothing tells a stream from a string:
    // stream everything (the chunks come as they were given).
    return new HttpyResponse(res.body as unknown as AsyncIterable<Uint8Array>, { status, headers: headersOf(res) })
  }
  // Blob, FormData, URLSearchParams and the like: read whole.
  const headers = headersOf(res)
  return res.arrayBuffer().then((ab) => new HttpyResponse(Buffer.from(ab), { status, headers }))
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (v === undefined) return 'undefined'
  if (typeof v === 'object') {
    const name = (v as { constructor?: { name?: unknown } }).constructor?.name
    return typeof name === 'string' && name.length > 0 ? `an object (${name})` : 'an object'
  }
  return `a ${typeof v}`
}
