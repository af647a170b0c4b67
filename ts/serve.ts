/**
 * `serve({ fetch, ...options })`: runs a WHATWG fetch-style handler
 * (Hono's `app.fetch`, a Bun/Deno/Workers module's `fetch`) on its own app,
 * with every option of `run()`.
 */
import { App, type FetchOptions } from './app.js'
import type { Supervisor } from './cluster.js'
import { HttpyTypeError } from './errors.js'
import type { FetchHandler } from './fetch.js'
import type { ServerOptions } from './options.js'
import type { Server } from './server.js'

export interface ServeOptions extends ServerOptions, FetchOptions {
  /** Answers every request: `(request, info) => Response | Promise<Response>`. */
  fetch: FetchHandler
}

/**
 * Serves `fetch` for every request (any method, any path), with the
 * options of `run()`: TLS, HTTP/2, HTTP/3, compression, metrics, limits,
 * `workers`. Like `run()`, SIGINT/SIGTERM close it gracefully.
 *
 * ```ts
 * import { Hono } from 'hono'
 * import { serve } from 'httpy'
 *
 * const app = new Hono().get('/', (c) => c.text('hello'))
 * await serve({ fetch: app.fetch, port: 8080 })
 * ```
 */
export function serve(opts: ServeOptions & { workers: number }): Promise<Server | Supervisor>
export function serve(opts: ServeOptions): Promise<Server>
export async function serve(opts: ServeOptions): Promise<Server | Supervisor> {
  if (opts === null || typeof opts !== 'object' || typeof opts.fetch !== 'function') {
    throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'serve: "fetch" must be a function (request, info) => Response')
  }
  const { fetch, multipart, ...rest } = opts
  return new App().fetch(fetch, { multipart })._run(rest)
}
