/**
 * Starting and stopping: option validation before anything binds,
 * EADDRINUSE, graceful `close()` that lets in-flight handlers finish, and
 * `run()`'s SIGTERM/SIGINT handling in a real child process.
 */
import { spawn } from 'node:child_process'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { App, Response, run, type ServerOptions } from '../ts/index.js'
import { listen } from './helpers/index.js'
import { freePort, waitFor } from './helpers/proc.js'
import { sleep } from './helpers/wait.js'

/** True when a TCP connection to `port` is accepted. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

describe('invalid options', () => {
  const bad: Array<[string, ServerOptions | Record<string, unknown>]> = [
    ['port', { port: 70000 }],
    ['port', { port: -1 }],
    ['port', { port: '8080' }],
    ['host', { host: '' }],
    ['keepAliveTimeout', { keepAliveTimeout: 0 }],
    ['keepAliveTimeout', { keepAliveTimeout: Number.NaN }],
    ['requestTimeout', { requestTimeout: -5 }],
    ['maxBodySize', { maxBodySize: 1.5 }],
    ['maxHeaderSize', { maxHeaderSize: 10 }],
    ['maxConnections', { maxConnections: -1 }],
    ['maxKeepAliveRequests', { maxKeepAliveRequests: 'many' }],
    ['keepAlive', { keepAlive: 'yes' }],
    ['readBufferSize', { readBufferSize: 0 }],
    ['debug', { debug: 1 }],
    ['onError', { onError: 'log' }],
    ['unknown option "colour"', { colour: 'blue' }],
  ]
  for (const [name, opts] of bad) {
    it(`${JSON.stringify(opts)} → TypeError naming ${name}, nothing bound`, async () => {
      const port = await freePort()
      const app = new App()
      app.get('/', () => Response.text('x'))
      const err = await app.listen({ host: '127.0.0.1', port, ...opts } as ServerOptions).then(
        () => null,
        (e: unknown) => e,
      )
      // `port` itself may be the bad option; otherwise it must still be free.
      expect(err).toBeInstanceOf(TypeError)
      expect((err as { code?: string }).code).toBe('ERR_HTTPY_INVALID_OPTION')
      expect((err as Error).message).toContain(name.startsWith('unknown') ? 'colour' : `"${name}"`)
      if (!('port' in opts)) expect(await accepts(port)).toBe(false)
      expect(app.server).toBeUndefined()
    })
  }
})

describe('port in use', () => {
  it('listen() rejects with code EADDRINUSE; the first server is unaffected', async () => {
    const a = new App()
    a.get('/', () => Response.text('first'))
    const first = await listen(a)
    try {
      const b = new App()
      b.get('/', () => Response.text('second'))
      const err = await b.listen({ host: '127.0.0.1', port: first.port }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(Error)
      expect((err as { code?: string }).code).toBe('EADDRINUSE')
      expect(await (await fetch(`${first.url}/`)).text()).toBe('first')
    } finally {
      await first.close()
    }
  })

  it('a port held by another program (node:net) → EADDRINUSE too', async () => {
    const other = net.createServer()
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r))
    const port = (other.address() as net.AddressInfo).port
    try {
      const err = await run({ host: '127.0.0.1', port }).catch((e: unknown) => e)
      expect((err as { code?: string }).code).toBe('EADDRINUSE')
      // run() installed no signal handlers for a server that never started.
      expect(process.listenerCount('SIGTERM')).toBe(0)
    } finally {
      await new Promise((r) => other.close(r))
    }
  })
})

describe('graceful close', () => {
  it('close() lets a slow in-flight handler finish and refuses new connections', async () => {
    const app = new App()
    let finished = false
    app.get('/slow', async () => {
      await sleep(700)
      finished = true
      return Response.text('done')
    })
    app.get('/ok', () => Response.text('ok'))
    const server = await listen(app)
    const port = server.port
    const inflight = fetch(`${server.url}/slow`).then(async (r) => ({ status: r.status, body: await r.text() }))
    expect(await waitFor(() => server.stats().pending === 1, 3000, 5), 'the slow handler is running').toBe(true)
    const closing = server.close()
    expect(await waitFor(async () => !(await accepts(port)), 1000, 10), 'new connections refused').toBe(true)
    expect(finished).toBe(false)
    expect(await inflight).toEqual({ status: 200, body: 'done' })
    await closing
    expect(finished).toBe(true)
    expect(server.isClosed).toBe(true)
    expect(server.stats().connectionsOpen).toBe(0)
  })

  it('issue-11 regression: stats() keeps the final totals after close', async () => {
    const app = new App()
    app.get('/ok', () => Response.text('ok'))
    const server = await listen(app)
    for (let i = 0; i < 3; i++) expect(await (await fetch(`${server.url}/ok`)).text()).toBe('ok')
    expect((await fetch(`${server.url}/nope`)).status).toBe(404)
    await server.close()
    const s = server.stats()
    expect(s.requestsTotal).toBe(4)
    expect(s.nativeResponses).toBeGreaterThanOrEqual(1)
    expect(s.connectionsTotal).toBeGreaterThanOrEqual(1)
    expect(s).toMatchObject({ connectionsOpen: 0, connectionsIdle: 0, pending: 0, heldResponders: 0, websocketsOpen: 0 })
  })

  it('close({ timeout }) drops a handler that outlives the grace period', async () => {
    const app = new App()
    app.get('/forever', () => new Promise<Response>(() => {}))
    const server = await listen(app)
    const inflight = fetch(`${server.url}/forever`).then(
      (r) => r.status,
      () => 'dropped',
    )
    expect(await waitFor(() => server.stats().pending === 1, 3000, 5), 'the handler is running').toBe(true)
    const t0 = Date.now()
    await server.close({ timeout: 0.3 })
    expect(Date.now() - t0).toBeLessThan(3000)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250)
    expect(await inflight).toBe('dropped')
  })

  it('the port can be reused right after close', async () => {
    const app = new App()
    app.get('/', () => Response.text('one'))
    const s1 = await listen(app)
    const port = s1.port
    await fetch(`${s1.url}/`).then((r) => r.text())
    await s1.close()
    const app2 = new App()
    app2.get('/', () => Response.text('two'))
    const s2 = await app2.listen({ host: '127.0.0.1', port })
    try {
      expect(await (await fetch(`${s2.url}/`)).text()).toBe('two')
    } finally {
      await s2.close()
    }
  })
})

describe('run() and signals', () => {
  const script = fileURLToPath(new URL('./fixtures/run-app.ts', import.meta.url))

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal}: in-flight request finishes, then the process exits cleanly`, async () => {
      const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      let err = ''
      child.stdout.on('data', (c: Buffer) => (out += c))
      child.stderr.on('data', (c: Buffer) => (err += c))
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on('exit', (code, sig) => resolve({ code, signal: sig })),
      )
      try {
        const deadline = Date.now() + 15_000
        while (!/port \d+/.test(out) && Date.now() < deadline && child.exitCode === null) await sleep(20)
        const port = Number(/port (\d+)/.exec(out)?.[1])
        expect(port, `child output: ${out} ${err}`).toBeGreaterThan(0)
        expect(await (await fetch(`http://127.0.0.1:${port}/ok`)).text()).toBe('ok')

        const slow = fetch(`http://127.0.0.1:${port}/slow`).then(async (r) => ({ s: r.status, b: await r.text() }))
        expect(await waitFor(() => out.includes('slow started\n'), 5000, 5), 'the slow handler is running').toBe(true)
        child.kill(signal)
        expect(await slow).toEqual({ s: 200, b: 'finished' })
        const { code } = await exited
        expect(code).toBe(signal === 'SIGINT' ? 130 : 0)
        expect(out).toContain('closed\n')
        expect(out).toContain(`exit ${signal === 'SIGINT' ? 130 : 0}\n`)
        expect(await accepts(port)).toBe(false)
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL')
      }
    })
  }
})
