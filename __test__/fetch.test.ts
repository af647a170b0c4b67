/**
 * WHATWG fetch-style handlers (`serve({ fetch })`, `app.fetch()`): the
 * lazy standard Request (identity, URL, headers, every body method,
 * `clone()`), standard Responses of every body kind on the wire, errors
 * that name the problem, and the same over HTTP/2 and TLS. Real sockets,
 * real clients (`fetch`, `node:http`, `node:http2`).
 */
import http from 'node:http'
import http2 from 'node:http2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response as HttpyResponse, overrideGlobalResponse, serve, type FetchInfo, type Server } from '../ts/index.js'
import { rawRequest } from './helpers/index.js'

/** Whatever the handler saw, for the assertions. */
interface Seen {
  instance: boolean
  method: string
  url: string
  headersIsHeaders: boolean
  ua: string | null
  info: { address: string; family: string; port: number; sameServer: boolean; httpVersion: string }
}

const errors: unknown[] = []
/**
 * The header lines a `/headers-compare` request carries, and the names
 * asked: the handler answers each question from the lazy `request.headers`
 * and from the platform's (undici's) `new Headers(pairs)` on the same lines.
 */
const headerCase: { pairs: [string, string][]; names: unknown[] } = { pairs: [], names: [] }

/** What `get`/`has` answer for each name, or the error they throw. */
function ask(h: Headers, names: unknown[]): unknown[] {
  return names.map((n) => {
    try {
      return [h.get(n as string), h.has(n as string)]
    } catch (e) {
      return `${(e as Error).name}: ${(e as Error).message}`
    }
  })
}
/** Chunks pulled from the endless stream, and whether it was cancelled. */
const endless = { pulled: 0, cancelled: false }
let server: Server
let base: string

const enc = new TextEncoder()

