/**
 * Server options: defaults from the guide, validation that names the
 * offending option before anything binds, and conversion to the native
 * form (seconds become milliseconds).
 */
import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import { HttpyTypeError } from './errors.js'
import type { NativeCompression, NativeOptions } from './native.js'
import { compileTrust, trustSpec, type TrustFn, type TrustProxy } from './proxy.js'
import { resolveHttp3, type Http3Config } from './http3.js'
import { resolveTls, type TlsOptions } from './tls.js'
import type { Request } from './request.js'
import { resolveWsOptions, type WebSocketOptions } from './websocket.js'

/** The part of a `prom-client` `Registry` HTTPy uses to merge it into its metrics endpoint. */
export interface MetricsRegistry {
  metrics(): Promise<string> | string
  getSingleMetric?(name: string): unknown
}

export interface MetricsOptions {
  /** Path of the Prometheus endpoint. Default `'/metrics'`. */
  path?: string
  /** A `prom-client` registry whose metrics are appended to HTTPy's own. */
  registry?: MetricsRegistry
}

export interface AccessLogOptions {
  /** `'combined'` (Apache/nginx) or `'json'` (one object per line). Default `'combined'`. */
  format?: 'combined' | 'json'
  /** File appended to; default stdout. */
  path?: string
}

/** Environment variable naming the directory of the workers' pub/sub links (made by the supervising primary). */
export const PUBSUB_DIR_ENV = 'HTTPY_PUBSUB_DIR'

/** Environment variable through which a supervising primary tells its workers the port to share. */
export const WORKER_PORT_ENV = 'HTTPY_WORKER_PORT'

export interface ServerOptions {
  /** Interface to bind. Default `'127.0.0.1'`. */
  host?: string
  /**
   * Listen on a Unix domain socket at this path instead of `host:port`
   * (Linux, macOS). A socket file left by a server that is gone is
   * replaced; a live one is `EADDRINUSE`; the file is removed on close.
   */
  path?: string
  /** File mode of the Unix socket, e.g. `0o660` (default: from the umask). */
  permissions?: number
  /** TCP port; 0 picks a free one. Default 8080. */
  port?: number
  /** Socket receive buffer (SO_RCVBUF) in bytes. Default 16384 in the guide; unset keeps kernel autotuning. */
  readBufferSize?: number
  /** Socket send buffer (SO_SNDBUF) in bytes. Unset keeps kernel autotuning. */
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
   * chain, leaf first); a list of `{serverName, cert, key}` chosen by SNI
   * (an entry without `serverName` is the default); `ca`, `requestCert`
   * and `rejectUnauthorized` for client certificates; or `'self-signed'`
   * to generate a localhost certificate at start (development only).
   * Replace it while running with `server.setTls()` or SIGHUP.
   */
  tls?: TlsOptions
  /**
   * UDP port for HTTP/3 over QUIC (0 = any free port; may equal `port`).
   * Needs `tls`. TCP responses then carry `Alt-Svc: h3=":<port>"`.
   */
  http3Port?: number
  /** QUIC settings for HTTP/3 (the guide's `http3_config`). */
  http3Config?: Http3Config
  /** HTTP/2 streams one client may have open at once. Default 256. */
  http2MaxConcurrentStreams?: number
  /** HTTP/2 receive window per stream, bytes (flow control). Default 1 MiB. */
  http2StreamWindowSize?: number
  /** HTTP/2 receive window per connection, bytes. Default 4 MiB. */
  http2ConnectionWindowSize?: number
  /** Include stack traces in 500 responses (failures are logged to stderr either way). Default false. */
  debug?: boolean
  /**
   * Compress responses natively (off the JS thread). `true` enables gzip,
   * brotli and zstd for text-like types of at least 1024 bytes.
   */
  compression?: boolean | CompressionOptions
  /**
   * Called with every failure: what a handler, middleware or WebSocket
   * handler throws (not `HttpError`s below 500), a stream body that fails.
   * Replaces the default log to stderr; to shape the response, use
   * `app.onError`.
   */
  onError?: (error: unknown, request: Request | undefined) => void
  /** Defaults for every WebSocket route (each route may override them). */
  websocket?: WebSocketOptions
  /**
   * `run()` only: start this many worker processes sharing the port
   * (SO_REUSEPORT), supervised by this process. See docs/deployment.md.
   */
  workers?: number
  /**
   * Where `publish` reaches besides this process. With `workers`, every
   * worker's subscribers always get it (nothing to set); `{ redis: url }`
   * also carries it to every other server sharing that Redis. See
   * docs/scaling.md.
   */
  pubsub?: PubSubOptions
  /**
   * Share the port with other processes that set it too (SO_REUSEPORT; the
   * kernel balances connections). Default false, true inside a `node:cluster` worker.
   */
  reusePort?: boolean
  /** Seconds to keep serving after a shutdown signal while health checks already fail. Default 0. */
  shutdownDelay?: number
  /** Which peers are proxies whose forwarding headers `req.ip`, `req.scheme` and `req.host` believe. Default false. */
  trustProxy?: TrustProxy
  /** Prometheus metrics, counted natively: `true` serves them at `/metrics`. Default false. */
  metrics?: boolean | MetricsOptions
  /** One log line per request, written off the JS thread: `true` is combined format on stdout. Default false. */
  accessLog?: boolean | AccessLogOptions
  /**
   * `run()` prints one line once it listens (`httpy listening on
   * http://127.0.0.1:8080`; with workers, once, from the primary); `true`
   * prints nothing. `app.listen()` never prints. Default false.
   */
  quiet?: boolean
}

