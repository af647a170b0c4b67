/**
 * Type tests for fetch-style handlers, checked by `tsc --noEmit`: the
 * shapes users write (a plain handler, a Hono app's `fetch`, a Bun-style
 * module) compile; handlers of the wrong shape do not.
 */
import { Hono } from 'hono'
import { expectTypeOf } from 'vitest'
import { App, serve, type FetchHandler, type FetchInfo, type FetchModule, type Server, type Supervisor } from '../../ts/index.js'

export async function shapes(): Promise<void> {
  const plain: FetchHandler = (request, info) => {
    expectTypeOf(request).toEqualTypeOf<Request>()
    expectTypeOf(info.remoteAddress.family).toEqualTypeOf<'IPv4' | 'IPv6'>()
    return new Response(request.url)
  }
  expectTypeOf(await serve({ fetch: plain, port: 0 })).toEqualTypeOf<Server>()
  expectTypeOf(await serve({ fetch: plain, workers: 2 })).toEqualTypeOf<Server | Supervisor>()

  // Hono, untyped and with FetchInfo as its bindings.
  await serve({ fetch: new Hono().fetch, tls: 'self-signed', http3Port: 0, compression: true })
  await serve({ fetch: new Hono<{ Bindings: FetchInfo }>().fetch })
  new App().fetch(new Hono().fetch).fetch('/mount/{rest:path}', async () => Response.json({ ok: true }))

  const mod: FetchModule = { fetch: () => new Response('') }
  await serve({ fetch: mod.fetch })

  // @ts-expect-error a handler must return a Response
  await serve({ fetch: () => 'text' })
  // @ts-expect-error fetch is required
  await serve({ port: 0 })
  // @ts-expect-error serve's options are run()'s: no unknown keys
  await serve({ fetch: plain, hostname: 'x' })
}