async function handler(req: Request, info: FetchInfo): Promise<Response> {
  const url = new URL(req.url)
  switch (url.pathname) {
    case '/seen': {
      const ip = info.remoteAddress
      const seen: Seen = {
        instance: req instanceof Request,
        method: req.method,
        url: req.url,
        headersIsHeaders: req.headers instanceof Headers,
        ua: req.headers.get('user-agent'),
        info: { ...ip, sameServer: info.server === server, httpVersion: info.httpVersion },
      }
      return Response.json(seen)
    }
    case '/headers-compare': {
      const expected = new Headers(headerCase.pairs)
      const got = req.headers
      const lazy = ask(got, headerCase.names)
      const result = {
        isHeaders: got instanceof Headers,
        tag: Object.prototype.toString.call(got),
        same: req.headers === got,
        lazy,
        setCookie: got.getSetCookie(),
        listed: [...got],
        after: ask(got, headerCase.names),
        expected: { ask: ask(expected, headerCase.names), setCookie: expected.getSetCookie(), listed: [...expected] },
      }
      // Changes go through the platform's list; a clone made later has them.
      got.set('X-Added', 'yes')
      got.delete('x-dup')
      const copy = req.clone()
      got.append('x-late', '1')
      return Response.json({
        ...result,
        changed: [got.get('x-added'), got.has('x-dup'), copy.headers.get('x-added'), copy.headers.has('x-dup'), got.get('x-late'), copy.headers.get('x-late')],
        copied: [...new Headers(got)].length === [...got].length,
      })
    }
    case '/text':
      return new Response(await req.text())
    case '/json':
      return Response.json({ got: await req.json() })
    case '/bytes': {
      const ab = await req.arrayBuffer()
      return new Response(String(ab.byteLength))
    }
    case '/stream-in': {
      let n = 0
      for await (const chunk of req.body as ReadableStream<Uint8Array>) n += chunk.byteLength
      return new Response(String(n))
    }
    case '/form': {
      const form = await req.formData()
      const out: Record<string, string> = {}
      for (const [k, v] of form) out[k] = typeof v === 'string' ? v : `file:${v.name}:${await v.text()}`
      return Response.json(out)
    }
    case '/clone': {
      const copy = req.clone()
      return Response.json({ a: await req.text(), b: await copy.text(), copyIsRequest: copy instanceof Request })
    }
    case '/twice': {
      await req.text()
      try {
        await req.text()
        return new Response('read twice')
      } catch (e) {
        return new Response(`second read: ${(e as Error).name}, bodyUsed ${req.bodyUsed}`)
      }
    }
    case '/signal':
      return new Response(`${req.signal instanceof AbortSignal} ${req.signal.aborted}`)
    case '/string':
      return new Response('plain', { status: 201, headers: { 'x-one': '1' } })
    case '/arraybuffer':
      return new Response(enc.encode('from an ArrayBuffer').buffer as ArrayBuffer)
    case '/typed':
      return new Response(enc.encode('xx typed yy').subarray(3, 8))
    case '/blob':
      return new Response(new Blob(['a blob'], { type: 'text/x-blob' }))
    case '/stream': {
      let i = 0
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(c) {
            await new Promise((r) => setTimeout(r, 2))
            if (i === 5) c.close()
            else c.enqueue(enc.encode(`chunk${i++};`))
          },
        }),
        { headers: { 'content-type': 'text/plain' } },
      )
    }
    case '/endless': {
      endless.pulled = 0
      endless.cancelled = false
      const chunk = new Uint8Array(64 * 1024)
      return new Response(
        new ReadableStream<Uint8Array>(
          {
            pull(c) {
              endless.pulled++
              c.enqueue(chunk)
            },
            cancel() {
              endless.cancelled = true
            },
          },
          { highWaterMark: 0 },
        ),
      )
    }
    case '/big':
      return new Response('z'.repeat(100_000))
    case '/json-out':
      return Response.json({ hello: 'world' }, { status: 202 })
    case '/redirect':
      return Response.redirect(new URL('/string', req.url), 307)
    case '/cookies': {
      const h = new Headers({ 'content-type': 'text/plain' })
      h.append('set-cookie', 'a=1; Path=/')
      h.append('set-cookie', 'b=2; HttpOnly')
      return new Response('cookies', { headers: h })
    }
    case '/length':
      return new Response('four', { headers: { 'content-length': '4' } })
    case '/late-header': {
      const r = new Response('late')
      r.headers.set('x-late', '1')
      return r
    }
    case '/read-first': {
      const r = new Response('abc')
      const copy = await r.clone().text()
      return new Response(`${copy}!`, { headers: [['x-pairs', 'yes']] })
    }
    case '/platform':
      return Response.json({ platform: true }, { headers: { 'x-given': 'g' } })
    case '/rebuilt': {
      // Hono's c.header() after `await next()`: the response rebuilt from its own body stream.
      const first = new Response('rebuilt', { headers: { 'x-first': '1' } })
      const again = new Response(first.body, first)
      again.headers.set('x-again', '2')
      return again
    }
    case '/rebuilt-read': {
      const first = new Response('gone')
      const again = new Response(first.body, first)
      await first.body?.getReader().read()
      return again
    }
    case '/empty':
      return new Response(null, { status: 204 })
    case '/not-a-response':
      return { status: 200 } as unknown as Response
    case '/error-response':
      return Response.error()
    case '/throws':
      throw new Error('boom')
    default:
      return new Response(`no ${url.pathname}`, { status: 404 })
  }
}

beforeAll(async () => {
  server = await serve({ fetch: handler, host: '127.0.0.1', port: 0, onError: (e) => errors.push(e) })
  base = server.url
})
afterAll(async () => {
  await server.close()
})

