/**
 * Answers written from the JS thread straight into the socket
 * (`HTTPY_DIRECT_WRITE=all` with `HTTPY_H1_DRIVER=own`, plain TCP): seen
 * from undici's fetch, curl and raw sockets. `stats().directWrites` shows
 * that the path is taken; the answers must be exactly those of the usual
 * path: keep-alive, pipelining answered in order although the handlers
 * finish out of order, HEAD, closing requests, large bodies (which the
 * driver writes), many concurrent clients without a mix-up, and a
 * `request.signal` that does not fire once its request was answered.
 * With `compression` on, only answers compression leaves alone (short
 * ones here) take the path; a large compressible one is still compressed.
 * Both switches are read once per process; test files run in processes
 * of their own.
 */
import { execFile } from 'node:child_process'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { bodies, listen, rawRequest, statuses } from './helpers/index.js'
import { requireTool } from './helpers/tools.js'
import { sleep, until } from './helpers/wait.js'

process.env.HTTPY_H1_DRIVER = 'own'
process.env.HTTPY_DIRECT_WRITE = 'all'

const big = Buffer.alloc(100_000, 'abcdefghij')
const signals: Array<{ id: string; signal: AbortSignal }> = []

function makeApp(): App {
  const app = new App()
  app.get('/hello', () => Response.text('hello'))
  app.get('/id/{id}', (req) => Response.json({ id: req.pathParams.id }))
  app.get('/n/{i}', async (req) => {
    // Later requests finish sooner: the answers must still leave in order.
    await sleep(30 - Number(req.pathParams.i) * 10)
    return Response.text(`n${req.pathParams.i}`)
  })
  app.get('/big', () => new Response(big))
  app.get('/signal/{id}', (req) => {
    signals.push({ id: req.pathParams.id ?? '', signal: req.signal })
    return Response.text('watched')
  })
  return app
}

