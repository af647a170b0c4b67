/**
 * Answers written straight into the socket by the task that delivers a
 * batch of answers on the I/O thread (the default with the own HTTP/1.1
 * driver on plain TCP; docs/performance.md §15). A batch needs more than
 * one answer, so the handlers here wait at a gate that opens when a given
 * number of requests are in, and their answers cross in one call. Seen
 * from raw sockets and undici's fetch: every client gets its own answer,
 * a request pipelined behind one in flight is answered after it, a client
 * that resets while its answer is being delivered leaves the others and
 * the server unharmed, and bodiless answers (HEAD, 204, 304) keep their
 * framing on a connection that goes on. `stats().directWrites` shows that
 * the path is taken. The header maps of written answers are reused for
 * later answers (docs/performance.md §17.3): no field of an earlier answer
 * shows up in a later one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { listen, openRaw, statuses } from './helpers/index.js'
import { sleep, until } from './helpers/wait.js'

/**
 * Opens when `n` handlers wait at it (or when `open` is called); they all
 * go on in one microtask, so their answers cross in one batch.
 */
class Gate {
  #waiting: Array<() => void> = []
  #n = 2
  get count(): number {
    return this.#waiting.length
  }
  arm(n: number): void {
    this.#n = n
  }
  wait(): Promise<void> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve)
      if (this.#waiting.length >= this.#n) this.open()
    })
  }
  open(): void {
    const open = this.#waiting
    this.#waiting = []
    for (const r of open) r()
  }
}

const gate = new Gate()

function makeApp(): App {
  const app = new App()
  app.get('/g/{id}', async (req) => {
    await gate.wait()
    return Response.json({ id: req.pathParams.id })
  })
  app.get('/hello', () => Response.text('hello'))
  app.get('/empty', async () => {
    await gate.wait()
    return new Response(null, { status: 204, headers: { 'x-kind': 'empty' } })
  })
  app.get('/same', async () => {
    await gate.wait()
    // A length given by the handler is dropped, as on the driver's path.
    return new Response(null, { status: 304, headers: { etag: '"v1"', 'content-length': '10' } })
  })
  app.get('/fields/{id}', async (req) => {
    await gate.wait()
    const many = req.query.get('many') === '1'
    const headers: Record<string, string> = many
      ? { 'x-a': '1', 'x-b': '2', 'x-c': '3', 'x-d': '4', 'x-e': '5', 'x-f': '6', 'x-g': '7' }
      : { 'x-only': req.pathParams.id ?? '' }
    return new Response(`body ${req.pathParams.id}`, { headers })
  })
  app.get('/text', async () => {
    await gate.wait()
    return Response.text('hello')
  })
  return app
}

