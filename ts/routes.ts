/**
 * The route table of one app: its routes (by id, the index the core reports
 * back in each request record), its middleware, and both composed into the
 * function each request runs. `App` fills it; `Server` reads it and sends
 * its native form (`nativeRoutes`) to the core.
 */
import type { NativeRoute, NativeStatic } from './native.js'
import { NO_ROUTE } from './record.js'
import type { Request } from './request.js'
import { Response } from './response.js'
import type { CachePolicy } from './route-cache.js'
import type { WebSocketHandler, WebSocketOptions } from './websocket.js'

export type Handler = (req: Request) => Response | Promise<Response>
export type Next = (req: Request) => Promise<Response>
/** `async (req, next) => { const res = await next(req); …; return res }` */
export type Middleware = (req: Request, next: Next) => Response | Promise<Response>

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
  /** What answers requests no route matched, instead of 404/405 (`App.fetch`). */
  fallback: Handler | undefined

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

  /** Wraps every route's handler, and the miss handler, in the middleware. */
  compose(): void {
    const wrap = (inner: (req: Request) => Response | Promise<Response>) => {
      let fn = inner
      for (let i = this.middleware.length - 1; i >= 0; i--) {
        const mw = this.middleware[i] as Middleware
        const next = fn
        const nextAsync: Next = (req) => {
          try {
            return Promise.resolve(next(req))
          } catch (e) {
            return Promise.reject(e)
          }
        }
        fn = (req) => mw(req, nextAsync)
      }
      return fn
    }
    for (const r of this.entries) {
      const inner = r.cache && r.cachedHandler && !this.nativeCache(r.cache) ? r.cachedHandler : r.handler
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
      }
    })
  }
}
