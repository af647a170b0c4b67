/**
 * A HEAD answer's `Content-Length` (RFC 9110 §9.3.2, §8.6) is the same on
 * every protocol: the length of the body a handler gave, a length the
 * handler set beside no body (kept when it is one number, dropped
 * otherwise), none when nothing is known; the core's own answers (static
 * files, route-cache hits) keep theirs. HTTP/1.1 over a raw socket and
 * curl, h2c and HTTP/2 over TLS with node:http2, HTTP/3 with aioquic.
 * Handlers of HTTPy's own API and fetch-style ones alike.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http2 from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import { listen, rawRequest } from './helpers/index.js'
import { h3 } from './helpers/h3.js'
import { requireTool } from './helpers/tools.js'

const FILE = 'f'.repeat(3210)

/** HEAD answer of each path, as a Content-Length (`null`: none). */
const HEAD: Record<string, string | null> = {
  '/a': '5',
  '/b': '1234',
  '/c': null,
  '/bad': null,
  '/zeros': '77',
  '/files/f.txt': String(FILE.length),
  '/cached': '6',
  '/web-b': '1234',
  '/web-c': null,
}
/** GET answers are unchanged by the HEAD rules. */
const GET: Record<string, string> = { '/b': '1234', '/c': '0', '/bad': '1', '/web-b': '1234', '/web-c': '0' }

function makeApp(root: string): App {
  const app = new App()
  app.get('/a', () => Response.text('hello'))
  app.get('/b', (req) =>
    req.method === 'HEAD' ? new Response(null, { headers: { 'content-length': '1234' } }) : Response.text('x'.repeat(1234)),
  )
  app.get('/c', () => new Response(null, { status: 200 }))
  app.get('/bad', (req) => (req.method === 'HEAD' ? new Response(null, { headers: { 'content-length': '12abc' } }) : Response.text('x')))
  app.get('/zeros', () => new Response(null, { headers: { 'content-length': '0077' } }))
  app.get('/cached', () => Response.text('stored'), { cache: { ttl: 60 } })
  app.serveStatic('/files', root)
  // The same through fetch-style handlers and the platform's Response.
  app.fetch('/web-b', (req) =>
    req.method === 'HEAD'
      ? new globalThis.Response(null, { headers: { 'content-length': '1234' } })
      : new globalThis.Response('x'.repeat(1234)),
  )
  app.fetch('/web-c', () => new globalThis.Response(null))
  return app
}

let root: string
let plain: Server
let certs: TestCerts | undefined
let secure: Server | undefined
const haveOpenssl = requireTool('openssl')

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'httpy-headlen-'))
  writeFileSync(join(root, 'f.txt'), FILE)
  plain = await listen(makeApp(root))
  if (haveOpenssl) {
    certs = makeCerts()
    secure = await listen(makeApp(root), { tls: { cert: certs.certFile, key: certs.keyFile }, http3Port: 0 })
  }
  // Fill the route cache, so HEAD /cached is a hit on every server.
  for (const s of [plain, secure]) if (s) await rawRequest(s.port, 'GET /cached HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n')
})
afterAll(async () => {
  await plain?.close()
  await secure?.close()
  certs?.cleanup()
  rmSync(root, { recursive: true, force: true })
})

/** The Content-Length fields of a raw HTTP/1.1 answer's head, and what follows the head. */
async function raw(method: string, path: string): Promise<{ lengths: string[]; rest: string }> {
  const { text } = await rawRequest(plain.port, `${method} ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`)
  const at = text.indexOf('\r\n\r\n')
  expect(text.slice(0, 15)).toBe('HTTP/1.1 200 OK')
  const lengths = [...text.slice(0, at).matchAll(/\r\ncontent-length: *([^\r]*)/gi)].map((m) => m[1] as string)
  return { lengths, rest: text.slice(at + 4) }
}

async function h2Lengths(session: http2.ClientHttp2Session, method: string, paths: string[]): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {}
  for (const path of paths) {
    out[path] = await new Promise((resolve, reject) => {
      const st = session.request({ ':method': method, ':path': path })
      let got = 0
      st.on('data', (c: Buffer) => (got += c.length))
      st.on('response', (h) => {
        expect(h[':status']).toBe(200)
        st.on('end', () => {
          if (method === 'HEAD') expect(got).toBe(0)
          resolve((h['content-length'] as string | undefined) ?? null)
        })
      })
      st.on('error', reject)
      st.end()
    })
  }
  return out
}

describe('HEAD Content-Length', () => {
  it('HTTP/1.1 raw: a handler-set length is kept, none is invented, GET is unchanged', async () => {
    for (const [path, want] of Object.entries(HEAD)) {
      const r = await raw('HEAD', path)
      expect([path, r.lengths, r.rest]).toEqual([path, want === null ? [] : [want], ''])
    }
    for (const [path, want] of Object.entries(GET)) {
      expect([path, (await raw('GET', path)).lengths]).toEqual([path, [want]])
    }
  })

  it.skipIf(!requireTool('curl'))('HTTP/1.1 with curl -I', async () => {
    // Not execFileSync: the handlers run on this thread.
    const run = promisify(execFile)
    for (const [path, want] of Object.entries(HEAD)) {
      const { stdout: head } = await run('curl', ['-sI', '--max-time', '5', `http://127.0.0.1:${plain.port}${path}`], { encoding: 'utf8' })
      const m = /^content-length: *(\d+)\r?$/im.exec(head)
      expect([path, m ? m[1] : null]).toEqual([path, want])
    }
  })

  it('h2c and HTTP/2 over TLS: the same lengths as HTTP/1.1', async () => {
    const sessions = [http2.connect(`http://127.0.0.1:${plain.port}`)]
    if (secure && certs) sessions.push(http2.connect(`https://localhost:${secure.port}`, { ca: certs.ca }))
    try {
      for (const s of sessions) {
        expect(await h2Lengths(s, 'HEAD', Object.keys(HEAD))).toEqual(HEAD)
        expect(await h2Lengths(s, 'GET', Object.keys(GET))).toEqual(GET)
      }
    } finally {
      for (const s of sessions) s.close()
    }
    expect(sessions.length).toBe(haveOpenssl ? 2 : 1)
  })

  it.skipIf(!haveOpenssl || !requireTool('aioquic'))('HTTP/3: the same lengths, no body bytes', async () => {
    const paths = Object.keys(HEAD)
    const r = await h3(secure?.http3Port as number, [
      ...paths.map((path) => ({ method: 'HEAD', path })),
      ...Object.keys(GET).map((path) => ({ path })),
    ], { ca: certs?.ca })
    const head = r.responses.slice(0, paths.length)
    expect(head.map((x) => [x.status, x.length])).toEqual(paths.map(() => [200, 0]))
    expect(Object.fromEntries(head.map((x, i) => [paths[i], x.headers['content-length'] ?? null]))).toEqual(HEAD)
    const get = r.responses.slice(paths.length)
    expect(Object.fromEntries(get.map((x, i) => [Object.keys(GET)[i], x.headers['content-length'] ?? null]))).toEqual(GET)
  })
})