describe('the standard Request', () => {
  it('is a Request with an absolute URL, real Headers and the client address', async () => {
    const res = await fetch(`${base}/seen?q=1&r=%20`, { headers: { 'user-agent': 'tester/1' } })
    const seen = (await res.json()) as Seen
    expect(seen.instance).toBe(true)
    expect(seen.method).toBe('GET')
    expect(seen.url).toBe(`${base}/seen?q=1&r=%20`)
    expect(seen.headersIsHeaders).toBe(true)
    expect(seen.ua).toBe('tester/1')
    expect(seen.info).toMatchObject({ address: '127.0.0.1', family: 'IPv4', sameServer: true, httpVersion: '1.1' })
    expect(seen.info.port).toBeGreaterThan(0)
  })

  it('text(), json() and arrayBuffer() read the body', async () => {
    expect(await (await fetch(`${base}/text`, { method: 'POST', body: 'héllo' })).text()).toBe('héllo')
    const j = await fetch(`${base}/json`, { method: 'PUT', body: JSON.stringify({ n: 7 }) })
    expect(await j.json()).toEqual({ got: { n: 7 } })
    const big = Buffer.alloc(200_000, 1)
    expect(await (await fetch(`${base}/bytes`, { method: 'POST', body: big })).text()).toBe('200000')
    expect(await (await fetch(`${base}/bytes`)).text()).toBe('0')
  })

  it('body is a ReadableStream of the request body', async () => {
    const res = await fetch(`${base}/stream-in`, { method: 'POST', body: Buffer.alloc(50_000, 2) })
    expect(await res.text()).toBe('50000')
  })

  it('formData() parses urlencoded and multipart bodies', async () => {
    const u = await fetch(`${base}/form`, { method: 'POST', body: new URLSearchParams({ a: '1', b: 'two' }) })
    expect(await u.json()).toEqual({ a: '1', b: 'two' })
    const fd = new FormData()
    fd.append('field', 'value')
    fd.append('upload', new Blob(['file body']), 'notes.txt')
    const m = await fetch(`${base}/form`, { method: 'POST', body: fd })
    expect(await m.json()).toEqual({ field: 'value', upload: 'file:notes.txt:file body' })
  })

  it('clone() gives a second readable copy; a second read fails as standard', async () => {
    const c = await fetch(`${base}/clone`, { method: 'POST', body: 'twin' })
    expect(await c.json()).toEqual({ a: 'twin', b: 'twin', copyIsRequest: true })
    const t = await fetch(`${base}/twice`, { method: 'POST', body: 'once' })
    expect(await t.text()).toBe('second read: TypeError, bodyUsed true')
  })

  it('signal is an AbortSignal', async () => {
    expect(await (await fetch(`${base}/signal`)).text()).toBe('true false')
  })

  /** What the handler saw of one raw request (`head` without its blank line). */
  const seen = async (head: string): Promise<Seen> => {
    const raw = await rawRequest(server.port, `${head}\r\nConnection: close\r\n\r\n`)
    return JSON.parse(raw.text.slice(raw.text.indexOf('{'))) as Seen
  }

  it('method and URL follow each request: other methods, a Host that changes, a query or none', async () => {
    expect(await seen('PROPFIND /seen HTTP/1.1\r\nHost: a.test')).toMatchObject({ method: 'PROPFIND', url: 'http://a.test/seen' })
    expect(await seen('GE /seen?x=1 HTTP/1.1\r\nHost: b.test:81')).toMatchObject({ method: 'GE', url: 'http://b.test:81/seen?x=1' })
    expect(await seen('PUT /seen HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0')).toMatchObject({ method: 'PUT', url: 'http://a.test/seen' })
    expect(await seen('GET /seen HTTP/1.1\r\nHost: a.tesT')).toMatchObject({ method: 'GET', url: 'http://a.tesT/seen' })
    expect(await seen('GETS /seen? HTTP/1.1\r\nHost: a.test')).toMatchObject({ method: 'GETS', url: 'http://a.test/seen' })
  })

  it('the URL falls back to the listening address without a Host header', async () => {
    const raw = await rawRequest(server.port, 'GET /seen HTTP/1.0\r\n\r\n')
    expect(raw.text).toContain(`"url":"http://127.0.0.1:${server.port}/seen"`)
  })

  it('the URL falls back to the listening address for a Host it cannot hold, or two of them', async () => {
    const listening = `http://127.0.0.1:${server.port}`
    expect((await seen('GET /seen?a=1 HTTP/1.1\r\nHost: a"b.test')).url).toBe(`${listening}/seen?a=1`)
    expect((await seen('GET /seen HTTP/1.1\r\nHost: a b')).url).toBe(`${listening}/seen`)
    expect((await seen('GET /seen HTTP/1.1\r\nHost: us@a.test')).url).toBe(`${listening}/seen`)
    expect((await seen('GET /seen HTTP/1.0\r\nHost: a.test\r\nHost: b.test')).url).toBe(`${listening}/seen`)
    // The next request with a usable Host has its own URL again.
    expect((await seen('GET /seen HTTP/1.1\r\nHost: [::1]:8080')).url).toBe('http://[::1]:8080/seen')
  })

  it('behind a trusted proxy the URL takes the scheme and host the proxy reports', async () => {
    const s = await serve({ fetch: (req) => new Response(`${req.url} ${req.headers.get('host')}`), host: '127.0.0.1', port: 0, trustProxy: 'loopback' })
    try {
      const raw = await rawRequest(
        s.port,
        'GET /p?q=1 HTTP/1.1\r\nHost: inner.test\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: outer.test\r\nConnection: close\r\n\r\n',
      )
      expect(raw.text.slice(raw.text.indexOf('\r\n\r\n') + 4)).toBe('https://outer.test/p?q=1 inner.test')
    } finally {
      await s.close()
    }
  })
})

