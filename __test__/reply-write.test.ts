/**
 * How the server writes small answers into the reply batch: short ASCII
 * strings by a JavaScript loop (a non-ASCII character falls back to
 * `Buffer.write`), the header blocks of templates (`Response.json`,
 * one-field header literals such as `{ 'content-type': 'text/plain' }`)
 * copied as bytes encoded once. These tests send answers where a wrong
 * byte, a stale cached block or a template changed by one response would
 * show at the client: bodies and headers around the loop's length limit,
 * with and without non-ASCII characters, and responses whose template copy
 * is changed after it was made.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Headers, Response, type Server } from '../ts/index.js'
import { listen } from './helpers/index.js'

const BODIES: Record<string, string> = {
  empty: '',
  ascii31: 'a'.repeat(31),
  ascii32: 'b'.repeat(32),
  ascii33: 'c'.repeat(33),
  // Non-ASCII at the start, in the middle and as the last of 32 characters.
  first: 'é' + 'x'.repeat(10),
  middle: 'café ✓ crème',
  last32: 'y'.repeat(31) + '€',
  astral: '🙂 ok',
}

describe('small answers written into the reply batch', () => {
  let server: Server

  beforeAll(async () => {
    const app = new App()
    app.get('/body/{name}', (req) => new Response(BODIES[req.pathParams.name ?? ''] ?? 'missing', { headers: { 'content-type': 'text/plain; charset=utf-8' } }))
    // The same one-field literal answered as is, and changed after the copy.
    app.get('/literal', () => new Response('plain', { headers: { 'x-kind': 'literal' } }))
    app.get('/literal-changed', () => {
      const res = new Response('changed', { headers: { 'x-kind': 'literal' } })
      res.headers.set('x-extra', 'yes')
      res.headers.set('x-kind', 'other')
      return res
    })
    // A template copy whose content type is replaced after `Response.json`.
    app.get('/json-changed', () => {
      const res = Response.json({ ok: true })
      res.headers.set('content-type', 'application/problem+json')
      return res
    })
    app.get('/json', () => Response.json({ ok: true }))
    // A header value with non-ASCII text (obs-text), short enough for the loop.
    app.get('/latin1-header', () => new Response('h', { headers: { 'x-name': 'Zoë' } }))
    // A literal whose value is refused: refused on every request, never kept.
    app.get('/bad-literal', () => new Response('never', { headers: { 'x-bad': 'a\nb' } }))
    server = await listen(app, { onError: () => {} })
  })
  afterAll(() => server.close())

  it('bodies around the loop limit and with non-ASCII characters arrive byte for byte', async () => {
    for (const [name, text] of Object.entries(BODIES)) {
      const r = await fetch(`${server.url}/body/${name}`)
      const bytes = Buffer.from(await r.arrayBuffer())
      expect(bytes.equals(Buffer.from(text, 'utf8')), name).toBe(true)
      expect(r.headers.get('content-length')).toBe(String(Buffer.byteLength(text)))
      expect(r.headers.get('content-type')).toBe('text/plain; charset=utf-8')
    }
  })

  it('a header literal template is not changed by a response that changes its copy', async () => {
    for (let i = 0; i < 3; i++) {
      const changed = await fetch(`${server.url}/literal-changed`)
      expect(changed.headers.get('x-kind')).toBe('other')
      expect(changed.headers.get('x-extra')).toBe('yes')
      expect(await changed.text()).toBe('changed')
      const plain = await fetch(`${server.url}/literal`)
      expect(plain.headers.get('x-kind')).toBe('literal')
      expect(plain.headers.has('x-extra')).toBe(false)
      expect(await plain.text()).toBe('plain')
    }
  })

  it('a Response.json copy changed after it was made sends its new header block', async () => {
    const changed = await fetch(`${server.url}/json-changed`)
    expect(changed.headers.get('content-type')).toBe('application/problem+json')
    const plain = await fetch(`${server.url}/json`)
    expect(plain.headers.get('content-type')).toBe('application/json')
    expect(await plain.json()).toEqual({ ok: true })
  })

  it('a non-ASCII header value goes out as before (UTF-8 bytes)', async () => {
    const r = await fetch(`${server.url}/latin1-header`)
    // fetch reads header bytes as latin1: the UTF-8 form of "Zoë".
    expect(Buffer.from(r.headers.get('x-name') ?? '', 'latin1').toString('utf8')).toBe('Zoë')
    expect(await r.text()).toBe('h')
  })

  it('a refused header literal fails every time and the server keeps serving', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`${server.url}/bad-literal`)
      expect(r.status).toBe(500)
    }
    expect(() => new Headers({ 'x-bad': 'a\nb' })).toThrow(expect.objectContaining({ code: 'ERR_HTTPY_INVALID_HEADER' }))
    expect((await fetch(`${server.url}/literal`)).status).toBe(200)
  })
})
