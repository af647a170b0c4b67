/**
 * WHATWG fetch-style handlers, `(request, info) => Response`, as used by
 * Hono, itty-router, Bun.serve and Deno.serve, adapted to HTTPy's handler
 * path: a lazy standard `Request` over HTTPy's record (`web-request.ts`)
 * goes in, and the standard `Response` that comes out is handed to the
 * server as HTTPy's own (`web-response.ts`).
 */
import type { TlsInfo } from './tls.js'
import { isIP } from 'node:net'
import { defaultToLightResponse, PlatformResponse } from './light-response.js'
import type { Request as HttpyRequest } from './request.js'
import type { Response as HttpyResponse } from './response.js'
import type { Handler } from './routes.js'
import type { Server } from './server.js'
import { WebRequest } from './web-request.js'
import { forHead, toHttpyHeadResponse, toHttpyResponse } from './web-response.js'

/** A client address, as Bun's `server.requestIP(request)` gives it. */
export interface SocketAddress {
  address: string
  family: 'IPv4' | 'IPv6'
  port: number
}

/** What a fetch handler gets besides the request. */
export interface FetchInfo {
  /** The server answering (undefined only while it is not started yet). */
  readonly server: Server | undefined
  /**
   * The client's address: the connection's peer, or behind a trusted
   * proxy (`trustProxy`) the address it reports; `port` is always the
   * peer's.
   */
  readonly remoteAddress: SocketAddress
  /** `'1.0'`, `'1.1'`, `'2'` or `'3'`. */
  readonly httpVersion: string
  /** HTTPy's own view of the request (path parameters of a mounted route, `ip`, …). */
  readonly httpyRequest: HttpyRequest
  /** SNI name and client certificate of a TLS connection (`null` in cleartext); as `req.tls`. */
  readonly tls: TlsInfo | null
  /** Same as `remoteAddress` (Bun's name, for code written against it). */
  requestIP(request?: Request): SocketAddress
}

/** `(request, info) => Response | Promise<Response>`, with the platform's `Request` and `Response`. */
export type FetchHandler = (request: Request, info: FetchInfo) => Response | Promise<Response>

/** A module the CLI can serve: `export default { fetch }` (Bun, Deno, Workers style). */
export interface FetchModule {
  fetch: FetchHandler
}

class Info implements FetchInfo {
  readonly #req: HttpyRequest
  readonly #server: () => Server | undefined
  constructor(req: HttpyRequest, server: () => Server | undefined) {
    this.#req = req
    this.#server = server
  }
  get server(): Server | undefined {
    return this.#server()
  }
  get remoteAddress(): SocketAddress {
    const address = this.#req.ip
    return { address, family: isIP(address) === 6 ? 'IPv6' : 'IPv4', port: this.#req.remotePort }
  }
  get httpVersion(): string {
    return this.#req.httpVersion
  }
  get httpyRequest(): HttpyRequest {
    return this.#req
  }
  get tls(): TlsInfo | null {
    return this.#req.tls
  }
  requestIP(): SocketAddress {
    return this.remoteAddress
  }
}

function authorityOf(server: Server | undefined): string {
  if (!server) return 'localhost'
  const a = server.address
  const host = a.includes(':') ? `[${a}]` : a
  return `${host}:${server.port}`
}

/**
 * Wraps a fetch handler as an HTTPy handler. `server` tells the running
 * server (for `info.server` and URLs of requests without a `Host`).
 */
export function fromFetch(handler: FetchHandler, server: () => Server | undefined): Handler {
  defaultToLightResponse()
  const fallback = (): string => authorityOf(server())
  return (req: HttpyRequest): HttpyResponse | Promise<HttpyResponse> => {
    const out = handler(new WebRequest(req, fallback) as unknown as Request, new Info(req, server))
    if (out instanceof PlatformResponse) {
      const res = toHttpyResponse(out)
      // Only an answer without a body can need a HEAD length (`forHead`):
      // the method is looked at then, not on every request.
      return (res as HttpyResponse).body === null && req.method === 'HEAD' ? forHead(res, out) : res
    }
    if (out !== null && typeof out === 'object' && typeof (out as Promise<Response>).then === 'function') {
      return (out as Promise<Response>).then(req.method === 'HEAD' ? toHttpyHeadResponse : toHttpyResponse)
    }
    return toHttpyResponse(out)
  }
}
