/**
 * `HttpError`, the error a handler (or middleware) throws to answer with a
 * 4xx/5xx status, and the responses the server makes of errors when the app
 * has no `onError` handler of its own.
 */
import { STATUS_CODES } from 'node:http'
import { HttpyTypeError } from './errors.js'
import { Headers, type HeadersInit, type ReadonlyHeaders } from './headers.js'
import { Response } from './response.js'

export interface HttpErrorOptions {
  /** Headers of the response (`WWW-Authenticate`, `Retry-After`, …). */
  headers?: HeadersInit
  /** The underlying error, kept as `error.cause`. */
  cause?: unknown
}

/**
 * Thrown by a handler or a middleware, answers the request with `status`:
 * the body is `message` as `text/plain` (the status's reason phrase when
 * omitted), with `headers` added. The response passes back through the
 * middleware like any other. `app.onError`, when set, receives it instead
 * and may shape the body (`err.toResponse()` gives the default). 4xx errors
 * are answers, not failures: they are not logged nor reported to the
 * `onError` option; 5xx ones are.
 *
 * ```ts
 * get('/users/{id}', (req) => {
 *   const user = users.get(req.pathParams.id)
 *   if (!user) throw new HttpError(404, 'no such user')
 *   return Response.json(user)
 * })
 * ```
 */
export class HttpError extends Error {
  /** The response status, 400-599. */
  readonly status: number
  /** Headers of the response. */
  readonly headers: ReadonlyHeaders

  constructor(status: number, message?: string, options?: HttpErrorOptions) {
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 400 || status > 599) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', `HttpError: status must be an integer from 400 to 599 (got ${String(status)})`)
    }
    super(message ?? STATUS_CODES[status] ?? `HTTP ${status}`, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'HttpError'
    this.status = status
    this.headers = new Headers(options?.headers)
  }

  /** The response the server sends for this error when no `onError` handler answers it. */
  toResponse(): Response {
    return Response.text(this.message, { status: this.status, headers: this.headers as Headers })
  }
}

/**
 * What an error becomes without an `onError` handler: an `HttpError`'s own
 * response, otherwise a 500 (with the stack when `debug` is on).
 */
export function defaultErrorResponse(err: unknown, debug: boolean): Response {
  if (err instanceof HttpError) return err.toResponse()
  return internalError(debug ? err : undefined)
}

/** A plain 500; with `detail`, its message and stack follow in the body (`debug`). */
export function internalError(detail?: unknown): Response {
  const body =
    detail === undefined
      ? 'Internal Server Error'
      : `Internal Server Error\n\n${detail instanceof Error ? (detail.stack ?? detail.message) : String(detail)}`
  return Response.text(body, 500)
}

/** Whether an error is a failure worth logging (everything but a deliberate 4xx answer). */
export function isFailure(err: unknown): boolean {
  return !(err instanceof HttpError && err.status < 500)
}
