/**
 * Route-cache hits over the own HTTP/1.1 driver, which answers a plain
 * keep-alive GET for a cached route from the entry's stored bytes before
 * it builds a request (crates/core/src/proto/h1/role.rs, conn.rs). Seen
 * from undici's fetch, curl and raw pipelined sockets: the answer's bytes
 * are hyper's for the same route (hyper in a child process: the driver
 * switch is read once per process), the request and native-answer
 * counters move as on the general path, and a change of the route table
 * (a middleware added at run time, which takes the route's hits back to
 * JS) takes effect on the next request.
 */
import { execFile } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { bodies, listen, openRaw, rawRequest, requireTool, statuses, withHyperChild } from './helpers/index.js'

process.env.HTTPY_H1_DRIVER = 'own'

/** The routes, as source, so that the hyper child serves the same ones. */
const ROUTES = `
  const cache = { cache: { ttl: 3600 } }
  app.get('/hello', () => new Response('Hello, World!', { headers: { 'content-type': 'text/plain', 'x-kind': 'greeting' } }), cache)
  app.get('/users/{id}', (req) => Response.json({ id: req.pathParams.id }), cache)
`
let handlerRuns = 0

function makeApp(): App {
  const app = new App()
  // The same routes as ROUTES, counting the handler's runs.
  const cache = { cache: { ttl: 3600 } }
  app.get('/hello', () => {
    handlerRuns++
    return new Response('Hello, World!', { headers: { 'content-type': 'text/plain', 'x-kind': 'greeting' } })
  }, cache)
  app.get('/users/{id}', (req) => {
    handlerRuns++
    return Response.json({ id: req.pathParams.id })
  }, cache)
  return app
}

/** Blanks the value of the `date` field, which changes every second. */
const undated = (text: string) => text.replace(/\r\ndate: [^\r]*\r\n/g, '\r\ndate: *\r\n')

/** Two requests on one connection: the miss that fills, then the hit. */
const twice = (p: string) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\nGET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`

async function hitBytes(port: number, p: string): Promise<string> {
  const c = await openRaw(port)
  try {
    c.sock.write(twice(p))
    expect(await c.waitFor(() => statuses(c.state.text).length === 2, 3000)).toBe(true)
    // The second answer (the hit).
    const at = c.state.text.indexOf('HTTP/1.1 ', 1)
    return undated(c.state.text.slice(at))
  } finally {
    c.sock.destroy()
  }
}

describe('route-cache hits over the own HTTP/1.1 driver', () => {
  let server: Server
  let app: App
  beforeAll(async () => {
    app = makeApp()
    server = await listen(app)
  })
  afterAll(() => server.close())

  it('answers a hit with the bytes hyper writes for it', async () => {
    await withHyperChild(ROUTES, async (port) => {
      for (const p of ['/hello', '/users/42']) {
        const own = await hitBytes(server.port, p)
        expect(own).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
        expect(own).toBe(await hitBytes(port, p))
      }
    })
    expect(await hitBytes(server.port, '/hello')).toBe(
      'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-kind: greeting\r\ncontent-length: 13\r\ndate: *\r\n\r\nHello, World!',
    )
  })

  it('counts pipelined hits as requests answered natively, in order, the handler not run', async () => {
    // Fill both entries (on their own, this test must not rely on another's).
    await (await fetch(`${server.url}/users/7`)).text()
    await (await fetch(`${server.url}/hello`)).text()
    const runs = handlerRuns
    const before = server.stats()
    const reqs = ['/users/7', '/hello', '/users/7', '/users/7', '/hello'].map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`)
    const { text, closed } = await rawRequest(server.port, reqs.join('') + 'GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000)
    expect(closed).toBe(true)
    expect(statuses(text)).toEqual([200, 200, 200, 200, 200, 200])
    expect(bodies(text)).toEqual(['{"id":"7"}', 'Hello, World!', '{"id":"7"}', '{"id":"7"}', 'Hello, World!', 'Hello, World!'])
    const after = server.stats()
    expect(after.requestsTotal - before.requestsTotal).toBe(6)
    expect(after.nativeResponses - before.nativeResponses).toBe(6)
    // The five keep-alive hits come from the stored bytes; the closing one
    // takes the general path.
    expect(after.storedAnswers - before.storedAnswers).toBe(5)
    expect(handlerRuns).toBe(runs)
  })

  it.skipIf(!requireTool('curl'))('curl and fetch read the same hits', async () => {
    const url = server.url
    const out = await new Promise<string>((resolve, reject) =>
      execFile('curl', ['-sS', `${url}/hello`, `${url}/users/9`, `${url}/users/9`, `${url}/hello`], { timeout: 10_000 }, (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ),
    )
    expect(out).toBe('Hello, World!{"id":"9"}{"id":"9"}Hello, World!')
    const res = await fetch(`${url}/users/9`)
    expect(res.headers.get('content-type')).toMatch(/^application\/json/)
    expect(await res.text()).toBe('{"id":"9"}')
  })

  it('stops answering from the cache once a middleware is added at run time', async () => {
    await fetch(`${server.url}/hello`)
    const runs = handlerRuns
    app.use(async (req, next) => {
      const res = await next(req)
      res.headers.set('x-mw', '1')
      return res
    })
    // With middleware the core no longer answers hits itself: the
    // middleware runs (its header is there) on every request.
    const c = await openRaw(server.port)
    try {
      c.sock.write(twice('/hello'))
      expect(await c.waitFor(() => statuses(c.state.text).length === 2, 3000)).toBe(true)
      expect(c.state.text.match(/\r\nx-mw: 1\r\n/g)?.length).toBe(2)
      expect(bodies(c.state.text)).toEqual(['Hello, World!', 'Hello, World!'])
    } finally {
      c.sock.destroy()
    }
    // The answer is now kept in JS: filled once (the handler runs), then
    // reused for the second request.
    expect(handlerRuns).toBe(runs + 1)
  })
})
