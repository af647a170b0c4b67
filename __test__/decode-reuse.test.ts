/**
 * The request decoder matches the method by a byte comparison and hands
 * back the string last read under a header name for the same bytes (one
 * per name); the path and a fetch request's URL are decoded afresh. These tests send sequences
 * where a stale or wrong string would show: paths that differ in their last
 * byte only, hosts and queries that change under the same path, every
 * method the decoder knows beside methods of the same length it does not,
 * and the same over the own API and a fetch handler. Raw pipelined
 * requests on one connection, so consecutive records share a batch.
 * The header block's offset, kept after the first header read, is checked
 * on the core's own records (`recordFixture`) read in every order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { native } from '../ts/native.js'
import { recordLength } from '../ts/record.js'
import { Request } from '../ts/request.js'
import { listen, rawRequest } from './helpers/index.js'

/**
 * The bodies of the answers in `text`, in order (each a `Content-Length`
 * body; `heads` marks the answers to HEAD requests, which have none).
 */
function bodies(text: string, heads: boolean[] = []): string[] {
  const out: string[] = []
  let at = 0
  for (;;) {
    const head = text.indexOf('\r\n\r\n', at)
    if (head < 0) return out
    const len = /content-length: (\d+)/i.exec(text.slice(at, head))
    const n = len && !heads[out.length] ? Number(len[1]) : 0
    out.push(text.slice(head + 4, head + 4 + n))
    at = head + 4 + n
  }
}

function pipelined(lines: Array<[method: string, target: string, host: string]>): string {
  return lines.map(([m, t, h]) => `${m} ${t} HTTP/1.1\r\nHost: ${h}\r\n\r\n`).join('')
}

/** Every method the decoder compares, and methods of the same lengths it does not know. */
const METHODS = ['GET', 'PUT', 'POST', 'HEAD', 'PATCH', 'DELETE', 'OPTIONS', 'GOT', 'PUX', 'PURGE', 'POSTS', 'LOCK', 'MKCOL', 'DELETX', 'OPTIONZ']

describe('decoded strings reused only for the same bytes', () => {
  let own: Server
  let fetchServer: Server
  beforeAll(async () => {
    const app = new App()
    app.route(METHODS, '/{rest:path}', (req) => Response.text(`${req.method} ${req.path} ${req.queryString} ${req.host ?? ''}`))
    own = await listen(app)
    const fetchApp = new App().fetch((request) => new globalThis.Response(`${request.method} ${request.url}`))
    fetchServer = await listen(fetchApp)
  })
  afterAll(async () => {
    await own?.close()
    await fetchServer?.close()
  })

  it('own API: paths differing in one byte, hosts and queries changing under one path', async () => {
    const seq: Array<[string, string, string]> = [
      ['GET', '/users/42', 'a.test'],
      ['GET', '/users/42', 'a.test'],
      ['GET', '/users/43', 'a.test'],
      ['GET', '/users/43?x=1', 'a.test'],
      ['GET', '/users/43', 'b.test'],
      ['GET', '/users/4', 'b.test'],
      ['GET', '/users/42', 'b.tesu'],
      ['GET', '/caf%C3%A9', 'b.tesu'],
    ]
    const { text } = await rawRequest(own.port, pipelined(seq) + 'GET /last HTTP/1.1\r\nHost: z\r\nConnection: close\r\n\r\n')
    expect(bodies(text)).toEqual([
      ...seq.map(([m, t, h]) => {
        const [path, query = ''] = t.split('?')
        return `${m} ${path} ${query} ${h}`
      }),
      'GET /last  z',
    ])
  })

  it('own API: each method of a batch is its own, known or not', async () => {
    const seq = METHODS.flatMap((m): Array<[string, string, string]> => [
      [m, '/m', 'h'],
      ['GET', '/m', 'h'],
    ])
    const { text } = await rawRequest(own.port, pipelined(seq) + 'GET /last HTTP/1.1\r\nHost: z\r\nConnection: close\r\n\r\n')
    // HEAD answers carry no body.
    const heads = seq.map(([m]) => m === 'HEAD')
    expect(bodies(text, heads)).toEqual([...seq.map(([m]) => (m === 'HEAD' ? '' : `${m} /m  h`)), 'GET /last  z'])
  })

  it('fetch handler: the URL follows host, scheme-less changes, path and query', async () => {
    const seq: Array<[string, string, string]> = [
      ['GET', '/a/b', 'one.test'],
      ['GET', '/a/b', 'one.test'],
      ['GET', '/a/c', 'one.test'],
      ['GET', '/a/c', 'two.test'],
      ['GET', '/a/c?q=1', 'two.test'],
      ['GET', '/a/c?q=2', 'two.test'],
      ['GET', '/a/c', 'two.test'],
      ['POST', '/a/c', 'two.test:8080'],
      ['PATCH', '/a/c', 'two.test:8080'],
    ]
    const raw = seq.map(([m, t, h]) => `${m} ${t} HTTP/1.1\r\nHost: ${h}\r\n${m === 'GET' ? '' : 'Content-Length: 0\r\n'}\r\n`).join('')
    const { text } = await rawRequest(fetchServer.port, raw + 'GET /end HTTP/1.1\r\nHost: z\r\nConnection: close\r\n\r\n')
    expect(bodies(text)).toEqual([...seq.map(([m, t, h]) => `${m} http://${h}${t}`), 'GET http://z/end'])
  })

  it('fetch handler: values kept per header name are never stale, past the number of names kept', async () => {
    // Twelve names (more than the decoder keeps a value for), read in
    // both orders, their values alternating between requests of a batch
    // with the same length and different bytes; `Host` too.
    const names = Array.from({ length: 12 }, (_, i) => `x-h${i}`)
    const fetchApp = new App().fetch((request) => {
      const h = request.headers
      const forward = names.map((n) => h.get(n) ?? '-')
      const backward = [...names].reverse().map((n) => h.get(n) ?? '-')
      return new globalThis.Response(`${h.get('host')} ${forward.join(',')} ${backward.reverse().join(',')} ${request.url}`)
    })
    const server = await listen(fetchApp)
    try {
      const value = (req: number, i: number): string => (req % 3 === 0 && i % 2 === 0 ? 'aa' : i % 2 === 0 ? `b${req % 2}` : `v${i}`)
      const hostOf = (req: number): string => `h${req % 2}.test`
      const requests = Array.from({ length: 6 }, (_, req) => {
        // Request 4 leaves one name out.
        const lines = names.map((n, i) => (req === 4 && i === 5 ? '' : `${n}: ${value(req, i)}\r\n`))
        return `GET /r${req} HTTP/1.1\r\nHost: ${hostOf(req)}\r\n${lines.join('')}${req === 5 ? 'Connection: close\r\n' : ''}\r\n`
      })
      const { text } = await rawRequest(server.port, requests.join(''))
      const want = requests.map((_, req) => {
        const vals = names.map((_, i) => (req === 4 && i === 5 ? '-' : value(req, i))).join(',')
        return `${hostOf(req)} ${vals} ${vals} http://${hostOf(req)}/r${req}`
      })
      expect(bodies(text)).toEqual(want)
    } finally {
      await server.close()
    }
  })
})

