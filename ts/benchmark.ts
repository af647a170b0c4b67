/**
 * `httpy/benchmark`: the guide's `benchmark_route`, driven by the Rust load
 * generator (`crates/loadgen`) on its own threads, so the server under test
 * may run in this very process without the client stealing its JS thread.
 */
import { App } from './app.js'
import { HttpyError, HttpyTypeError, fromNative } from './errors.js'
import { defaultApp } from './default-app.js'
import { native, type LoadOptions, type LoadProgress, type LoadResult } from './native.js'

export type BenchmarkProtocol = 'http1' | 'http2' | 'http3' | 'websocket'

export interface BenchmarkOptions {
  /** Path (and query) to request, e.g. `/api/users/42`. Default `/`. */
  route?: string
  /** Default `GET`. */
  method?: string
  /** Measured requests (default 1000). Exclusive with `duration`. */
  numRequests?: number
  /** Seconds of measured load instead of a request count. */
  duration?: number
  /** Requests in flight at once. Default 10. */
  concurrency?: number
  /** TCP connections for HTTP/2 (streams are spread over them). Default: one per 16 streams. HTTP/1.1 always uses `concurrency`. */
  connections?: number
  /**
   * `'http1'` (keep-alive), `'http2'` (h2c, prior knowledge; over TLS by
   * ALPN for an `https://` target), `'http3'` (QUIC, `https://` targets
   * whose port is the server's HTTP/3 UDP port) or `'websocket'` (echo:
   * each request is one message, `body`, default 32 bytes, and its echo;
   * one connection per concurrent client). Aliases: `'1.1'`, `'2'`, `'h2'`,
   * `'h2c'`, `'3'`, `'h3'`, `'ws'`. Default `'http1'`.
   */
  protocol?: BenchmarkProtocol | '1.1' | '2' | 'h2' | 'h2c' | 'ws' | '3' | 'h3'
  /** `true` is `protocol: 'http3'`. */
  http3?: boolean
  /** Request headers. */
  headers?: Record<string, string> | Array<[string, string]>
  /** Request body; a plain object or array is sent as JSON. */
  body?: string | Uint8Array | object
  /**
   * Target another server (`http://host:port[/prefix]`, or `https://` for
   * TLS: HTTP/1.1 or HTTP/2 chosen by ALPN) instead of an app.
   */
  baseUrl?: string
  /** With an `https://` target: accept any certificate (e.g. self-signed); signatures are still checked. */
  insecure?: boolean
  /** With an `https://` target: PEM file of the certificates to trust (a CA, or the self-signed certificate). */
  caFile?: string
  /** A new connection for every request (HTTP/1.1 only); with TLS each request is a full handshake, so the rate is handshakes per second. */
  newConnectionPerRequest?: boolean
  /** The app to load when no `baseUrl` is given. Default: the module-level app. */
  app?: App
  /** Seconds of unmeasured load first (JIT, connection set-up). Default 0. */
  warmup?: number
  /** Seconds a single request may take before it counts as a timeout error. Default 10. */
  timeout?: number
  /** Load generator threads. Default 1. */
  threads?: number
  /** Called about 5 times a second from the JS thread. */
  onProgress?: (p: LoadProgress) => void
}

export interface BenchmarkErrorCounts {
  /** Connection refused, unreachable, or failed HTTP/2 handshake. */
  connect: number
  /** No complete response within `timeout`. */
  timeout: number
  /** Connection closed or reset mid-request. */
  io: number
  /** Invalid HTTP from the server. */
  protocol: number
  /** Responses with status >= 400. */
  status: number
}