describe('answers written from the JS thread', () => {
  let server: Server
  let url: string
  beforeAll(async () => {
    server = await listen(makeApp())
    url = `http://127.0.0.1:${server.port}`
  })
  afterAll(() => server.close())

  it('keep-alive fetches are answered directly, byte for byte', async () => {
    const before = server.stats().directWrites
    for (let i = 0; i < 40; i++) {
      const r = await fetch(`${url}/id/${i}`)
      expect(r.status).toBe(200)
      expect(r.headers.get('content-type')).toMatch(/^application\/json/)
      expect(r.headers.get('date')).toBeTruthy()
      expect(await r.json()).toEqual({ id: String(i) })
    }
    expect(server.stats().directWrites - before).toBeGreaterThanOrEqual(40)
  })

  it('pipelined requests are answered in order, handlers finishing out of order', async () => {
    const reqs = [0, 1, 2].map((i) => `GET /n/${i} HTTP/1.1\r\nHost: x\r\n\r\n`).join('') +
      'GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
    const { text, closed } = await rawRequest(server.port, reqs, 3000)
    expect(statuses(text)).toEqual([200, 200, 200, 200])
    expect(bodies(text)).toEqual(['n0', 'n1', 'n2', 'hello'])
    expect(closed).toBe(true)
  })

  it('requests sent one after another on a raw socket, then HEAD and a closing one', async () => {
    const before = server.stats().directWrites
    const { text, closed } = await rawRequest(
      server.port,
      [
        'GET /hello HTTP/1.1\r\nHost: x\r\n\r\n',
        'GET /id/7 HTTP/1.1\r\nHost: x\r\n\r\n',
        'HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n',
        'GET /big HTTP/1.1\r\nHost: x\r\n\r\n',
        'GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      ],
      5000,
      60,
    )
    expect(statuses(text)).toEqual([200, 200, 200, 200, 200])
    const parts = text.split(/(?=HTTP\/1\.1 200 OK\r\n)/)
    expect(parts[0]).toMatch(/\r\ncontent-length: 5\r\n[\s\S]*\r\n\r\nhello$/)
    expect(parts[1]?.endsWith('{"id":"7"}')).toBe(true)
    // HEAD: the length a GET would carry, no body.
    expect(parts[2]).toMatch(/\r\ncontent-length: 5\r\n/)
    expect(parts[2]?.endsWith('\r\n\r\n')).toBe(true)
    expect(parts[3]?.endsWith(big.toString('latin1'))).toBe(true)
    expect(parts[4]).toMatch(/\r\nconnection: close\r\n/)
    expect(closed).toBe(true)
    // The first two are written from the JS thread (one of them may find
    // the next request already read on a loaded machine, and go the usual
    // way); HEAD, the large body and the closing answer by the driver.
    const direct = server.stats().directWrites - before
    expect(direct).toBeGreaterThanOrEqual(1)
    expect(direct).toBeLessThanOrEqual(2)
  })

  it.skipIf(!requireTool('curl'))('curl, three URLs on one connection', async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile('curl', ['-sS', `${url}/hello`, `${url}/id/1`, `${url}/hello`], { timeout: 10_000 }, (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ),
    )
    expect(out).toBe('hello{"id":"1"}hello')
  })

  it('400 concurrent clients each get their own answer', async () => {
    const ids = Array.from({ length: 400 }, (_, i) => `c${i}`)
    const got = await Promise.all(ids.map((id) => fetch(`${url}/id/${id}`).then((r) => r.json())))
    expect(got).toEqual(ids.map((id) => ({ id })))
  })

  it('request.signal does not fire for an answered request, even when the connection moves on', async () => {
    signals.length = 0
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${url}/signal/${i}`)
      expect(await r.text()).toBe('watched')
    }
    // The connection's task drops each answered request when it next runs.
    await fetch(`${url}/hello`).then((r) => r.text())
    await sleep(50)
    expect(signals.map((s) => [s.id, s.signal.aborted])).toEqual([
      ['0', false],
      ['1', false],
      ['2', false],
    ])
  })

  it('leaves nothing pending', async () => {
    await until(() => server.stats().pending === 0, 3000)
    expect(server.stats().pending).toBe(0)
  })
})

describe('answers written from the JS thread, compression on', () => {
  const json = JSON.stringify({ list: Array.from({ length: 200 }, (_, i) => `item ${i}`) })
  let plain: Server
  let zipping: Server
  beforeAll(async () => {
    plain = await listen(makeApp())
    const app = makeApp()
    app.get('/list', () => Response.json(JSON.parse(json)))
    zipping = await listen(app, { compression: true })
  })
  afterAll(async () => {
    await plain.close()
    await zipping.close()
  })

  /** One keep-alive request on a raw socket; its whole answer, `date` blanked. */
  const answer = (port: number, req: string) =>
    new Promise<string>((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1', () => sock.write(req))
      let got = Buffer.alloc(0)
      const timer = setTimeout(() => {
        sock.destroy()
        reject(new Error(`no whole answer: ${got.toString('latin1')}`))
      }, 5000)
      sock.on('error', reject)
      sock.on('data', (c) => {
        got = Buffer.concat([got, c])
        const end = got.indexOf('\r\n\r\n')
        const len = /\r\ncontent-length: (\d+)\r\n/i.exec(got.subarray(0, end).toString('latin1'))?.[1]
        if (end >= 0 && len !== undefined && got.length >= end + 4 + Number(len)) {
          clearTimeout(timer)
          sock.destroy()
          resolve(got.toString('latin1').replace(/\r\ndate: [^\r]*/, '\r\ndate: *'))
        }
      })
    })
  const hello = (port: number) => answer(port, 'GET /id/5 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n')

  it('a short answer is written directly, the same bytes as without compression', async () => {
    const before = zipping.stats().directWrites
    const got = await hello(zipping.port)
    expect(got).toBe(await hello(plain.port))
    expect(got).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n\{"id":"5"\}$/)
    expect(got).not.toMatch(/vary|content-encoding/i)
    expect(zipping.stats().directWrites - before).toBe(1)
  })

  it('a large compressible answer still goes the general way: gzip when asked, Vary either way', async () => {
    const before = zipping.stats().directWrites
    const r = await fetch(`http://127.0.0.1:${zipping.port}/list`, { headers: { 'accept-encoding': 'gzip' } })
    expect(r.headers.get('content-encoding')).toBe('gzip')
    expect(r.headers.get('vary')).toMatch(/accept-encoding/i)
    expect(await r.text()).toBe(json)
    const text = await answer(zipping.port, 'GET /list HTTP/1.1\r\nHost: x\r\n\r\n')
    expect(text).toMatch(/\r\nvary: accept-encoding\r\n/i)
    expect(text).not.toMatch(/content-encoding/i)
    expect(text.endsWith(`\r\n\r\n${json}`)).toBe(true)
    expect(zipping.stats().directWrites - before).toBe(0)
  })
})
