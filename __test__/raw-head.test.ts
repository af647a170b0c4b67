/**
 * Requests of the own HTTP/1.1 driver reach JS handlers without a header
 * map built on the I/O thread: the record is written from the head's bytes
 * and the facts the dispatcher needs are found while parsing
 * (docs/performance.md §17.4). Seen from raw sockets: names lower-cased,
 * fields in the order sent (repeats kept), the framing fields a handler
 * sees as before (one `Content-Length` for identical repeats, none beside
 * `Transfer-Encoding`), ambiguous framing refused, and the fields read by
 * name on the I/O thread (`Accept-Encoding` for compression, the field a
 * cached route's `Vary` names) still read.
 */
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { bodies, listen, rawRequest, statuses } from './helpers/index.js'

function makeApp(): App {
  const app = new App()
  app.get('/fields', (req) => Response.json([...req.headers]))
  app.post('/echo', async (req) => {
    const text = await req.text()
    return Response.json({ text, length: req.headers.getAll('content-length'), te: req.headers.get('transfer-encoding') })
  })
  app.get('/big', () => Response.text('abcdefgh'.repeat(512)))
  let calls = 0
  app.get('/lang', (req) => new Response(`${req.headers.get('accept-language')} ${++calls}`, { headers: { vary: 'Accept-Language' } }), {
    cache: { ttl: 60 },
  })
  return app
}

describe('requests encoded from the head', () => {
  let server: Server
  beforeAll(async () => {
    server = await listen(makeApp(), { compression: true })
  })
  afterAll(() => server.close())

  it('names are lower-cased and fields come in the order sent, repeats kept', async () => {
    const long = `X-${'Long'.repeat(50)}`
    const r = await rawRequest(
      server.port,
      `GET /fields HTTP/1.1\r\nHost: h\r\nX-Rep: a\r\nOther:  1 2 \r\nx-REP: b\r\n${long}: v\r\nConnection: close\r\n\r\n`,
    )
    expect(statuses(r.text)).toEqual([200])
    expect(JSON.parse(bodies(r.text)[0] ?? '')).toEqual([
      ['host', 'h'],
      ['x-rep', 'a'],
      ['other', '1 2'],
      ['x-rep', 'b'],
      [long.toLowerCase(), 'v'],
      ['connection', 'close'],
    ])
  })

  it('framing fields look as before to the handler; ambiguous framing is refused', async () => {
    const twice = await rawRequest(
      server.port,
      'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 5\r\nConnection: close\r\n\r\nhello',
    )
    expect(JSON.parse(bodies(twice.text)[0] ?? '')).toEqual({ text: 'hello', length: ['5'], te: null })
    // Both framings: the length is dropped and the connection closes after.
    const both = await rawRequest(
      server.port,
      'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    )
    expect(JSON.parse(bodies(both.text)[0] ?? '')).toEqual({ text: 'hello', length: [], te: 'chunked' })
    expect(both.closed).toBe(true)
    for (const bad of [
      'GET /fields HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
      'GET /fields HTTP/1.1\r\n\r\n',
      'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n',
      'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ]) {
      const r = await rawRequest(server.port, bad)
      expect(statuses(r.text), bad).toEqual([400])
      expect(r.closed).toBe(true)
    }
  })

  it('fields read by name on the I/O thread are still read', async () => {
    const gz = await rawRequest(server.port, 'GET /big HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n')
    const raw = Buffer.from(gz.text, 'latin1')
    const at = raw.indexOf('\r\n\r\n')
    expect(raw.subarray(0, at).toString().toLowerCase()).toContain('content-encoding: gzip')
    expect(gunzipSync(raw.subarray(at + 4)).toString()).toBe('abcdefgh'.repeat(512))
    // A cached route keyed by a field (`Vary`): each language its entry.
    const lang = async (l: string) =>
      bodies((await rawRequest(server.port, `GET /lang HTTP/1.1\r\nHost: h\r\nAccept-Language: ${l}\r\nConnection: close\r\n\r\n`)).text)[0]
    expect(await lang('en')).toBe('en 1')
    expect(await lang('fr')).toBe('fr 2')
    expect(await lang('en')).toBe('en 1')
  })
})