describe('answers written by the delivering task on the I/O thread', () => {
  let server: Server
  let url: string
  beforeAll(async () => {
    server = await listen(makeApp())
    url = `http://127.0.0.1:${server.port}`
  })
  afterAll(() => server.close())

  it('a batch of answers reaches the right clients, written directly', async () => {
    const n = 24
    gate.arm(n)
    const before = server.stats().directWrites
    const ids = Array.from({ length: n }, (_, i) => `b${i}`)
    const got = await Promise.all(ids.map((id) => fetch(`${url}/g/${id}`).then((r) => r.json())))
    expect(got).toEqual(ids.map((id) => ({ id })))
    // Each fetch on a connection of its own, one batch of 24: at least
    // most of them leave through the delivering task's write.
    expect(server.stats().directWrites - before).toBeGreaterThanOrEqual(2)
  })

  it('a request pipelined behind one in flight is answered after it', async () => {
    gate.arm(2)
    const a = await openRaw(server.port)
    const b = await openRaw(server.port)
    a.sock.write('GET /g/first HTTP/1.1\r\nHost: x\r\n\r\n')
    // The second request arrives while the first waits for its handler.
    await sleep(30)
    a.sock.write('GET /hello HTTP/1.1\r\nHost: x\r\n\r\n')
    await sleep(30)
    b.sock.write('GET /g/other HTTP/1.1\r\nHost: x\r\n\r\n')
    expect(await a.waitFor(() => statuses(a.state.text).length === 2 && a.state.text.endsWith('hello'), 3000)).toBe(true)
    expect(await b.waitFor(() => b.state.text.endsWith('{"id":"other"}'), 3000)).toBe(true)
    const first = a.state.text.indexOf('{"id":"first"}')
    expect(first).toBeGreaterThan(0)
    expect(a.state.text.indexOf('hello')).toBeGreaterThan(first)
    expect(a.state.closed).toBe(false)
    a.sock.destroy()
    b.sock.destroy()
  })

  it('answers built in reused header maps carry only their own fields', async () => {
    const n = 8
    const socks = await Promise.all(Array.from({ length: n }, () => openRaw(server.port)))
    const before = server.stats().directWrites
    // Keep-alive connections, three batches: seven fields each, then one.
    for (const [round, many] of [
      [0, 1],
      [1, 0],
      [2, 0],
    ] as const) {
      gate.arm(n)
      socks.forEach((s, i) => {
        s.state.text = ''
        s.sock.write(`GET /fields/${round}x${i}?many=${many} HTTP/1.1\r\nHost: x\r\n\r\n`)
      })
      for (const [i, s] of socks.entries()) {
        expect(await s.waitFor(() => s.state.text.endsWith(`body ${round}x${i}`), 3000)).toBe(true)
        const head = s.state.text.split('\r\n\r\n')[0] ?? ''
        expect(head.startsWith('HTTP/1.1 200')).toBe(true)
        expect(head.includes('x-g: 7')).toBe(many === 1)
        expect(head.includes('x-a:')).toBe(many === 1)
        expect(head.includes(`x-only: ${round}x${i}`)).toBe(many === 0)
      }
    }
    expect(server.stats().directWrites - before).toBeGreaterThanOrEqual(2)
    for (const s of socks) s.sock.destroy()
  })

  it('a client that resets while its answer is being delivered harms nobody', async () => {
    for (let round = 0; round < 5; round++) {
      const n = 16
      gate.arm(Infinity)
      const socks = await Promise.all(Array.from({ length: n }, () => openRaw(server.port)))
      socks.forEach((s, i) => s.sock.write(`GET /g/r${round}x${i} HTTP/1.1\r\nHost: x\r\n\r\n`))
      await until(() => gate.count === n, 3000)
      // Half of them reset (RST) in the turn their answers are handed
      // over: the I/O thread meets each reset before, while or after it
      // writes that answer.
      socks.forEach((s, i) => i % 2 === 0 && s.sock.resetAndDestroy())
      gate.open()
      const kept = socks.filter((_, i) => i % 2 === 1)
      for (const [k, s] of kept.entries()) {
        const id = `r${round}x${2 * k + 1}`
        expect(await s.waitFor(() => s.state.text.endsWith(`{"id":"${id}"}`), 3000)).toBe(true)
        s.sock.destroy()
      }
    }
    // Nothing left waiting, and the server answers on.
    await until(() => server.stats().pending === 0, 3000)
    expect(await (await fetch(`${url}/hello`)).text()).toBe('hello')
  })

  it('HEAD, 204 and 304 keep their framing, and the connection goes on', async () => {
    gate.arm(2)
    const a = await openRaw(server.port)
    const b = await openRaw(server.port)
    const step = async (req: string, count: number): Promise<void> => {
      a.sock.write(req)
      b.sock.write(req)
      const done = (s: typeof a): boolean => statuses(s.state.text).length === count && s.state.text.endsWith('\r\n\r\n')
      expect(await a.waitFor(() => done(a), 3000)).toBe(true)
      expect(await b.waitFor(() => done(b), 3000)).toBe(true)
    }
    await step('GET /empty HTTP/1.1\r\nHost: x\r\n\r\n', 1)
    await step('GET /same HTTP/1.1\r\nHost: x\r\nIf-None-Match: "v1"\r\n\r\n', 2)
    await step('HEAD /text HTTP/1.1\r\nHost: x\r\n\r\n', 3)
    for (const s of [a, b]) s.sock.write('GET /text HTTP/1.1\r\nHost: x\r\n\r\n')
    for (const s of [a, b]) {
      expect(await s.waitFor(() => s.state.text.endsWith('hello'), 3000)).toBe(true)
      const [empty, same, head, text] = s.state.text.split(/(?=HTTP\/1\.1 )/)
      expect(empty).toMatch(/^HTTP\/1\.1 204 No Content\r\n/)
      expect(empty).toMatch(/\r\nx-kind: empty\r\n/)
      expect(empty).not.toMatch(/content-length|transfer-encoding/i)
      expect(empty?.endsWith('\r\n\r\n')).toBe(true)
      expect(same).toMatch(/^HTTP\/1\.1 304 Not Modified\r\n/)
      expect(same).toMatch(/\r\netag: "v1"\r\n/)
      expect(same).not.toMatch(/content-length|transfer-encoding/i)
      expect(same?.endsWith('\r\n\r\n')).toBe(true)
      expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
      expect(head).toMatch(/\r\ncontent-length: 5\r\n/)
      expect(head?.endsWith('\r\n\r\n')).toBe(true)
      expect(text).toMatch(/\r\ncontent-length: 5\r\n[\s\S]*\r\n\r\nhello$/)
      expect(s.state.closed).toBe(false)
      s.sock.destroy()
    }
  })

  it('leaves nothing pending', async () => {
    await until(() => server.stats().pending === 0, 3000)
    expect(server.stats().pending).toBe(0)
  })
})