describe('the lazy request Headers, beside undici\'s on the same lines', () => {
  const names: unknown[] = [
    'user-agent', 'User-Agent', 'X-DUP', 'x-dup', 'cookie', 'Cookie', 'set-cookie', 'x-empty', 'x-padded', 'x-latin',
    'host', 'absent', 'bad name', 'bad:name', '', 'é', 'x-dup\r\n', 42, undefined,
  ]
  const compare = (body: string): void => {
    const r = JSON.parse(body.slice(body.indexOf('{'))) as Record<string, unknown> & { expected: Record<string, unknown> }
    expect(r.isHeaders).toBe(true)
    expect(r.tag).toBe('[object Headers]')
    expect(r.same).toBe(true)
    // Asked before the full list exists, then after: the same as undici.
    expect(r.lazy).toEqual(r.expected.ask)
    expect(r.after).toEqual(r.expected.ask)
    expect(r.setCookie).toEqual(r.expected.setCookie)
    expect(r.listed).toEqual(r.expected.listed)
    expect(r.changed).toEqual(['yes', false, 'yes', false, '1', null])
    expect(r.copied).toBe(true)
  }

  it('HTTP/1.1: case-insensitive names, combined values, cookies, Set-Cookie, invalid names', async () => {
    headerCase.names = names
    headerCase.pairs = [
      ['Host', 'h.test'],
      ['User-Agent', 'tester/2'],
      ['X-Dup', 'one'],
      ['x-dup', 'two'],
      ['Cookie', 'a=1'],
      ['cookie', 'b=2'],
      ['Set-Cookie', 's=1; Path=/'],
      ['set-cookie', 't=2'],
      ['X-Empty', ''],
      ['X-Padded', '  inner  value '],
      ['X-Latin', 'caf\u00e9'],
      ['Connection', 'close'],
    ]
    const head = headerCase.pairs.map(([k, v]) => `${k}: ${v}`).join('\r\n')
    const raw = await rawRequest(server.port, Buffer.from(`GET /headers-compare HTTP/1.1\r\n${head}\r\n\r\n`, 'latin1'))
    expect(raw.text).toMatch(/^HTTP\/1\.1 200/)
    compare(raw.text)
  })

  it('HTTP/2: cookie crumbs sent as separate fields join with "; "', async () => {
    headerCase.names = names
    // node:http2 sends the array as separate `cookie` fields; `:authority`
    // becomes `host` for the handler.
    headerCase.pairs = [['host', new URL(base).host], ['cookie', 'a=1'], ['cookie', 'b=2'], ['x-dup', 'one'], ['x-dup', 'two'], ['user-agent', 'h2/1']]
    const client = http2.connect(base)
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const s = client.request({ ':path': '/headers-compare', cookie: ['a=1', 'b=2'], 'x-dup': ['one', 'two'], 'user-agent': 'h2/1' })
        let out = ''
        s.setEncoding('utf8')
        s.on('data', (c: string) => (out += c))
        s.on('end', () => resolve(out))
        s.on('error', reject)
      })
      compare(body)
    } finally {
      client.close()
    }
  })
})

