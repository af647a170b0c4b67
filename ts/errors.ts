/**
 * Errors with stable `code`s that callers can match on, in the style of
 * Node.js (`err.code === 'EADDRINUSE'`). Messages may change; codes do not.
 */

export type HttpyErrorCode =
  | 'ERR_HTTPY_INVALID_OPTION'
  | 'ERR_HTTPY_INVALID_ROUTE'
  | 'ERR_HTTPY_INVALID_HEADER'
  | 'ERR_HTTPY_INVALID_RESPONSE'
  | 'ERR_HTTPY_SERVER_CLOSED'
  | 'ERR_HTTPY_NOT_SUPPORTED'
  | 'ERR_HTTPY_LISTEN'
  | 'ERR_HTTPY_TLS'
  | 'ERR_HTTPY_ACME'
  | 'ERR_HTTPY_INTERNAL'
  | 'ERR_HTTPY_NO_BINARY'
  | 'ERR_HTTPY_BINARY_VERSION'
  | 'ERR_HTTPY_BENCH_UNREACHABLE'
  | 'ERR_HTTPY_PUBSUB'
  | 'ERR_HTTPY_BODY_STREAMED'
  | 'ERR_HTTPY_BODY_USED'
  | 'ERR_HTTPY_BODY_TOO_LARGE'
  | 'ERR_HTTPY_BODY_ABORTED'
  | 'ERR_HTTPY_MULTIPART_LIMIT'
  | 'ERR_HTTPY_MULTIPART_MALFORMED'
  | 'EADDRINUSE'
  | 'EADDRNOTAVAIL'
  | 'EACCES'

/** An Error carrying a stable `code`. */
export class HttpyError extends Error {
  readonly code: HttpyErrorCode
  constructor(code: HttpyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'HttpyError'
    this.code = code
  }
}

/** A TypeError with a stable `code` (invalid options, headers, responses). */
export class HttpyTypeError extends TypeError {
  readonly code: HttpyErrorCode
  constructor(code: HttpyErrorCode, message: string) {
    super(message)
    this.code = code
  }
}

const CODE_PREFIX = /^([A-Z][A-Z_]+): ([\s\S]*)$/

/**
 * The native layer reports errors as "CODE: message"; turn that into an
 * error whose `code` property callers can test.
 */
export function fromNative(err: unknown): Error {
  if (!(err instanceof Error)) return new HttpyError('ERR_HTTPY_INTERNAL', String(err))
  const m = CODE_PREFIX.exec(err.message)
  if (!m) return err
  const code = m[1] as HttpyErrorCode
  const message = m[2] ?? ''
  if (code === 'ERR_HTTPY_INVALID_ROUTE' || code === 'ERR_HTTPY_INVALID_RESPONSE') {
    return new HttpyTypeError(code, message)
  }
  return new HttpyError(code, message, { cause: err })
}

/** The error for a handler (or middleware) whose value is not a `Response`, naming the route it answered. */
export function notAResponse(req: { readonly method: string; readonly path: string }, value: unknown, who = 'handler'): HttpyTypeError {
  return new HttpyTypeError(
    'ERR_HTTPY_INVALID_RESPONSE',
    `${who} for ${req.method} ${req.path} returned ${value === null ? 'null' : typeof value}, not a Response`,
  )
}
