/**
 * The default app: the one the module-level functions (`get`, `post`,
 * `addMiddleware`, `run`, …) of the package act on, mirroring the guide.
 * `index.ts` re-exports all of it; `benchmark.ts` loads this app when given
 * no other.
 */
import { App, type ErrorHandler, type Handler, type Middleware, type RouteOptions, type StaticOptions } from './app.js'
import type { Supervisor } from './cluster.js'
import type { ServerOptions } from './options.js'
import type { Server } from './server.js'
import type { WebSocketHandler, WebSocketOptions } from './websocket.js'

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
/** WebSockets of the default app subscribed to `topic`, in every worker (see `App.subscriberCount`). */
export const subscriberCount = (topic: string): number => defaultApp.subscriberCount(topic)
export const addMiddleware = (mw: Middleware): App => defaultApp.use(mw)
/** Sets the default app's error handler (see `App.onError`). */
export const onError = (handler: ErrorHandler): App => defaultApp.onError(handler)
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
  return defaultApp._run(opts)
}

/** Registers a readiness endpoint on the default app (see `App.healthCheck`). */
export const healthCheck = (path?: string): App => defaultApp.healthCheck(path)