describe('standard Responses', () => {
  it('string body with status and headers', async () => {
    const res = await fetch(`${base}/string`)
    expect(res.status).toBe(201)
    expect(res.headers.get('x-one')).toBe('1')
    expect(res.headers.get('content-type')).toBe('text/plain;charset=UTF-8')
    expect(await res.text()).toBe('plain')
  })

  it('ArrayBuffer, typed array and Blob bodies', async () => {
    expect(await (await fetch(`${base}/arraybuffer`)).text()).toBe('from an ArrayBuffer')
    expect(await (await fetch(`${base}/typed`)).text()).toBe('typed')
    const blob = await fetch(`${base}/blob`)
    expect(blob.headers.get('content-type')).toBe('text/x-blob')
    expect(await blob.text()).toBe('a blob')
  })

  it('a ReadableStream body is streamed (chunked)', async () => {
    const res = await new Promise<{ headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      http.get(`${base}/stream`, (r) => {
        let body = ''
        r.setEncoding('utf8')
        r.on('data', (c: string) => (body += c))
        r.on('end', () => resolve({ headers: r.headers, body }))
      }).on('error', reject)
    })
    expect(res.headers['transfer-encoding']).toBe('chunked')
    expect(res.body).toBe('chunk0;chunk1;chunk2;chunk3;chunk4;')
  })

  it('a ReadableStream is pulled only as fast as the client reads, and cancelled when it leaves', async () => {
    const req = http.get(`${base}/endless`)
    const res = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve))
    res.pause() // a client that stops reading
    await new Promise((r) => setTimeout(r, 600))
    const stalled = endless.pulled
    await new Promise((r) => setTimeout(r, 400))
    // Socket buffers and the core's small per-stream buffer fill, then pulling stops.
    expect(endless.pulled).toBe(stalled)
    expect(stalled * 64 * 1024).toBeLessThan(32 * 1024 * 1024)
    req.destroy()
    const until = Date.now() + 5000
    while (!endless.cancelled && Date.now() < until) await new Promise((r) => setTimeout(r, 20))
    expect(endless.cancelled).toBe(true)
    expect((await fetch(`${base}/string`)).status).toBe(201)
  })

  it('a large string body and Response.json with a status', async () => {
    expect((await (await fetch(`${base}/big`)).text()).length).toBe(100_000)
    const j = await fetch(`${base}/json-out`)
    expect(j.status).toBe(202)
    expect(j.headers.get('content-type')).toBe('application/json')
    expect(await j.json()).toEqual({ hello: 'world' })
  })

  it('Response.redirect, several Set-Cookie, a given Content-Length, an empty 204', async () => {
    const r = await fetch(`${base}/redirect`, { redirect: 'manual' })
    expect(r.status).toBe(307)
    expect(r.headers.get('location')).toBe(`${base}/string`)
    const c = await fetch(`${base}/cookies`)
    expect(c.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; HttpOnly'])
    const raw = await rawRequest(server.port, 'GET /length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    expect(raw.text.match(/content-length/gi)).toHaveLength(1)
    expect(raw.text.endsWith('\r\n\r\nfour')).toBe(true)
    const e = await fetch(`${base}/empty`)
    expect(e.status).toBe(204)
    expect(await e.text()).toBe('')
  })
})