describe('the header block found once per request', () => {
  // The fixture's records (src/testing.rs): a routed POST with two
  // parameters and five header lines, then a miss with an allow list.
  const { parts } = native.recordFixture()
  const buf = parts[0] as Buffer
  const fresh = (n: 0 | 1): Request =>
    new Request(buf, n === 0 ? 0 : recordLength(buf, 0), parts, (route) => (route === 3 ? ['id', 'name'] : []))
  type Read = [name: string, read: (r: Request) => unknown]
  const routedReads: Read[] = [
    ['host', (r) => r.host],
    ['content-type', (r) => r._header('content-type')],
    ['x-dup', (r) => r._header('x-dup')],
    ['body', (r) => r.body.toString()],
    ['allow', (r) => r._allow],
    ['params', (r) => r.pathParams],
  ]
  const routedWant: Record<string, unknown> = {
    host: 'fixture.test',
    'content-type': 'text/plain',
    'x-dup': 'a, b',
    body: 'hello',
    allow: null,
    params: { id: '42', name: 'café' },
  }
  const missReads: Read[] = [
    ['host', (r) => r.host],
    ['allow', (r) => r._allow],
    ['none', (r) => r._header('content-type')],
    ['body', (r) => r.body.length],
    ['headers', (r) => [...r.headers.entries()]],
  ]
  const missWant: Record<string, unknown> = { host: 'fixture.test', allow: 'POST', none: null, body: 0, headers: [['host', 'fixture.test']] }

  /** Every order of `reads` (at most 6! = 720), each on a fresh request. */
  function orders<T>(items: T[]): T[][] {
    if (items.length <= 1) return [items]
    return items.flatMap((x, i) => orders([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [x, ...rest]))
  }

  /** The reads that gave a wrong value, with the order they came in. */
  function wrongReads(reads: Read[], n: 0 | 1, want: Record<string, unknown>): string[] {
    const wrong: string[] = []
    for (const order of orders(reads)) {
      const r = fresh(n)
      for (const [name, read] of order) {
        const got = JSON.stringify(read(r))
        if (got !== JSON.stringify(want[name])) wrong.push(`${order.map(([o]) => o).join(' > ')}: ${name} = ${got}`)
      }
    }
    return wrong
  }

  it('a routed request with parameters: every field right in every order of reads', () => {
    expect(wrongReads(routedReads, 0, routedWant)).toEqual([])
  })

  it('a miss with an allow list: the list and the headers right in every order', () => {
    expect(wrongReads(missReads, 1, missWant)).toEqual([])
  })

  it('a 405 names the allowed methods after a middleware read headers', async () => {
    const app = new App()
    app.use((req, next) => {
      if (req.headers.get('x-probe') === 'no') throw new Error('unreachable')
      return next(req)
    })
    app.post('/only-post', () => Response.text('posted'))
    const server = await listen(app)
    try {
      const { text } = await rawRequest(server.port, 'GET /only-post HTTP/1.1\r\nHost: h\r\nX-Probe: yes\r\nConnection: close\r\n\r\n')
      expect(text.startsWith('HTTP/1.1 405')).toBe(true)
      expect(text.toLowerCase()).toContain('\r\nallow: post\r\n')
    } finally {
      await server.close()
    }
  })
})
