/**
 * HTTPy for Node.js: a Rust core behind a small TypeScript API.
 *
 * The module-level functions (`get`, `post`, `addMiddleware`, `run`, …)
 * act on one default `App`, mirroring the guide; `new App()` gives an
 * isolated one for tests and embedding.
 */
export { App, cached } from './app.js'
export type { ErrorHandler, Handler, Middleware, Next, RouteOptions, CacheOptions, StaticOptions } from './app.js'
export { Request, type HttpVersion } from './request.js'
export { Part, type MultipartOptions } from './multipart.js'
export { Response, FileBody, type ResponseBody, type ResponseInit, type StreamBody } from './response.js'
export { Headers, type HeadersInit, type ReadonlyHeaders } from './headers.js'
export { Server, type CloseOptions, type ServerStats } from './server.js'
export { serve, type ServeOptions } from './serve.js'
export type { FetchHandler, FetchInfo, FetchModule, SocketAddress } from './fetch.js'
export { overrideGlobalResponse } from './light-response.js'
export type { ServerOptions, CompressionOptions, MetricsOptions, MetricsRegistry, AccessLogOptions, PubSubOptions } from './options.js'
export { Supervisor } from './cluster.js'
export type { TrustProxy } from './proxy.js'
export { HTTP3_AVAILABLE, type Http3Config } from './http3.js'
export type { TlsOptions, PemSource, CertificateOptions, ClientAuthOptions, TlsInfo, ClientCertificate } from './tls.js'
export {
  WebSocketConnection,
  WebSocketClosedError,
  type WebSocketMessage,
  type WebSocketHandler,
  type WebSocketOptions,
  type WebSocketCloseInfo,
} from './websocket.js'
export { HttpyError, HttpyTypeError, type HttpyErrorCode } from './errors.js'
export { HttpError, type HttpErrorOptions } from './http-error.js'

export {
  defaultApp,
  route,
  get,
  post,
  put,
  patch,
  del,
  head,
  options,
  websocket,
  publish,
  subscriberCount,
  addMiddleware,
  onError,
  serveStatic,
  run,
  healthCheck,
} from './default-app.js'