export interface PubSubOptions {
  /**
   * `redis://[user:password@]host:port/db` or `rediss://…` (TLS): publishes
   * go through this Redis (or Valkey) to every server subscribed to the topic.
   */
  redis?: string
  /**
   * With `redis`: carry messages on a capped Redis Stream per topic instead
   * of Redis pub/sub, so a process whose link to Redis drops (or whose Redis
   * restarts with its data) reads what was published meanwhile. Default false.
   */
  durable?: boolean
  /** With `durable`: entries kept per topic's stream (trimmed approximately). Default 10000. */
  maxLen?: number
}

export interface CompressionOptions {
  /** Offer gzip. Default true. */
  gzip?: boolean
  /** Offer brotli. Default true. */
  br?: boolean
  /** Offer zstd. Default true. */
  zstd?: boolean
  /** Smallest body compressed, in bytes. Default 1024. */
  minSize?: number
  /** Compressible media types (`'text/'` or `'text/*'` is a prefix). Default: text, JSON, JS, XML, SVG, WASM. */
  types?: string[]
  /** One level for every coding, clamped to each one's range (gzip 1-9, br 0-11, zstd 1-19). Default: fast levels. */
  level?: number
}

export interface ResolvedOptions {
  native: NativeOptions
  debug: boolean
  quiet: boolean
  shutdownTimeout: number
  shutdownDelay: number
  onError: ((error: unknown, request: Request | undefined) => void) | undefined
  websocket: Required<WebSocketOptions>
  workers: number | undefined
  trust: TrustFn | undefined
  /** Set when metrics are on; `registry` set means JS serves the path. */
  metrics: { path: string; registry: MetricsRegistry | undefined } | undefined
  /** The `tls` option as given: SIGHUP reads its files again. */
  tls: TlsOptions | undefined
}