describe('the lightweight global Response', () => {
  it('headers set after construction, a response read before it is sent, header pairs', async () => {
    const late = await fetch(`${base}/late-header`)
    expect([late.headers.get('x-late'), late.headers.get('content-type'), await late.text()]).toEqual([
      '1',
      'text/plain;charset=UTF-8',
      'late',
    ])
    const read = await fetch(`${base}/read-first`)
    expect([await read.text(), read.headers.get('x-pairs')]).toEqual(['abc!', 'yes'])
    const j = await fetch(`${base}/platform`)
    expect([j.headers.get('content-type'), j.headers.get('x-given'), await j.json()]).toEqual([
      'application/json',
      'g',
      { platform: true },
    ])
  })

  it('a response rebuilt from its body stream is sent whole; the stream behaves as the platform one', async () => {
    const raw = (await rawRequest(server.port, 'GET /rebuilt HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n')).text
    expect(raw).toMatch(/^HTTP\/1\.1 200 /)
    expect(raw).toMatch(/\r\ncontent-length: 7\r\n/i)
    expect(raw).not.toMatch(/transfer-encoding/i)
    expect(raw).toMatch(/\r\nx-first: 1\r\n/i)
    expect(raw).toMatch(/\r\nx-again: 2\r\n/i)
    expect(raw).toMatch(/\r\ncontent-type: text\/plain;charset=UTF-8\r\n/i)
    expect(raw.endsWith('\r\n\r\nrebuilt')).toBe(true)
    // Its stream read by someone before it was returned: as any used body, a 500.
    expect((await fetch(`${base}/rebuilt-read`)).status).toBe(500)
    expect(errors.pop()).toMatchObject({ code: 'ERR_HTTPY_INVALID_RESPONSE' })
    // The same steps on the platform's Response and the light one give the same answers.
    const steps = async (): Promise<unknown[]> => {
      const a = new Response('abc')
      const s = a.body
      const b = new Response(s, a)
      const out: unknown[] = [s instanceof ReadableStream, a.body === s, b.body === s, b.headers.get('content-type')]
      out.push(a.bodyUsed, b.bodyUsed, new Response(new Response('x').body).headers.get('content-type'))
      out.push(await b.text(), a.bodyUsed, b.bodyUsed)
      const e = new Response('zz', { status: 201, headers: { 'x-a': '1' } })
      const f = new Response('new', e)
      out.push(f.status, f.headers.get('x-a'), await f.text(), await e.text())
      return out
    }
    const light = await steps()
    overrideGlobalResponse(false)
    try {
      expect(await steps()).toEqual(light)
    } finally {
      overrideGlobalResponse(true)
    }
    expect(light).toEqual([true, true, true, 'text/plain;charset=UTF-8', false, false, null, 'abc', true, true, 201, '1', 'new', 'zz'])
  })

  it('HEAD: a null-body response made from one with a body declares that length; on GET it stays empty', async () => {
    // Synchronous, unlike Hono's HEAD (async, covered in hono.test.ts).
    const s = await serve({
      host: '127.0.0.1',
      port: 0,
      fetch: (req) => {
        const full = new Response('sixteen bytes!!!', { headers: { 'x-from': 'get' } })
        return req.method === 'HEAD' || req.url.endsWith('/copy') ? new Response(null, full) : full
      },
    })
    try {
      const head = await fetch(`${s.url}/`, { method: 'HEAD' })
      expect([head.status, head.headers.get('content-length'), head.headers.get('x-from')]).toEqual([200, '16', 'get'])
      const copy = await fetch(`${s.url}/copy`)
      expect([copy.status, copy.headers.get('content-length'), await copy.text()]).toEqual([200, '0', ''])
    } finally {
      await s.close()
    }
  })

  it('behaves as the standard Response: instanceof, checks, subclasses, body methods', async () => {
    const light = new Response('x', { status: 201, statusText: 'Made' })
    expect(light instanceof Response).toBe(true)
    expect(Object.prototype.toString.call(light)).toBe('[object Response]')
    expect([light.status, light.ok, light.statusText, light.bodyUsed]).toEqual([201, true, 'Made', false])
    expect(await light.text()).toBe('x')
    expect(light.bodyUsed).toBe(true)
    expect(await fetch(`${base}/string`)).toBeInstanceOf(Response) // a platform response
    expect(() => new Response('x', { status: 700 })).toThrow(RangeError)
    expect(() => new Response('x', { status: 204 })).toThrow(TypeError)
    class Mine extends Response {}
    const mine = new Mine('m')
    expect([mine instanceof Mine, mine instanceof Response, light instanceof Mine]).toEqual([true, true, false])
    expect(await new Response(new Uint8Array([104, 105])).text()).toBe('hi')
    expect(Response.redirect('http://a.test/', 301).status).toBe(301)
    overrideGlobalResponse(false)
    try {
      expect(Response.name).not.toBe('LightResponse')
      expect(light instanceof Response).toBe(true)
    } finally {
      overrideGlobalResponse(true)
    }
  })
})

describe('errors', () => {
  it('a non-Response, Response.error() and a throw give 500 naming the problem; serving goes on', async () => {
    errors.length = 0
    expect((await fetch(`${base}/not-a-response`)).status).toBe(500)
    expect((await fetch(`${base}/error-response`)).status).toBe(500)
    expect((await fetch(`${base}/throws`)).status).toBe(500)
    const messages = errors.map((e) => (e as Error).message)
    expect(messages[0]).toMatch(/fetch handler returned an object \(Object\), not a Response/)
    expect((errors[0] as { code?: string }).code).toBe('ERR_HTTPY_INVALID_RESPONSE')
    expect(messages[1]).toMatch(/Response\.error\(\)/)
    expect(messages[2]).toBe('boom')
    expect((await fetch(`${base}/string`)).status).toBe(201)
  })

  it('serve() without a fetch function rejects naming the option', async () => {
    await expect(serve({} as never)).rejects.toMatchObject({ code: 'ERR_HTTPY_INVALID_OPTION', message: /"fetch"/ })
  })
})

