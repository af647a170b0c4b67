/**
 * The request decoder matches the method by a byte comparison and hands
 * back the previous request's `Host` string for the same bytes; the path and
 * a fetch request's URL are decoded afresh. These tests send sequences
 * where a stale or wrong string would show: paths that differ in their last
 * byte only, hosts and queries that change under the same path, every
 * method the decoder knows beside methods of the same length it does not,
 * and the same over the own API and a fetch handler. Raw pipelined
 * requests on one connection, so consecutive records share a batch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
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
})