/** Times are in seconds, as in the guide. */
export interface BenchmarkResults {
  url: string
  protocol: BenchmarkProtocol
  concurrency: number
  /** Seconds of measured load. */
  duration: number
  /** Complete responses (any status) per second. */
  requestsPerSecond: number
  avgResponseTime: number
  minResponseTime: number
  maxResponseTime: number
  p50ResponseTime: number
  p90ResponseTime: number
  p95ResponseTime: number
  p99ResponseTime: number
  p999ResponseTime: number
  /** Measured requests that finished, with a response or a failure. */
  totalRequests: number
  /** Failed requests plus responses with status >= 400. */
  errors: number
  errorCounts: BenchmarkErrorCounts
  /** The first message of each kind of failure. */
  errorMessages: string[]
  /** `{ 200: 998, 500: 2 }` */
  statusCounts: Record<number, number>
  /** Response body bytes. */
  bytesReceived: number
  /** TCP connections opened, warm-up included. */
  connectionsOpened: number
}

/** Thrown when not a single request reached the server; `results` holds the counts anyway. */
export class BenchmarkError extends HttpyError {
  readonly results: BenchmarkResults | undefined
  constructor(message: string, results?: BenchmarkResults, cause?: unknown) {
    super('ERR_HTTPY_BENCH_UNREACHABLE', message, { cause })
    this.name = 'BenchmarkError'
    this.results = results
  }
}

const KNOWN = new Set([
  'route', 'method', 'numRequests', 'duration', 'concurrency', 'connections', 'protocol', 'headers', 'body',
  'baseUrl', 'app', 'warmup', 'timeout', 'threads', 'onProgress', 'insecure', 'caFile', 'newConnectionPerRequest', 'http3',
])

function bad(msg: string): never {
  throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', `benchmarkRoute: ${msg}`)
}

function intOpt(o: BenchmarkOptions, name: 'numRequests' | 'concurrency' | 'connections' | 'threads', max: number): number | undefined {
  const v = o[name]
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    bad(`"${name}" must be an integer from 1 to ${max} (got ${String(v)})`)
  }
  return v
}

function secondsOpt(o: BenchmarkOptions, name: 'duration' | 'warmup' | 'timeout', allowZero: boolean): number | undefined {
  const v = o[name]
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    bad(`"${name}" must be a ${allowZero ? 'non-negative' : 'positive'} number of seconds (got ${String(v)})`)
  }
  return v
}

function parseProtocol(p: BenchmarkOptions['protocol']): BenchmarkProtocol {
  switch (p ?? 'http1') {
    case 'http1':
    case '1.1':
      return 'http1'
    case 'http2':
    case '2':
    case 'h2':
    case 'h2c':
      return 'http2'
    case 'websocket':
    case 'ws':
      return 'websocket'
    case 'http3':
    case '3':
    case 'h3':
      return 'http3'
    default:
      return bad(`"protocol" must be 'http1', 'http2', 'http3' or 'websocket' (got ${JSON.stringify(p)})`)
  }
}

function flatHeaders(h: BenchmarkOptions['headers']): string[] {
  if (h === undefined) return []
  const pairs = Array.isArray(h) ? h : typeof h === 'object' && h !== null ? Object.entries(h) : bad('"headers" must be an object or [name, value] pairs')
  const out: string[] = []
  for (const pair of pairs) {
    if (!Array.isArray(pair) || pair.length !== 2) bad('"headers" must be an object or [name, value] pairs')
    out.push(String(pair[0]), String(pair[1]))
  }
  return out
}

function encodeBody(body: BenchmarkOptions['body'], headers: string[]): Buffer | undefined {
  if (body === undefined || body === null) return undefined
  if (typeof body === 'string') return Buffer.from(body)
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  if (typeof body === 'object') {
    if (!headers.some((v, i) => i % 2 === 0 && v.toLowerCase() === 'content-type')) {
      headers.push('content-type', 'application/json')
    }
    return Buffer.from(JSON.stringify(body))
  }
  return bad('"body" must be a string, a Buffer/Uint8Array or a JSON-serialisable object')
}