const KNOWN = new Set<string>([
  'host', 'port', 'readBufferSize', 'writeBufferSize', 'keepAlive', 'keepAliveTimeout', 'requestTimeout',
  'maxKeepAliveRequests', 'maxConnections', 'maxBodySize', 'maxHeaderSize', 'maxPendingRequests', 'threads',
  'shutdownTimeout', 'backlog', 'debug', 'onError', 'websocket', 'compression', 'tls', 'http2MaxConcurrentStreams',
  'http2StreamWindowSize', 'http2ConnectionWindowSize', 'workers', 'reusePort', 'shutdownDelay', 'trustProxy',
  'metrics', 'accessLog', 'http3Port', 'http3Config', 'quiet', 'path', 'permissions', 'pubsub',
])

/** Options of the guide that later releases implement; named so the error says so. */
const PLANNED = new Set<string>([])

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

/** Entries a topic's stream keeps in the durable mode unless `maxLen` says otherwise. */
const DEFAULT_PUBSUB_MAX_LEN = 10_000

/**
 * The `pubsub` option: the Redis URL, checked for its scheme here (the core
 * parses the rest), and the durable mode's cap (undefined: the plain mode).
 */
function pubsubOption(v: unknown): { redis: string | undefined; durableMaxLen: number | undefined } {
  if (v === undefined) return { redis: undefined, durableMaxLen: undefined }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('pubsub', 'an object such as { redis: "redis://127.0.0.1:6379/0" }', v)
  for (const key of Object.keys(v)) {
    if (key !== 'redis' && key !== 'durable' && key !== 'maxLen') throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', `unknown option "pubsub.${key}"`)
  }
  const { redis: url, durable, maxLen } = v as PubSubOptions
  if (url !== undefined && (typeof url !== 'string' || !/^rediss?:\/\/./.test(url))) bad('pubsub.redis', 'a redis:// or rediss:// URL', url)
  if (durable !== undefined && typeof durable !== 'boolean') bad('pubsub.durable', 'a boolean', durable)
  if (maxLen !== undefined && (typeof maxLen !== 'number' || !Number.isInteger(maxLen) || maxLen < 1 || maxLen > 1e9)) {
    bad('pubsub.maxLen', 'an integer from 1 to 1000000000', maxLen)
  }
  if (durable === true && url === undefined) {
    throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'option "pubsub.durable" needs "pubsub.redis": the durable mode keeps messages on Redis Streams')
  }
  if (maxLen !== undefined && durable !== true) {
    throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'option "pubsub.maxLen" applies to the durable mode only: set "pubsub.durable: true" with it')
  }
  return { redis: url, durableMaxLen: durable === true ? (maxLen ?? DEFAULT_PUBSUB_MAX_LEN) : undefined }
}

function metricsOption(v: unknown): ResolvedOptions['metrics'] {
  if (v === undefined || v === false) return undefined
  if (v === true) return { path: '/metrics', registry: undefined }
  if (typeof v !== 'object' || v === null) bad('metrics', 'a boolean or { path, registry }', v)
  const m = v as Record<string, unknown>
  for (const k of Object.keys(m)) if (k !== 'path' && k !== 'registry') bad('metrics', 'a boolean or { path, registry }', `key ${k}`)
  const path = m.path ?? '/metrics'
  if (typeof path !== 'string' || !/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/.test(path)) {
    bad('metrics.path', 'a literal URL path starting with "/"', path)
  }
  const registry = m.registry
  if (registry !== undefined && (typeof registry !== 'object' || registry === null || typeof (registry as MetricsRegistry).metrics !== 'function')) {
    bad('metrics.registry', 'a prom-client Registry (an object with a metrics() method)', registry)
  }
  return { path, registry: registry as MetricsRegistry | undefined }
}

function accessLogOption(v: unknown): { format: 'combined' | 'json'; path: string | undefined } | undefined {
  if (v === undefined || v === false) return undefined
  if (v === true) return { format: 'combined', path: undefined }
  if (typeof v !== 'object' || v === null) bad('accessLog', "a boolean or { format: 'combined' | 'json', path }", v)
  const a = v as Record<string, unknown>
  for (const k of Object.keys(a)) if (k !== 'format' && k !== 'path') bad('accessLog', "a boolean or { format, path }", `key ${k}`)
  const format = a.format ?? 'combined'
  if (format !== 'combined' && format !== 'json') bad('accessLog.format', "'combined' or 'json'", format)
  if (a.path !== undefined && (typeof a.path !== 'string' || a.path === '')) bad('accessLog.path', 'a file path', a.path)
  return { format, path: a.path as string | undefined }
}