describe('HTTP/2 and TLS', () => {
  it('h2c: the URL comes from :authority', async () => {
    const client = http2.connect(base)
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const s = client.request({ ':path': '/seen?h2=1' })
        let out = ''
        s.setEncoding('utf8')
        s.on('data', (c: string) => (out += c))
        s.on('end', () => resolve(out))
        s.on('error', reject)
      })
      const seen = JSON.parse(body) as Seen
      expect(seen.url).toBe(`${base}/seen?h2=1`)
      expect(seen.info.httpVersion).toBe('2')
    } finally {
      client.close()
    }
  })

  it('https: the scheme is https', async () => {
    const s = await serve({ fetch: (req) => new Response(req.url), host: '127.0.0.1', port: 0, tls: 'self-signed' })
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const client = http2.connect(s.url, { rejectUnauthorized: false })
        const st = client.request({ ':path': '/x' })
        let out = ''
        st.setEncoding('utf8')
        st.on('data', (c: string) => (out += c))
        st.on('end', () => {
          client.close()
          resolve(out)
        })
        st.on('error', reject)
      })
      expect(body).toBe(`https://127.0.0.1:${s.port}/x`)
    } finally {
      await s.close()
    }
  })
})

describe('App.fetch', () => {
  it('a catch-all behind native routes and middleware; a mounted handler with path params', async () => {
    const app = new App()
    app.use(async (req, next) => {
      const res = await next(req)
      res.headers.set('x-mw', 'yes')
      return res
    })
    app.get('/native', () => HttpyResponse.text('own handler'))
    app.fetch('/mounted/{rest:path}', (req, info) => new Response(`${req.method} ${info.httpyRequest.pathParams.rest}`))
    app.fetch((req) => new Response(`fallback ${req.method} ${new URL(req.url).pathname}`))
    expect(() => app.fetch(() => new Response(''))).toThrow(/already set/)
    const s = await app.listen({ host: '127.0.0.1', port: 0 })
    try {
      const a = await fetch(`${s.url}/native`)
      expect([await a.text(), a.headers.get('x-mw')]).toEqual(['own handler', 'yes'])
      const b = await fetch(`${s.url}/mounted/a/b`, { method: 'DELETE' })
      expect([await b.text(), b.headers.get('x-mw')]).toEqual(['DELETE a/b', 'yes'])
      const c = await fetch(`${s.url}/anything/else`, { method: 'PROPFIND' })
      expect([c.status, await c.text(), c.headers.get('x-mw')]).toEqual([200, 'fallback PROPFIND /anything/else', 'yes'])
      expect(() => app.fetch(() => new Response(''))).toThrow(/before listen|already set/)
    } finally {
      await s.close()
    }
  })

  it('responses with the same one header field stay separate when middleware changes one; a bad value is refused every time', async () => {
    const app = new App()
    let n = 0
    app.use(async (req, next) => {
      const res = await next(req)
      // Changes this response's headers only (they start as a shared template).
      if (req.path === '/tagged') res.headers.append('content-type', `x-${++n}`)
      return res
    })
    app.fetch((req) => {
      const path = new URL(req.url).pathname
      if (path === '/bad') return new Response('x', { headers: { 'x-bad': 'a\nb' } })
      if (path === '/json') return Response.json({ path })
      return new Response(path, { headers: { 'content-type': 'text/plain' } })
    })
    const s = await app.listen({ host: '127.0.0.1', port: 0, quiet: true, onError: () => {} })
    try {
      const ct = async (path: string): Promise<string | null> => (await fetch(`${s.url}${path}`)).headers.get('content-type')
      expect(await ct('/plain')).toBe('text/plain')
      expect(await ct('/tagged')).toBe('text/plain, x-1')
      expect(await ct('/tagged')).toBe('text/plain, x-2')
      expect(await ct('/plain')).toBe('text/plain')
      expect(await ct('/json')).toBe('application/json')
      for (let i = 0; i < 2; i++) {
        const bad = await fetch(`${s.url}/bad`)
        expect([bad.status, await bad.text()]).toEqual([500, 'Internal Server Error'])
      }
    } finally {
      await s.close()
    }
  })

  it('records end with the absolute URL only on a server with a fetch handler; a mount added after listen still reads its URL', async () => {
    const echo = (req: { _absoluteUrl(): string | undefined; host: string | null }): HttpyResponse => HttpyResponse.text(`${req._absoluteUrl() ?? 'none'} ${req.host}`)
    const own = new App().get('/u/{id}', echo)
    const s = await own.listen({ host: '127.0.0.1', port: 0 })
    try {
      const host = `127.0.0.1:${s.port}`
      expect(await (await fetch(`${s.url}/u/1?q=2`)).text()).toBe(`none ${host}`)
      own.fetch('/late/{rest:path}', (req) => new Response(req.url))
      expect(await (await fetch(`${s.url}/late/a?b=c`)).text()).toBe(`${s.url}/late/a?b=c`)
    } finally {
      await s.close()
    }
    const mounted = new App().get('/u/{id}', echo).fetch('/f/{rest:path}', (req) => new Response(req.url))
    const t = await mounted.listen({ host: '127.0.0.1', port: 0 })
    try {
      expect(await (await fetch(`${t.url}/u/1?q=2`)).text()).toBe(`${t.url}/u/1?q=2 127.0.0.1:${t.port}`)
      expect(await (await fetch(`${t.url}/f/x`)).text()).toBe(`${t.url}/f/x`)
    } finally {
      await t.close()
    }
  })

  it('a catch-all without middleware still receives misses', async () => {
    const app = new App().fetch(() => new Response('caught'))
    const s = await app.listen({ host: '127.0.0.1', port: 0 })
    try {
      expect(await (await fetch(`${s.url}/nowhere`)).text()).toBe('caught')
    } finally {
      await s.close()
    }
  })
})

