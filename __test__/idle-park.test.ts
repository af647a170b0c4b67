/**
 * Idle HTTP/1 connections are parked: after ~100-200 ms without traffic
 * the core frees hyper's per-connection buffers and waits on the bare
 * socket. None of it may be visible to clients: the next request on the
 * same socket is answered, a head split across the park is parsed whole,
 * slow handlers and paused streams keep their keep-alive, and the idle
 * timeout and graceful close still apply to parked connections.
 */
import http from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { listen, openRaw, statuses } from './helpers/index.js'
import { sleep } from './helpers/wait.js'

const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`

function makeApp(): App {
  const app = new App()
  app.get('/ok', () => Response.text('ok'))
  app.get('/slow', async () => {
    await sleep(500)
    return Response.text('slow')
  })
  app.get('/paused', () => {
    async function* gen() {
      yield 'first,'
      await sleep(500)
      yield 'second'
    }
    return new Response(gen(), { headers: { 'content-type': 'text/plain' } })
  })
  return app
}

describe('idle keep-alive connections are parked', () => {
  let server: Server
  beforeAll(async () => {
    server = await listen(makeApp(), { keepAliveTimeout: 10, requestTimeout: 10 })
  })
  afterAll(() => server.close())

  it('a parked connection answers its next request on the same socket', async () => {
    const c = await openRaw(server.port)
    try {
      c.sock.write(GET('/ok'))
      expect(await c.waitFor(() => statuses(c.state.text).length === 1, 2000)).toBe(true)
      expect(await waitStat(server, (s) => s.connectionsIdle >= 1, 2000)).toBe(true)
      c.sock.write(GET('/ok'))
      expect(await c.waitFor(() => statuses(c.state.text).length === 2, 2000)).toBe(true)
      expect(statuses(c.state.text)).toEqual([200, 200])
      expect(c.state.closed).toBe(false)
      // Parked again once quiet.
      expect(await waitStat(server, (s) => s.connectionsIdle >= 1, 2000)).toBe(true)
    } finally {
      c.sock.destroy()
    }
  })

  it('many idle clients are all parked, then all served again', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 40 })
    try {
      const round = () =>
        Promise.all(Array.from({ length: 40 }, () => get(agent, server.port, '/ok')))
      expect((await round()).every((r) => r.status === 200 && r.body === 'ok')).toBe(true)
      expect(await waitStat(server, (s) => s.connectionsIdle >= 40, 3000)).toBe(true)
      const opened = server.stats().connectionsTotal
      expect((await round()).every((r) => r.status === 200 && r.body === 'ok')).toBe(true)
      // Same sockets: parking closed none of them.
      expect(server.stats().connectionsTotal).toBe(opened)
    } finally {
      agent.destroy()
    }
  })

  it('a request head split across the park is read as one request', async () => {
    const c = await openRaw(server.port)
    try {
      c.sock.write('GET /ok HTTP/1.1\r\nHo')
      await sleep(450)
      c.sock.write('st: x\r\n\r\n')
      expect(await c.waitFor(() => statuses(c.state.text).length === 1, 2000)).toBe(true)
      expect(statuses(c.state.text)).toEqual([200])
      c.sock.write(GET('/ok'))
      expect(await c.waitFor(() => statuses(c.state.text).length === 2, 2000)).toBe(true)
      expect(c.state.closed).toBe(false)
    } finally {
      c.sock.destroy()
    }
  })

  it('a slow handler keeps its connection alive (issue-10 regression: no close after the park)', async () => {
    const c = await openRaw(server.port)
    try {
      c.sock.write(GET('/slow'))
      expect(await c.waitFor(() => statuses(c.state.text).length === 1, 3000)).toBe(true)
      expect(c.state.text.toLowerCase()).not.toContain('connection: close')
      c.sock.write(GET('/ok'))
      expect(await c.waitFor(() => statuses(c.state.text).length === 2, 2000)).toBe(true)
      expect(c.state.closed).toBe(false)
    } finally {
      c.sock.destroy()
    }
  })

  it('a response stream that pauses completes, and the connection is reused', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      const a = await get(agent, server.port, '/paused')
      expect(a).toEqual({ status: 200, body: 'first,second', reused: false })
      const b = await get(agent, server.port, '/ok')
      expect(b).toEqual({ status: 200, body: 'ok', reused: true })
    } finally {
      agent.destroy()
    }
  })

  it('a graceful close ends parked connections at once', async () => {
    const s = await listen(makeApp(), { keepAliveTimeout: 10 })
    const c = await openRaw(s.port)
    c.sock.write(GET('/ok'))
    expect(await c.waitFor(() => statuses(c.state.text).length === 1, 2000)).toBe(true)
    expect(await waitStat(s, (st) => st.connectionsIdle === 1, 2000)).toBe(true)
    const t0 = Date.now()
    await s.close()
    expect(Date.now() - t0).toBeLessThan(1000)
    expect(await c.waitFor(() => c.state.closed, 2000)).toBe(true)
  })
})

describe('parked connections still idle out', () => {
  let server: Server
  beforeAll(async () => {
    server = await listen(makeApp(), { keepAliveTimeout: 0.8 })
  })
  afterAll(() => server.close())

  it('closed quietly at keepAliveTimeout, and the gauge returns to 0', async () => {
    const c = await openRaw(server.port)
    c.sock.write(GET('/ok'))
    expect(await c.waitFor(() => statuses(c.state.text).length === 1, 2000)).toBe(true)
    const answeredAt = Date.now()
    expect(await waitStat(server, (s) => s.connectionsIdle === 1, 2000)).toBe(true)
    expect(await c.waitFor(() => c.state.closed, 4000)).toBe(true)
    expect(statuses(c.state.text)).toEqual([200])
    expect(c.state.closedAt - answeredAt).toBeGreaterThanOrEqual(600)
    expect(c.state.closedAt - answeredAt).toBeLessThan(2500)
    expect(await waitStat(server, (s) => s.connectionsIdle === 0 && s.connectionsOpen === 0, 2000)).toBe(true)
  })
})

async function waitStat(
  server: Server,
  cond: (s: ReturnType<Server['stats']>) => boolean,
  ms: number,
): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond(server.stats()) && Date.now() < end) await sleep(10)
  return cond(server.stats())
}

function get(
  agent: http.Agent,
  port: number,
  path: string,
): Promise<{ status: number; body: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket }))
    })
    req.on('error', reject)
  })
}