const COMPRESSION_KEYS = new Set(['gzip', 'br', 'zstd', 'minSize', 'types', 'level'])

function compressionOf(v: unknown): NativeCompression | undefined {
  if (v === undefined || v === false) return undefined
  const base: NativeCompression = { gzip: true, br: true, zstd: true, minSize: 1024, types: [] }
  if (v === true) return base
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('compression', 'a boolean or an object', v)
  const o = v as Record<string, unknown>
  for (const k of Object.keys(o)) {
    if (!COMPRESSION_KEYS.has(k)) throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', `unknown option "compression.${k}"`)
  }
  const flag = (k: 'gzip' | 'br' | 'zstd'): boolean => {
    const x = o[k]
    if (x === undefined) return true
    if (typeof x !== 'boolean') bad(`compression.${k}`, 'a boolean', x)
    return x
  }
  const types = o.types
  if (types !== undefined && (!Array.isArray(types) || !types.every((t) => typeof t === 'string' && t.length > 0))) {
    bad('compression.types', 'an array of media types', types)
  }
  const level = o.level
  if (level !== undefined && (typeof level !== 'number' || !Number.isInteger(level) || level < 0 || level > 22)) {
    bad('compression.level', 'an integer from 0 to 22', level)
  }
  return {
    gzip: flag('gzip'),
    br: flag('br'),
    zstd: flag('zstd'),
    minSize: o.minSize === undefined ? 1024 : int({ 'compression.minSize': o.minSize }, 'compression.minSize', 1024, 0, Number.MAX_SAFE_INTEGER),
    types: (types as string[] | undefined) ?? [],
    level: level as number | undefined,
  }
}