/** Splits `baseUrl` + `route` into what the generator needs. */
function target(baseUrl: string, route: string): { url: URL; host: string; port: number; path: string; tls: boolean } {
  let url: URL
  try {
    url = new URL(baseUrl)
  } catch {
    return bad(`"baseUrl" is not a valid URL: ${JSON.stringify(baseUrl)}`)
  }
  if (url.protocol === 'wss:') {
    throw new HttpyTypeError('ERR_HTTPY_NOT_SUPPORTED', 'benchmarkRoute: wss targets are not supported by the load generator yet')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:' && url.protocol !== 'ws:') {
    bad(`"baseUrl" must be an http://, https:// or ws:// URL (got ${JSON.stringify(baseUrl)})`)
  }
  const prefix = url.pathname.replace(/\/+$/, '')
  const full = new URL(`${url.protocol}//${url.host}${prefix}${route}`)
  const host = full.hostname.replace(/^\[(.*)\]$/, '$1')
  const tls = url.protocol === 'https:'
  const port = full.port === '' ? (tls ? 443 : 80) : Number(full.port)
  return { url: full, host, port, path: full.pathname + full.search, tls }
}

function toResults(r: LoadResult, url: string, protocol: BenchmarkProtocol, concurrency: number): BenchmarkResults {
  const s = (us: number) => us / 1e6
  const statusCounts: Record<number, number> = {}
  let statusErrors = 0
  for (let i = 0; i + 1 < r.statuses.length; i += 2) {
    const status = r.statuses[i] as number
    const n = r.statuses[i + 1] as number
    statusCounts[status] = n
    if (status >= 400) statusErrors += n
  }
  const [connect = 0, timeout = 0, io = 0, proto = 0] = r.failures
  const errorMessages: string[] = []
  for (let i = 0; i + 1 < r.failureMessages.length; i += 2) {
    errorMessages.push(`${r.failureMessages[i]}: ${r.failureMessages[i + 1]}`)
  }
  const duration = r.elapsedMs / 1000
  return {
    url,
    protocol,
    concurrency,
    duration,
    requestsPerSecond: duration > 0 ? r.responses / duration : 0,
    avgResponseTime: s(r.latency.mean),
    minResponseTime: s(r.latency.min),
    maxResponseTime: s(r.latency.max),
    p50ResponseTime: s(r.latency.p50),
    p90ResponseTime: s(r.latency.p90),
    p95ResponseTime: s(r.latency.p95),
    p99ResponseTime: s(r.latency.p99),
    p999ResponseTime: s(r.latency.p999),
    totalRequests: r.total,
    errors: connect + timeout + io + proto + statusErrors,
    errorCounts: { connect, timeout, io, protocol: proto, status: statusErrors },
    errorMessages,
    statusCounts,
    bytesReceived: r.bytesReceived,
    connectionsOpened: r.connectionsOpened,
  }
}

/**
 * Loads one route and reports throughput and latency. Without `baseUrl` it
 * targets the app's running server, or starts the app on a free port for
 * the run and stops it after.
 *
 * ```ts
 * import { benchmarkRoute } from 'httpy/benchmark'
 * const results = await benchmarkRoute({ route: '/api/users', method: 'GET', numRequests: 1000, concurrency: 100 })
 * console.log(`Requests per second: ${results.requestsPerSecond.toFixed(2)}`)
 * console.log(`Average response time: ${(results.avgResponseTime * 1000).toFixed(2)}ms`)
 * console.log(`95th percentile: ${(results.p95ResponseTime * 1000).toFixed(2)}ms`)
 * ```
 *
 * Failed requests are counted, not thrown; only when no request at all
 * reached the server does it reject, with a `BenchmarkError` whose
 * `results` still holds the counts.
 */
