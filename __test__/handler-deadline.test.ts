/**
 * `requestTimeout` on a JS handler over the own HTTP/1.1 driver: the
 * behaviour any change to how the deadline is watched must keep (a clock
 * in place of the timer per request was tried, docs/performance.md §17.1).
 * Seen from raw sockets: a slow handler gets
 * its 503 + `Retry-After: 1` at the deadline on a connection that goes on,
 * a request pipelined behind it gets its own deadline counted from when it
 * is handed over (and its own answer), a request with a body times out
 * the same way, and a request's deadline counts from its own hand-over,
 * not from an earlier request's on the same connection. Since
 * docs/performance.md §17.5 the driver keeps the deadline of a request
 * that may be answered directly: its 503 is counted in `timedOut` and
 * aborts the handler's `request.signal`, as the dispatcher's did.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { listen, openRaw, statuses } from './helpers/index.js'
import { sleep } from './helpers/wait.js'

const TIMEOUT_MS = 400
/** When each `GET /slow`'s signal aborted, in ms after its handler began. */
const aborts: number[] = []

describe('requestTimeout on JS handlers', () => {
  let server: Server
  let port: number
  beforeAll(async () => {
    const app = new App()
    app.get('/slow', async (req) => {
      const t = Date.now()
      req.signal.addEventListener('abort', () => aborts.push(Date.now() - t), { once: true })
      await sleep(2000)
      return Response.text('late')
    })
    app.post('/slow', async () => {
      await sleep(2000)
      return Response.text('late')
    })
    app.get('/quick', () => Response.text('quick'))
    app.get('/nearly', async () => {
      await sleep((TIMEOUT_MS * 5) / 8)
      return Response.text('in time')
    })
    server = await listen(app, { requestTimeout: TIMEOUT_MS / 1000, keepAliveTimeout: 5 })
    port = server.port
  })
  afterAll(() => server.close())

  it('a slow handler gets 503 at the deadline; the connection serves on', async () => {
    const timedOut = server.stats().timedOut
    const { sock, state, waitFor } = await openRaw(port)
    const t0 = Date.now()
    sock.write('GET /slow HTTP/1.1\r\nhost: x\r\n\r\n')
    expect(await waitFor(() => statuses(state.text).length === 1, 1500)).toBe(true)
    const ms = Date.now() - t0
    expect(statuses(state.text)).toEqual([503])
    expect(state.text).toMatch(/retry-after: 1\r\n/i)
    expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 20)
    expect(ms).toBeLessThan(1500)
    // The core answered for the handler: counted, and its signal aborts.
    expect(server.stats().timedOut).toBe(timedOut + 1)
    expect(await waitFor(() => aborts.length === 1, 500)).toBe(true)
    expect(aborts[0]).toBeGreaterThanOrEqual(TIMEOUT_MS - 40)
    expect(aborts[0]).toBeLessThan(1000)
    sock.write('GET /quick HTTP/1.1\r\nhost: x\r\n\r\n')
    expect(await waitFor(() => statuses(state.text).length === 2, 1000)).toBe(true)
    expect(statuses(state.text)).toEqual([503, 200])
    expect(state.closed).toBe(false)
    sock.destroy()
  })

  it('a request pipelined behind a slow one gets its own deadline and answer', async () => {
    const { sock, state, waitFor } = await openRaw(port)
    const t0 = Date.now()
    sock.write('GET /slow HTTP/1.1\r\nhost: x\r\n\r\nGET /slow HTTP/1.1\r\nhost: x\r\n\r\nGET /quick HTTP/1.1\r\nhost: x\r\n\r\n')
    expect(await waitFor(() => statuses(state.text).length === 3, 1800)).toBe(true)
    const ms = Date.now() - t0
    expect(statuses(state.text)).toEqual([503, 503, 200])
    expect(state.text.endsWith('quick')).toBe(true)
    // The second deadline counts from its hand-over, after the first 503.
    expect(ms).toBeGreaterThanOrEqual(2 * TIMEOUT_MS - 40)
    expect(ms).toBeLessThan(1800)
    sock.destroy()
  })

  it('a request with a body times out the same way', async () => {
    const { sock, state, waitFor } = await openRaw(port)
    sock.write('POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello')
    expect(await waitFor(() => statuses(state.text).length === 1, 1500)).toBe(true)
    expect(statuses(state.text)).toEqual([503])
    sock.destroy()
  })

  it('a deadline counts from its own request, not the one before', async () => {
    const { sock, state, waitFor } = await openRaw(port)
    sock.write('GET /quick HTTP/1.1\r\nhost: x\r\n\r\n')
    expect(await waitFor(() => statuses(state.text).length === 1, 1000)).toBe(true)
    // Idle for less than requestTimeout (the idle limit is the smaller of
    // it and keepAliveTimeout), then a handler that needs 5/8 of it: more
    // than requestTimeout after the first request, in time for its own.
    await sleep((TIMEOUT_MS * 5) / 8)
    sock.write('GET /nearly HTTP/1.1\r\nhost: x\r\n\r\n')
    expect(await waitFor(() => statuses(state.text).length === 2, 1500)).toBe(true)
    expect(statuses(state.text)).toEqual([200, 200])
    expect(state.text.endsWith('in time')).toBe(true)
    sock.destroy()
  })
})