/** `path` and `permissions`: a Unix domain socket instead of TCP. */
function unixSocket(o: Record<string, unknown>, workers: number | undefined): { unixPath?: string; unixPermissions?: number } {
  if (o.path === undefined) {
    if (o.permissions !== undefined) bad('permissions', 'used with "path" (a Unix socket)', o.permissions)
    return {}
  }
  if (typeof o.path !== 'string' || o.path.length === 0 || o.path.includes('\0')) bad('path', 'a file path for a Unix socket', o.path)
  if (process.platform === 'win32') throw new HttpyTypeError('ERR_HTTPY_NOT_SUPPORTED', 'option "path" (Unix domain sockets) is not available on Windows')
  if (o.port !== undefined) bad('path', 'used without "port" (a server listens on a Unix socket or a TCP port)', `${o.path} with port ${String(o.port)}`)
  if (workers !== undefined) {
    bad('path', 'used without "workers" (processes cannot share one Unix socket; give each its own path)', o.path)
  }
  // sockaddr_un holds 108 bytes on Linux (104 on macOS), the final NUL included.
  if (Buffer.byteLength(o.path) > 103) bad('path', 'at most 103 bytes long (the limit of a Unix socket address)', o.path)
  const out: { unixPath: string; unixPermissions?: number } = { unixPath: o.path }
  if (o.permissions !== undefined) out.unixPermissions = int(o, 'permissions', 0, 0, 0o777)
  return out
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
  const workers = o.workers === undefined ? undefined : int(o, 'workers', 1, 1, 1024)
  const metrics = metricsOption(o.metrics)
  const accessLog = accessLogOption(o.accessLog)
  const trust = compileTrust(o.trustProxy)
  const pubsub = pubsubOption(o.pubsub)
  // The core resolves the client too, for the access log (natively answered
  // requests never reach JS).
  const trustNative = trustSpec(o.trustProxy)
  const reusePort = bool(o, 'reusePort', cluster.isWorker || workers !== undefined)
  if ((reusePort || workers !== undefined) && process.platform === 'win32') {
    throw new HttpyTypeError('ERR_HTTPY_NOT_SUPPORTED', 'options "workers" and "reusePort" need SO_REUSEPORT, which Windows lacks')
  }
  let port = int(o, 'port', 8080, 0, 65535)
  // A supervised worker shares the port its first sibling bound (`port: 0` included).
  const shared = process.env[WORKER_PORT_ENV]
  if (workers !== undefined && cluster.isWorker && shared !== undefined && /^\d+$/.test(shared)) port = Number(shared)
  const unix = unixSocket(o, workers)
  const readBufferSize = o.readBufferSize === undefined ? undefined : int(o, 'readBufferSize', 0, 1024, 64 * 1024 * 1024)
  const writeBufferSize = o.writeBufferSize === undefined ? undefined : int(o, 'writeBufferSize', 0, 1024, 64 * 1024 * 1024)
  const native: NativeOptions = {
    host,
    ...unix,
    port,
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
    // Workers share the cores: each gets its slice, minus its JS thread.
    threads: int(o, 'threads', Math.max(1, Math.floor(cores / (workers ?? 1)) - 1), 1, 256),
    jsHandlesMisses,
    backlog: int(o, 'backlog', 1024, 1, 65535),
    http2: {
      maxConcurrentStreams: int(o, 'http2MaxConcurrentStreams', 256, 1, 1_000_000),
      // The protocol's limits: at least the default 65535, at most 2^31-1.
      streamWindow: int(o, 'http2StreamWindowSize', 1024 * 1024, 65535, 2 ** 31 - 1),
      connectionWindow: int(o, 'http2ConnectionWindowSize', 4 * 1024 * 1024, 65535, 2 ** 31 - 1),
    },
    reusePort,
    metrics: metrics !== undefined,
    metricsPath: metrics && !metrics.registry ? metrics.path : undefined,
    accessLogFormat: accessLog?.format,
    accessLogPath: accessLog?.path,
    trustProxyAll: trustNative !== undefined && 'all' in trustNative ? true : undefined,
    trustProxyHops: trustNative !== undefined && 'hops' in trustNative ? trustNative.hops : undefined,
    trustProxyNets: trustNative !== undefined && 'nets' in trustNative ? trustNative.nets : undefined,
    compression: compressionOf(o.compression),
    pubsubRedis: pubsub.redis,
    pubsubDurableMaxLen: pubsub.durableMaxLen,
    // A supervised worker links to its siblings in the primary's directory.
    pubsubClusterDir: workers !== undefined && cluster.isWorker ? process.env[PUBSUB_DIR_ENV] : undefined,
  }
  const delay = o.shutdownDelay ?? 0
  if (typeof delay !== 'number' || !Number.isFinite(delay) || delay < 0) bad('shutdownDelay', 'a number of seconds >= 0', delay)
  // Last: reading certificate files is the only side effect of validation.
  const http3 = resolveHttp3(o.http3Port, o.http3Config, o.tls !== undefined && o.tls !== null && o.tls !== false)
  const tls = resolveTls(o.tls)
  if (tls) native.tls = tls
  if (http3) native.http3 = http3
  return {
    native,
    debug: bool(o, 'debug', false),
    quiet: bool(o, 'quiet', false),
    shutdownTimeout: seconds(o, 'shutdownTimeout', 10),
    shutdownDelay: delay,
    onError: onError as ResolvedOptions['onError'],
    websocket: resolveWsOptions(o.websocket as WebSocketOptions | undefined, undefined, 'option "websocket"'),
    workers,
    trust,
    metrics,
    tls: tls ? (o.tls as TlsOptions) : undefined,
  }
}
