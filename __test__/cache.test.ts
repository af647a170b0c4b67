/**
 * The native route cache (`{cache: {ttl}}` and `cached({ttl})`): a call
 * counter in each handler proves that hits never enter JS, that concurrent
 * misses run the handler once, and that only cacheable responses are kept.
 */
import http from 'node:http'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, cached, type Server } from '../ts/index.js'
import { listen } from './helpers/index.js'
import { sleep } from './helpers/wait.js'

let server: Server
let url: string
const calls: Record<string, number> = {}
const count = (k: string) => {
  calls[k] = (calls[k] ?? 0) + 1
  return calls[k]
}

function req(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const r = http.request(`${url}${path}`, { method, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    r.on('error', reject)
    r.end()
  })
}

beforeAll(async () => {
  const app = new App()
  app.get('/exp', (r) => Response.json({ n: count('exp'), q: r.queryString }), { cache: { ttl: 0.4 } })
  // The guide's decorator form.
  app.get(
    '/api/expensive-operation',
    cached({ ttl: 300 })(async () => {
      count('guide')
      await sleep(150)
      return Response.json({ result: 'expensive calculation' })
    }),
  )
  app.get('/nostore', () => new Response(String(count('nostore')), { headers: { 'cache-control': 'no-store' } }), { cache: { ttl: 60 } })
  app.get('/private', () => new Response(String(count('private')), { headers: { 'cache-control': 'private' } }), { cache: { ttl: 60 } })
  app.get('/nocache', () => new Response(String(count('nocache')), { headers: { 'cache-control': 'no-cache' } }), { cache: { ttl: 60 } })
  app.get('/varystar', () => new Response(String(count('varystar')), { headers: { vary: '*' } }), { cache: { ttl: 60 } })
  app.get('/created', () => new Response(String(count('created')), { status: 201 }), { cache: { ttl: 60 } })
  app.get('/cookie', () => new Response(String(count('cookie')), { headers: { 'set-cookie': 'a=1' } }), { cache: { ttl: 60 } })
  app.route(['GET', 'POST'], '/both', (r) => Response.text(`${r.method} ${count('both')}`), { cache: { ttl: 60 } })
  app.get('/lang', (r) => new Response(`${r.headers.get('accept-language')} ${count('lang')}`, { headers: { vary: 'Accept-Language', 'content-type': 'text/plain' } }), { cache: { ttl: 60 } })
  app.get('/throws', () => {
    count('throws')
    throw new Error('boom')
  }, { cache: { ttl: 60 } })
  app.get('/json', () => {
    count('json')
    return Response.json(Array.from({ length: 2000 }, (_, i) => ({ i, s: 'cached payload' })))
  }, { cache: { ttl: 60 } })
  server = await listen(app, { compression: true, onError: () => {} })
  url = server.url
})

afterAll(async () => {
  await server?.close()
})

describe('route cache', () => {
  it('answers hits natively: the handler runs once per key and ttl', async () => {
    const before = server.stats().nativeResponses
    const first = await req('/exp?a=1')
    for (let i = 0; i < 20; i++) {
      const r = await req('/exp?a=1')
      expect(r.body.toString()).toBe(first.body.toString())
    }
    expect(calls.exp).toBe(1)
    expect(server.stats().nativeResponses - before).toBe(20)
    await req('/exp?a=2')
    expect(calls.exp).toBe(2)
    await sleep(500) // past the ttl
    const fresh = await req('/exp?a=1')
    expect(JSON.parse(fresh.body.toString()).n).toBe(3)
    await req('/exp?a=1')
    expect(calls.exp).toBe(3)
  })

  it('runs the handler once for concurrent misses (cached() wrapper, as in the guide)', async () => {
    const all = await Promise.all(Array.from({ length: 20 }, () => req('/api/expensive-operation')))
    expect(calls.guide).toBe(1)
    for (const r of all) expect(JSON.parse(r.body.toString())).toEqual({ result: 'expensive calculation' })
    await req('/api/expensive-operation')
    expect(calls.guide).toBe(1)
  })

  it('does not keep no-store, private, no-cache, Vary: *, non-200 or Set-Cookie responses', async () => {
    for (const k of ['nostore', 'private', 'nocache', 'varystar', 'created', 'cookie']) {
      await req(`/${k}`)
      await req(`/${k}`)
      expect(calls[k], k).toBe(2)
    }
  })

  it('caches GET only; HEAD is served from the GET entry', async () => {
    await req('/both')
    await req('/both')
    expect(calls.both).toBe(1)
    const p1 = await req('/both', {}, 'POST')
    const p2 = await req('/both', {}, 'POST')
    expect(p1.body.toString()).toBe('POST 2')
    expect(p2.body.toString()).toBe('POST 3')
    const h = await req('/both', {}, 'HEAD')
    expect(h.status).toBe(200)
    expect(h.body.length).toBe(0)
    expect(h.headers['content-length']).toBe(String('GET 1'.length))
    expect(calls.both).toBe(3)
  })

  it('keys on the request headers named in Vary', async () => {
    const en = await req('/lang', { 'accept-language': 'en' })
    const fr = await req('/lang', { 'accept-language': 'fr' })
    expect(en.body.toString()).toBe('en 1')
    expect(fr.body.toString()).toBe('fr 2')
    expect((await req('/lang', { 'accept-language': 'en' })).body.toString()).toBe('en 1')
    expect((await req('/lang', { 'accept-language': 'fr' })).body.toString()).toBe('fr 2')
    expect(calls.lang).toBe(2)
  })

  it('does not cache failures: a throwing handler is called again', async () => {
    expect((await req('/throws')).status).toBe(500)
    expect((await req('/throws')).status).toBe(500)
    expect(calls.throws).toBe(2)
  })

  it('serves hits compressed when the client accepts it, still without JS', async () => {
    const plain = await req('/json')
    const z1 = await req('/json', { 'accept-encoding': 'gzip' })
    const z2 = await req('/json', { 'accept-encoding': 'gzip' })
    expect(z1.headers['content-encoding']).toBe('gzip')
    expect(gunzipSync(z1.body).equals(plain.body)).toBe(true)
    expect(z2.body.equals(z1.body)).toBe(true)
    expect(calls.json).toBe(1)
  })

  it('rejects a bad ttl with a stable code', () => {
    expect(() => cached({ ttl: 0 })).toThrow(expect.objectContaining({ code: 'ERR_HTTPY_INVALID_OPTION' }))
    expect(() => new App().get('/x', () => Response.text('x'), { cache: { ttl: -1 } })).toThrow(
      expect.objectContaining({ code: 'ERR_HTTPY_INVALID_OPTION' }),
    )
  })
})