export async function benchmarkRoute(options: BenchmarkOptions = {}): Promise<BenchmarkResults> {
  if (typeof options !== 'object' || options === null) bad('options must be an object')
  for (const k of Object.keys(options)) if (!KNOWN.has(k)) bad(`unknown option "${k}"`)
  const route = options.route ?? '/'
  if (typeof route !== 'string' || !route.startsWith('/')) bad(`"route" must be a path starting with "/" (got ${JSON.stringify(route)})`)
  const method = (options.method ?? 'GET').toUpperCase()
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Z]+$/.test(method)) bad(`"method" is not a valid HTTP method: ${JSON.stringify(options.method)}`)
  const numRequests = intOpt(options, 'numRequests', Number.MAX_SAFE_INTEGER)
  const duration = secondsOpt(options, 'duration', false)
  if (numRequests !== undefined && duration !== undefined) bad('give "numRequests" or "duration", not both')
  const concurrency = intOpt(options, 'concurrency', 100_000) ?? 10
  if (options.http3 !== undefined && typeof options.http3 !== 'boolean') bad('"http3" must be a boolean')
  if (options.http3 === true && options.protocol !== undefined && parseProtocol(options.protocol) !== 'http3') {
    bad('"http3: true" and "protocol" disagree')
  }
  const protocol = options.http3 === true ? 'http3' : parseProtocol(options.protocol)
  const connections = intOpt(options, 'connections', 100_000) ?? Math.ceil(concurrency / 16)
  const warmup = secondsOpt(options, 'warmup', true) ?? 0
  const timeout = secondsOpt(options, 'timeout', false) ?? 10
  const threads = intOpt(options, 'threads', 256) ?? 1
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') bad('"onProgress" must be a function')
  const headers = flatHeaders(options.headers)
  let body = encodeBody(options.body, headers)
  // A WebSocket message must have content to echo; 32 bytes as in the peers kit.
  if (protocol === 'websocket' && (body === undefined || body.length === 0)) body = Buffer.from('x'.repeat(32))
  if (options.baseUrl !== undefined && typeof options.baseUrl !== 'string') bad('"baseUrl" must be a string')
  if (options.app !== undefined && !(options.app instanceof App)) bad('"app" must be an App')
  for (const k of ['insecure', 'newConnectionPerRequest'] as const) {
    if (options[k] !== undefined && typeof options[k] !== 'boolean') bad(`"${k}" must be a boolean`)
  }
  if (options.caFile !== undefined && typeof options.caFile !== 'string') bad('"caFile" must be a file path')

  let started: Awaited<ReturnType<App['listen']>> | undefined
  let baseUrl = options.baseUrl
  if (baseUrl === undefined) {
    const app = options.app ?? defaultApp
    const running = app.server
    if (running && !running.isClosed) {
      baseUrl = running.url
    } else {
      started = await app.listen({ host: '127.0.0.1', port: 0 })
      baseUrl = started.url
    }
  }
  try {
    const t = target(baseUrl, route)
    const load: LoadOptions = {
      host: t.host,
      port: t.port,
      path: t.path,
      method,
      headers,
      body,
      protocol,
      connections: protocol === 'http2' || protocol === 'http3' ? Math.min(connections, concurrency) : concurrency,
      concurrency,
      requests: duration === undefined ? (numRequests ?? 1000) : undefined,
      durationMs: duration === undefined ? undefined : duration * 1000,
      warmupMs: warmup * 1000,
      timeoutMs: timeout * 1000,
      threads,
      tls: t.tls,
      insecure: options.insecure,
      caFile: options.caFile,
      newConnectionPerRequest: options.newConnectionPerRequest,
    }
    if (protocol === 'http3' && !t.tls) bad('HTTP/3 needs an https:// target (QUIC is always TLS)')
    if (!t.tls && (options.insecure !== undefined || options.caFile !== undefined)) {
      bad('"insecure" and "caFile" apply to https:// targets')
    }
    let raw: LoadResult
    try {
      raw = await native.runLoad(load, options.onProgress ?? null)
    } catch (e) {
      const err = fromNative(e)
      if ((err as HttpyError).code === 'ERR_HTTPY_BENCH_UNREACHABLE') throw new BenchmarkError(err.message, undefined, e)
      if ((err as HttpyError).code === 'ERR_HTTPY_INVALID_OPTION') {
        throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', `benchmarkRoute: ${err.message}`)
      }
      throw err
    }
    const results = toResults(raw, t.url.href, protocol, concurrency)
    if (raw.responses === 0 && results.errorCounts.connect > 0) {
      throw new BenchmarkError(
        `no request reached ${t.url.origin}: ${results.errorMessages[0] ?? 'connection failed'}`,
        results,
      )
    }
    return results
  } finally {
    if (started) await started.close({ timeout: 1 })
  }
}
