/**
 * Server options: defaults from the guide, validation that names the
 * offending option before anything binds, and conversion to the native
 * form (seconds become milliseconds).
 */
import { availableParallelism } from 'node:os'
import { HttpyTypeError } from './errors.js'
import type { NativeOptions } from './native.js'
import { resolveTls, type TlsOptions } from './tls.js'
import type { Request } from './request.js'
import { resolveWsOptions, type WebSocketOptions } from './websocket.js'

export interface ServerOptions {
  /** Interface to bind. Default `'127.0.0.1'`. */
  host?: string
  /** TCP port; 0 picks a free one. Default 8080. */
  port?: number
  /** Socket receive buffer (SO_RCVBUF) in bytes. Default 16384 in the guide; unset keeps kernel autotuning. */
  readBufferSize?: number
  /** Socket send buffer (SO_SNDBUF) in bytes. */
  writeBufferSize?: number
  /** Keep connections open between requests. Default true. */
  keepAlive?: boolean
  /** Seconds an idle kept-alive connection stays open. Default 5. */
  keepAliveTimeout?: number
  /** Seconds allowed to receive a request and for its handler to answer. Default 60. */
  requestTimeout?: number
  /** Requests per connection before it is closed (0 = unlimited). Default 0. */
  maxKeepAliveRequests?: number
  /** Open connections at once (0 = unlimited). Default 0. */
  maxConnections?: number
  /** Largest request body in bytes (413 beyond). Default 10 MiB. */
  maxBodySize?: number
  /** Largest request head in bytes (431 beyond). Default 16 KiB. */
  maxHeaderSize?: number
  /** Requests queued for or running in JS at once (503 beyond). Default 10000. */
  maxPendingRequests?: number
  /** Tokio I/O threads. Default: CPU cores - 1 (at least 1). */
  threads?: number
  /** Seconds `close()` waits for in-flight requests before dropping connections. Default 10. */
  shutdownTimeout?: number
  /** Listen backlog. Default 1024. */
  backlog?: number
  /**
   * Serve HTTPS: HTTP/2 and HTTP/1.1 on one port, chosen by ALPN.
   * `{cert, key}` as PEM text, Buffers or file paths (`cert` may hold a
   * chain, leaf first), or `'self-signed'` to generate a localhost
   * certificate at start (development only).
   */
  tls?: TlsOptions
  /** HTTP/2 streams one client may have open at once. Default 256. */
  http2MaxConcurrentStreams?: number
  /** HTTP/2 receive window per stream, bytes (flow control). Default 1 MiB. */
  http2StreamWindowSize?: number
  /** HTTP/2 receive window per connection, bytes. Default 4 MiB. */
  http2ConnectionWindowSize?: number
  /** Include stack traces in 500 responses. Default false. */
  debug?: boolean
  /** Called with every error a handler or middleware throws. */
  onError?: (error: unknown, request: Request | undefined) => void
  /** Defaults for every WebSocket route (each route may override them). */
  websocket?: WebSocketOptions
}

export interface ResolvedOptions {
  native: NativeOptions
  debug: boolean
  shutdownTimeout: number
  onError: ((error: unknown, request: Request | undefined) => void) | undefined
  websocket: Required<WebSocketOptions>
}

const KNOWN = new Set<string>([
  'host', 'port', 'readBufferSize', 'writeBufferSize', 'keepAlive', 'keepAliveTimeout', 'requestTimeout',
  'maxKeepAliveRequests', 'maxConnections', 'maxBodySize', 'maxHeaderSize', 'maxPendingRequests', 'threads',
  'shutdownTimeout', 'backlog', 'debug', 'onError', 'websocket', 'tls', 'http2MaxConcurrentStreams',
  'http2StreamWindowSize', 'http2ConnectionWindowSize',
])

/** Options of the guide that later releases implement; named so the error says so. */
const PLANNED = new Set<string>(['http3Port', 'http3Config', 'workers', 'compression', 'trustProxy', 'metrics', 'accessLog'])

function bad(name: string, want: string, got: unknown): never {
  throw new HttpyTypeError(
    'ERR_HTTPY_INVALID_OPTION',
    `option "${name}" must be ${want} (got ${typeof got === 'string' ? JSON.stringify(got) : String(got)})`,
  )
}

