/**
 * The route cache kept in JS, for cached routes of an app with middleware
 * (unless the route says `skipMiddleware: true`). The middleware chain runs
 * on every request, as it does for any other route, and only the handler's
 * answer is reused: an auth middleware still refuses a client on a hit.
 * Without middleware (or with `skipMiddleware`) the core keeps the cache
 * itself and answers hits without entering JS.
 *
 * The rules are those of the core's cache (`crates/core/src/cache.rs`): key
 * by path and query, refined by the request headers named in the response's
 * `Vary` and by the route's `key` headers; store only 200 answers with a
 * whole body and without `Set-Cookie`, `Cache-Control: no-store / private /
 * no-cache` or `Vary: *`; a request with `Authorization` or `Cookie` bypasses
 * the cache unless the route's `key` names that header (RFC 9111 §3.5).
 */
import { Headers } from './headers.js'
import type { Request } from './request.js'
import { Response } from './response.js'

/** What a cached route was registered with (names in lower case). */
export interface CachePolicy {
  ttl: number
  key: readonly string[]
  skipMiddleware: boolean
}

type Answer = (req: Request) => Response | Promise<Response>

/** Request headers that say who the client is. */
const CREDENTIALS = ['authorization', 'cookie'] as const

/** Bounds of one route's cache: entries and bytes, least recently used out first. */
const MAX_ENTRIES = 10_000
const MAX_BYTES = 64 * 1024 * 1024

interface Stored {
  status: number
  headers: Headers
  body: string | Uint8Array | null
  expires: number
  size: number
}

/** The request's cache key, or `undefined` when it must bypass the cache. */
export function requestKey(req: Request, key: readonly string[]): string | undefined {
  for (const c of CREDENTIALS) {
    if (req.headers.has(c) && !key.includes(c)) return undefined
  }
  // LF and NUL cannot occur in a header value, so distinct values never
  // give one key.
  let k = `${req.path}?${req.queryString}`
  for (const name of key) k += `\n${req.headers.getAll(name).join('\0')}`
  return k
}

function varyNames(res: Response): string[] | undefined {
  const names: string[] = []
  for (const v of res.headers.getAll('vary')) {
    for (const part of v.split(',')) {
      const n = part.trim().toLowerCase()
      if (n === '*') return undefined
      if (n) names.push(n)
    }
  }
  return names
}

function storable(res: Response): res is Response & { body: string | Uint8Array | null } {
  if (res.status !== 200 || res.headers.has('set-cookie')) return false
  const body = res.body
  if (!(body === null || typeof body === 'string' || body instanceof Uint8Array)) return false
  return !res.headers.getAll('cache-control').some((v) => /no-store|private|no-cache/i.test(v))
}

function varyKey(req: Request, names: readonly string[]): string {
  return names.map((n) => req.headers.getAll(n).join('\0')).join('\n')
}

/**
 * Wraps `handler` so that its storable answers are reused for `ttl` seconds.
 * Concurrent misses for one key run the handler once; when that answer
 * cannot be stored, each waiter runs the handler itself.
 */
export function cachingHandler(handler: Answer, policy: CachePolicy): Answer {
  const vary = new Map<string, string[]>()
  const entries = new Map<string, Stored>()
  const filling = new Map<string, Promise<Stored | undefined>>()
  let bytes = 0

  const drop = (k: string): void => {
    const e = entries.get(k)
    if (e) {
      bytes -= e.size
      entries.delete(k)
    }
  }
  const hit = (e: Stored): Response => new Response(e.body, { status: e.status, headers: new Headers(e.headers) })
  const lookup = (base: string, req: Request): Stored | undefined => {
    const names = vary.get(base)
    if (!names) return undefined
    const k = `${base}\n\n${varyKey(req, names)}`
    const e = entries.get(k)
    if (!e) return undefined
    drop(k)
    if (e.expires <= Date.now()) return undefined
    // Re-inserted so the map's order stays least recently used first.
    entries.set(k, e)
    bytes += e.size
    return e
  }
  const store = (base: string, req: Request, res: Response): Stored | undefined => {
    if (!storable(res)) return undefined
    const names = varyNames(res)
    if (!names) return undefined
    const body = res.body
    const size = (typeof body === 'string' ? Buffer.byteLength(body) : (body?.byteLength ?? 0)) + 256
    if (size > MAX_BYTES) return undefined
    const before = vary.get(base)
    if (before && before.join(',') !== names.join(',')) {
      // The answer changed what it varies on: older variants are keyed differently.
      for (const k of [...entries.keys()]) if (k.startsWith(`${base}\n\n`)) drop(k)
    }
    vary.set(base, names)
    const k = `${base}\n\n${varyKey(req, names)}`
    drop(k)
    // A binary body is copied once: the handler may reuse or change its
    // buffer after returning it, and the entry must keep what was sent.
    const kept = body instanceof Uint8Array ? Buffer.from(body) : body
    const e: Stored = { status: res.status, headers: new Headers(res.headers), body: kept, expires: Date.now() + policy.ttl * 1000, size }
    entries.set(k, e)
    bytes += size
    for (const old of entries.keys()) {
      if (entries.size <= MAX_ENTRIES && bytes <= MAX_BYTES) break
      if (old !== k) drop(old)
    }
    return e
  }

  return async (req) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return handler(req)
    const base = requestKey(req, policy.key)
    if (base === undefined) return handler(req)
    for (let round = 0; round < 2; round++) {
      const e = lookup(base, req)
      if (e) return hit(e)
      const pending = filling.get(base)
      if (!pending) break
      if ((await pending) === undefined) break
    }
    // HEAD never fills an entry: a HEAD handler may leave the body out.
    if (req.method === 'HEAD' || filling.has(base)) return handler(req)
    let done!: (s: Stored | undefined) => void
    filling.set(base, new Promise((r) => (done = r)))
    let stored: Stored | undefined
    try {
      const res = await handler(req)
      stored = res instanceof Response ? store(base, req, res) : undefined
      // The stored form is kept apart from what middleware may now rewrite.
      return stored ? hit(stored) : res
    } finally {
      filling.delete(base)
      done(stored)
    }
  }
}