describe("a catch-all's bodies on the routed path", () => {
  // Bodiless and whole-bodied requests to a fetch catch-all reach the
  // handler without a header map built on the I/O thread; the multipart
  // check reads `Content-Type` from the head's bytes instead
  // (docs/performance.md §13.7).
  it('bodiless and whole bodies read as before; a multipart body is still found by its Content-Type in any case', async () => {
    const s = await serve({
      host: '127.0.0.1',
      port: 0,
      quiet: true,
      multipart: { maxParts: 1 },
      fetch: async (req) => {
        if (new URL(req.url).pathname === '/form') {
          const form = await req.formData()
          return new Response([...form.keys()].join(','))
        }
        return new Response(`${req.method} [${await req.text()}] ${req.headers.get('content-type')}`)
      },
    })
    try {
      const ask = async (head: string, body = ''): Promise<string> => {
        const raw = await rawRequest(s.port, `${head}\r\nHost: a.test\r\nConnection: close\r\n\r\n${body}`)
        return raw.text.slice(raw.text.indexOf('\r\n\r\n') + 4)
      }
      expect(await ask('GET /x HTTP/1.1')).toBe('GET [] null')
      expect(await ask('POST /x HTTP/1.1\r\nContent-Length: 0\r\nContent-Type: text/plain')).toBe('POST [] text/plain')
      expect(await ask('POST /x HTTP/1.1\r\nContent-Length: 5\r\ncontent-type: text/plain', 'hello')).toBe('POST [hello] text/plain')
      const one = '--q\r\ncontent-disposition: form-data; name="a"\r\n\r\n1\r\n--q--\r\n'
      const two = '--q\r\ncontent-disposition: form-data; name="a"\r\n\r\n1\r\n--q\r\ncontent-disposition: form-data; name="b"\r\n\r\n2\r\n--q--\r\n'
      const form = (body: string, name: string): string => `POST /form HTTP/1.1\r\n${name}: Multipart/Form-Data; boundary=q\r\nContent-Length: ${body.length}`
      expect(await ask(form(one, 'CONTENT-TYPE'), one)).toBe('a')
      // Parsed by the core with the server's limits (the platform's parser has none).
      const refused = await rawRequest(s.port, `${form(two, 'content-Type')}\r\nHost: a.test\r\nConnection: close\r\n\r\n${two}`)
      expect(refused.text).toMatch(/^HTTP\/1\.1 413 /)
      expect(refused.text).toContain('multipart body has more than 1 parts (maxParts)')
    } finally {
      await s.close()
    }
  })
})
