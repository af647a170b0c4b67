/**
 * The response a handler returns. Everything is mutable (`status`,
 * `headers`, `body`) so that middleware can rewrite it after the handler ran,
 * as the guide's compression middleware does.
 */
import { resolve } from 'node:path'
import type { Readable } from 'node:stream'
import type { ReadableStream } from 'node:stream/web'
import { Headers, type HeadersInit } from './headers.js'
import { HttpyTypeError } from './errors.js'

/**
 * A file to be sent by the core (`Response.file`): read in chunks off the
 * JS thread, with validators, ranges and conditional requests handled there.
 */
export class FileBody {
  /** Absolute path of the file. */
  readonly path: string
  constructor(path: string) {
    if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_RESPONSE', 'Response.file: path must be a non-empty string without NUL')
    }
    this.path = resolve(path)
  }
}

/** A body produced piece by piece: sent chunked (HTTP/1.1) or as DATA frames (HTTP/2). */
export type StreamBody = AsyncIterable<Uint8Array | string> | ReadableStream<Uint8Array | string> | Readable

export type ResponseBody = string | Buffer | Uint8Array | FileBody | StreamBody | null | undefined

export interface ResponseInit {
  status?: number
  headers?: HeadersInit
}

type StatusOrInit = number | ResponseInit | undefined

function initOf(s: StatusOrInit): ResponseInit {
  return typeof s === 'number' ? { status: s } : (s ?? {})
}

function checkStatus(status: number): number {
  if (!Number.isInteger(status) || status < 200 || status > 999) {
    throw new HttpyTypeError(
      'ERR_HTTPY_INVALID_RESPONSE',
      `invalid status ${String(status)}: an integer from 200 to 999 is required`,
    )
  }
  return status
}

// Shared header templates: copying a Headers keeps its cached wire form and
// its bytes, so the common responses never rebuild nor encode the header block.
const TEXT = new Headers({ 'content-type': 'text/plain; charset=utf-8' })._template()
const HTML = new Headers({ 'content-type': 'text/html; charset=utf-8' })._template()
const JSON_TYPE = new Headers({ 'content-type': 'application/json' })._template()

function withDefaults(template: Headers, extra: HeadersInit | undefined): Headers {
  const h = new Headers(template)
  if (extra) for (const [k, v] of new Headers(extra)) h.set(k, v)
  return h
}

/**
 * An HTTP response.
 *
 * ```ts
 * new Response('hello', { status: 201, headers: { 'x-id': '7' } })
 * Response.json({ ok: true })
 * Response.json({ error: 'File not found' }, 404)
 * new Response(null, { status: 304 })
 * ```
 */
export class Response {
  status: number
  headers: Headers
  body: ResponseBody
  /** Resources to push over HTTP/2 (`[path, as]`); `Link: rel=preload` elsewhere. */
  pushResources: Array<readonly [string, string]> | undefined

  constructor(body?: ResponseBody, init?: ResponseInit) {
    this.status = init?.status === undefined ? 200 : checkStatus(init.status)
    this.headers = init?.headers instanceof Headers ? init.headers : new Headers(init?.headers)
    this.body = body ?? null
    this.pushResources = undefined
  }

  /** JSON-serialises `data` (`application/json`). */
  static json(data: unknown, statusOrInit?: StatusOrInit): Response {
    const init = initOf(statusOrInit)
    const body = JSON.stringify(data)
    if (body === undefined) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_RESPONSE', 'Response.json: value is not JSON-serialisable')
    }
    return new Response(body, { status: init.status, headers: withDefaults(JSON_TYPE, init.headers) })
  }

  /** An HTML page (`text/html; charset=utf-8`). */
  static html(html: string, statusOrInit?: StatusOrInit): Response {
    const init = initOf(statusOrInit)
    return new Response(html, { status: init.status, headers: withDefaults(HTML, init.headers) })
  }

  /** Plain text (`text/plain; charset=utf-8`). */
  static text(text: string, statusOrInit?: StatusOrInit): Response {
    const init = initOf(statusOrInit)
    return new Response(text, { status: init.status, headers: withDefaults(TEXT, init.headers) })
  }

  /**
   * Sends the file at `path` natively: content type from the extension,
   * `ETag`/`Last-Modified`, 304 and 206 answers, chunked reads. A missing
   * file gives 404. Headers set here win over the file's own.
   *
   * ```ts
   * get('/report', () => Response.file('./reports/latest.pdf', { headers: { 'cache-control': 'no-cache' } }))
   * ```
   */
  static file(path: string, statusOrInit?: StatusOrInit): Response {
    const init = initOf(statusOrInit)
    return new Response(new FileBody(path), init)
  }

  /** A redirect to `location` (302 unless told otherwise). */
  static redirect(location: string, status = 302): Response {
    if (![300, 301, 302, 303, 307, 308].includes(status)) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_RESPONSE', `invalid redirect status ${status}`)
    }
    return new Response(null, { status, headers: { location } })
  }
}
