/**
 * HTTPy for Node.js: a Rust core behind a small TypeScript API.
 *
 * The module-level functions (`get`, `post`, `addMiddleware`, `run`, …)
 * act on one default `App`, mirroring the guide; `new App()` gives an
 * isolated one for tests and embedding.
 */
import { App, cached, type Handler, type Middleware, type RouteOptions, type StaticOptions } from './app.js'
import { runApp, type Supervisor } from './cluster.js'
import type { ServerOptions } from './options.js'
import type { Server } from './server.js'
import type { WebSocketHandler, WebSocketOptions } from './websocket.js'

export { App, cached }
export type { Handler, Middleware, Next, RouteOptions, CacheOptions, StaticOptions } from './app.js'
export { Request, type HttpVersion } from './request.js'
export { Response, FileBody, type ResponseBody, type ResponseInit, type StreamBody } from './response.js'
export { Headers, type HeadersInit, type ReadonlyHeaders } from './headers.js'
export { Server, type CloseOptions, type ServerStats } from './server.js'
export type { ServerOptions, CompressionOptions, MetricsOptions, MetricsRegistry, AccessLogOptions } from './options.js'
export { Supervisor } from './cluster.js'
export type { TrustProxy } from './proxy.js'
export { HTTP3_AVAILABLE, type Http3Config } from './http3.js'
export type { TlsOptions, PemSource } from './tls.js'
export {
  WebSocketConnection,
  WebSocketClosedError,
  type WebSocketMessage,
  type WebSocketHandler,
  type WebSocketOptions,
  type WebSocketCloseInfo,
} from './websocket.js'
export { HttpyError, HttpyTypeError, type HttpyErrorCode } from './errors.js'

/** The app the module-level functions register on. */
export const defaultApp = new App()

export const route = (methods: string | readonly string[], path: string, handler: Handler, opts?: RouteOptions): App =>
  defaultApp.route(methods, path, handler, opts)
export const get = (path: string, handler: Handler, opts?: RouteOptions): App => defaultApp.get(path, handler, opts)
export const post = (path: string, handler: Handler, opts?: RouteOptions): App => defaultApp.post(path, handler, opts)
export const put = (path: string, handler: Handler, opts?: RouteOptions): App => defaultApp.put(path, handler, opts)
export const patch = (path: string, handler: Handler, opts?: RouteOptions): App => defaultApp.patch(path, handler, opts)
export const del = (path: string, handler: Handler, opts?: RouteOptions): App => defaultApp.delete(path, handler, opts)
export const head = (path: string, handler: Handler, opts?: RouteOptions): App => defaultApp.head(path, handler, opts)
export const options = (path: string, handler: Handler, opts?: RouteOptions): App =>
  defaultApp.options(path, handler, opts)
/**
 * Registers a WebSocket route on the default app.
 *
 * ```ts
 * websocket('/ws', async (ws) => {
 *   for await (const msg of ws) if (msg.type === 'text') await ws.sendText(msg.data)
 * })
 * ```
 */
export const websocket = (path: string, handler: WebSocketHandler, opts?: WebSocketOptions): App =>
  defaultApp.websocket(path, handler, opts)
/** Sends to every WebSocket of the default app subscribed to `topic`; returns how many. */
export const publish = (topic: string, data: string | Buffer | Uint8Array | ArrayBuffer): number =>
  defaultApp.publish(topic, data)
export const addMiddleware = (mw: Middleware): App => defaultApp.use(mw)
/** Serves the files under `dir` at `urlPrefix` natively; see `App.serveStatic`. */
export const serveStatic = (urlPrefix: string, dir: string, opts?: StaticOptions): App =>
  defaultApp.serveStatic(urlPrefix, dir, opts)

/**
 * Starts the default app and closes it gracefully on SIGINT/SIGTERM
 * (after `shutdownDelay`, within `shutdownTimeout`), then exits. With
 * `workers`, the calling (primary) process forks that many workers, each
 * running this program and serving the same port, and supervises them.
 *
 * ```ts
 * await run({ host: '0.0.0.0', port: 8080 })
 * await run({ host: '0.0.0.0', port: 8080, workers: availableParallelism() })
 * ```
 */
export function run(opts: ServerOptions & { workers: number }): Promise<Server | Supervisor>
export function run(opts?: ServerOptions): Promise<Server>
export function run(opts?: ServerOptions): Promise<Server | Supervisor> {
  return runApp(defaultApp, opts)
}

/** Registers a readiness endpoint on the default app (see `App.healthCheck`). */
export const healthCheck = (path?: string): App => defaultApp.healthCheck(path)