function int(o: Record<string, unknown>, name: string, def: number, min: number, max: number): number {
  const v = o[name]
  if (v === undefined) return def
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    bad(name, `an integer from ${min} to ${max}`, v)
  }
  return v
}

function seconds(o: Record<string, unknown>, name: string, def: number): number {
  const v = o[name]
  if (v === undefined) return def
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) bad(name, 'a positive number of seconds', v)
  return v
}

function bool(o: Record<string, unknown>, name: string, def: boolean): boolean {
  const v = o[name]
  if (v === undefined) return def
  if (typeof v !== 'boolean') bad(name, 'a boolean', v)
  return v
}

/** Validates `options` and fills in defaults. Throws a `TypeError` naming the option. */
export function resolveOptions(options: ServerOptions | undefined, jsHandlesMisses: boolean): ResolvedOptions {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'options must be an object')
  }
  const o = (options ?? {}) as Record<string, unknown>
  for (const key of Object.keys(o)) {
    if (o[key] === undefined) continue
    if (PLANNED.has(key)) {
      throw new HttpyTypeError(
        'ERR_HTTPY_NOT_SUPPORTED',
        `option "${key}" is not available in this build of httpy yet`,
      )
    }
    if (!KNOWN.has(key)) throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', `unknown option "${key}"`)
  }
  const host = o.host === undefined ? '127.0.0.1' : o.host
  if (typeof host !== 'string' || host.length === 0) bad('host', 'a non-empty string', host)
  const onError = o.onError
  if (onError !== undefined && typeof onError !== 'function') bad('onError', 'a function', onError)
  const cores = availableParallelism()
  const readBufferSize = o.readBufferSize === undefined ? undefined : int(o, 'readBufferSize', 0, 1024, 64 * 1024 * 1024)
  const writeBufferSize = o.writeBufferSize === undefined ? undefined : int(o, 'writeBufferSize', 0, 1024, 64 * 1024 * 1024)
  const native: NativeOptions = {
    host,
    port: int(o, 'port', 8080, 0, 65535),
    readBufferSize,
    writeBufferSize,
    keepAlive: bool(o, 'keepAlive', true),
    keepAliveTimeoutMs: seconds(o, 'keepAliveTimeout', 5) * 1000,
    requestTimeoutMs: seconds(o, 'requestTimeout', 60) * 1000,
    maxKeepAliveRequests: int(o, 'maxKeepAliveRequests', 0, 0, Number.MAX_SAFE_INTEGER),
    maxConnections: int(o, 'maxConnections', 0, 0, 10_000_000),
    maxBodySize: int(o, 'maxBodySize', 10 * 1024 * 1024, 0, Number.MAX_SAFE_INTEGER),
    maxHeaderSize: int(o, 'maxHeaderSize', 16 * 1024, 1024, 1024 * 1024),
    maxPendingRequests: int(o, 'maxPendingRequests', 10_000, 1, 10_000_000),
    threads: int(o, 'threads', Math.max(1, cores - 1), 1, 256),
    jsHandlesMisses,
    backlog: int(o, 'backlog', 1024, 1, 65535),
    http2: {
      maxConcurrentStreams: int(o, 'http2MaxConcurrentStreams', 256, 1, 1_000_000),
      // The protocol's limits: at least the default 65535, at most 2^31-1.
      streamWindow: int(o, 'http2StreamWindowSize', 1024 * 1024, 65535, 2 ** 31 - 1),
      connectionWindow: int(o, 'http2ConnectionWindowSize', 4 * 1024 * 1024, 65535, 2 ** 31 - 1),
    },
  }
  // Last: reading certificate files is the only side effect of validation.
  const tls = resolveTls(o.tls)
  if (tls) native.tls = tls
  return {
    native,
    debug: bool(o, 'debug', false),
    shutdownTimeout: seconds(o, 'shutdownTimeout', 10),
    onError: onError as ResolvedOptions['onError'],
    websocket: resolveWsOptions(o.websocket as WebSocketOptions | undefined, undefined, 'option "websocket"'),
  }
}
