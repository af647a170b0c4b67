/**
 * The route table of one app: its routes (by id, the index the core reports
 * back in each request record), its middleware, and both composed into the
 * function each request runs. `App` fills it; `Server` reads it and sends
 * its native form (`nativeRoutes`) to the core.
 */
import { guardAccepts } from './accepts.js'
import { notAResponse } from './errors.js'
import { defaultErrorResponse } from './http-error.js'
import type { NativeMultipart, NativeRoute, NativeStatic } from './native.js'
import { NO_ROUTE } from './record.js'
import type { Request } from './request.js'
import { Response } from './response.js'
import type { CachePolicy } from './route-cache.js'
import type { WebSocketHandler, WebSocketOptions } from './websocket.js'

export type Handler = (req: Request) => Response | Promise<Response>
export type Next = (req: Request) => Promise<Response>
/** `async (req, next) => { const res = await next(req); …; return res }` */
export type Middleware = (req: Request, next: Next) => Response | Promise<Response>
/** `app.onError`: makes the response for an error thrown by a handler or middleware. */
export type ErrorHandler = (error: unknown, req: Request) => Response | Promise<Response>
/** Turns an error into its response; never throws nor rejects. */
type Fail = (error: unknown, req: Request) => Response | Promise<Response>

/** @internal */
export interface RouteEntry {
  method: string
  pattern: string
  handler: Handler
  paramNames: readonly string[]
  /** The handler wrapped in every middleware, rebuilt when middleware changes. */
  composed: (req: Request) => Response | Promise<Response>
  /** Set on WebSocket routes (method `WEBSOCKET`). */
  ws?: { handler: WebSocketHandler; options: WebSocketOptions | undefined }
  /** Set on cached routes. */
  cache?: CachePolicy
  /** The handler behind the JS-side cache, used while the app has middleware the route may not skip. */
  cachedHandler?: Handler
  /** Set on a `serveStatic` mount (answered by the core, never by JS). */
  staticFiles?: NativeStatic
  /** Media types the route takes as request body (`accepts` option); others get 415. */
  accepts?: readonly string[]
  /** Long request bodies stream to the handler (`streamBody` option). */
  streamBody?: boolean
  /** Multipart bodies are parsed by the core (`multipart` option). */
  multipart?: NativeMultipart
  /** With `multipart`: a fetch route, whose bodies are parsed only when taken as parts (`formData()`). */
  partsOnAsk?: boolean
}

/** Route-table method of WebSocket routes (matched only by upgrade requests). */
export const WEBSOCKET = 'WEBSOCKET'

const EMPTY: readonly string[] = []

/** Names of a pattern's `{name}` / `{name:type}` segments, in order. */
export function paramNamesOf(pattern: string): string[] {
  const names: string[] = []
  for (const seg of pattern.split('/')) {
    if (seg.startsWith('{') && seg.endsWith('}')) names.push(seg.slice(1, -1).split(':')[0] as string)
  }
  return names
}

/** A middleware chain as the `next` of the middleware outside it. */
function asNext(fn: (req: Request) => Response | Promise<Response>): Next {
  return (req) => {
    try {
      return Promise.resolve(fn(req))
    } catch (e) {
      return Promise.reject(e)
    }
  }
}

/**
 * The handler as the innermost middleware's `next`: always a promise of a
 * `Response`. What the handler throws or rejects with, and a value that is
 * not a Response, becomes its error response here, so the middleware sees a
 * Response and can add its headers to it.
 */
function settled(fn: (req: Request) => Response | Promise<Response>, fail: Fail): Next {
  return (req) => {
    let out: Response | Promise<Response>
    try {
      out = fn(req)
    } catch (e) {
      return Promise.resolve(fail(e, req))
    }
    if (out instanceof Response) return Promise.resolve(out)
    if (out !== null && typeof out === 'object' && typeof (out as Promise<Response>).then === 'function') {
      return Promise.resolve(out).then(
        (res: unknown) => (res instanceof Response ? res : fail(notAResponse(req, res), req)),
        (e: unknown) => fail(e, req),
      )
    }
    return Promise.resolve(fail(notAResponse(req, out), req))
  }
}

function notFound(req: Request): Response {
  const allow = req._allow
  if (allow !== null) {
    return new Response('Method Not Allowed', {
      status: 405,
      headers: { allow, 'content-type': 'text/plain; charset=utf-8' },
    })
  }
  return new Response('Not Found', { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8' } })
}

/** @internal */
export class RouteTable {
  /** Route `i` is the route the core reports as id `i`. */
  readonly entries: RouteEntry[] = []
  readonly middleware: Middleware[] = []
  /** What runs when no route matched (404/405 unless middleware answers). */
  missHandler: (req: Request) => Response | Promise<Response> = notFound
  /** `app.onError`'s handler. */
  errorHandler: ErrorHandler | undefined
  /** Set by the running server: an error's response (via `errorHandler`), logged or reported as it sees fit. */
  fail: Fail = (err) => defaultErrorResponse(err, false)
  /** What answers requests no route matched, instead of 404/405 (`App.fetch`). */
  fallback: Handler | undefined
  /** The catch-all fetch handler's multipart limits (`formData()` on a multipart body). */
  fallbackMultipart: NativeMultipart | undefined

  /** Parameter names of route `route` (none for a miss or an id JS did not assign). */
  readonly paramNamesOf = (route: number): readonly string[] =>
    route === NO_ROUTE ? EMPTY : (this.entries[route]?.paramNames ?? EMPTY)

  has(method: string, pattern: string): boolean {
    return this.entries.some((r) => r.method === method && r.pattern === pattern)
  }

  /** Whether the core answers this cached route's hits (no middleware would be skipped, or the route allows it). */
  nativeCache(policy: CachePolicy): boolean {
    return policy.skipMiddleware || this.middleware.length === 0
  }

  /**
   * Wraps every route's handler, and the miss handler, in the middleware.
   * With middleware, the handler's errors and non-Response values become
   * error responses before the innermost middleware sees them. What a
   * middleware itself throws is answered by the server directly, without
   * the middleware outside it: catching at every level would cost a
   * promise per middleware on every request.
   */
  compose(): void {
    const fail: Fail = (err, req) => this.fail(err, req)
    const wrap = (inner: (req: Request) => Response | Promise<Response>) => {
      if (this.middleware.length === 0) return inner
      let fn = inner
      let next = settled(inner, fail)
      for (let i = this.middleware.length - 1; i >= 0; i--) {
        const mw = this.middleware[i] as Middleware
        const n = next
        fn = (req) => mw(req, n)
        if (i > 0) next = asNext(fn)
      }
      return fn
    }
    for (const r of this.entries) {
      let inner = r.cache && r.cachedHandler && !this.nativeCache(r.cache) ? r.cachedHandler : r.handler
      if (r.accepts) inner = guardAccepts(inner, r.accepts)
      r.composed = wrap(inner)
    }
    this.missHandler = wrap(this.fallback ?? notFound)
  }

  /** The table as the core takes it. */
  nativeRoutes(): NativeRoute[] {
    return this.entries.map((r, id) => {
      const cache = r.cache && this.nativeCache(r.cache) ? r.cache : undefined
      return {
        method: r.method,
        pattern: r.pattern,
        id,
        staticFiles: r.staticFiles,
        cacheTtlMs: cache ? cache.ttl * 1000 : undefined,
        cacheKeyHeaders: cache ? [...cache.key] : undefined,
        streamBody: r.streamBody,
        multipart: r.multipart,
        partsOnAsk: r.partsOnAsk,
      }
    })
  }
}
