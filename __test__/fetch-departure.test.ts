/**
 * A client that leaves during a held-back upload, over HTTP/1.1, with both
 * drivers (hyper, `HTTPY_H1_DRIVER=hyper`, and the own driver, the default):
 * a fetch handler reads the first chunk of `request.body` and stops
 * reading, so the core stops reading the socket (the backpressure) with
 * more of the body unread there; then the client goes, by closing its
 * socket (FIN after the bytes already sent) or by resetting it (RST). The
 * handler must learn of it: its stream errors with ERR_HTTPY_BODY_ABORTED
 * and `request.signal` aborts; over HTTP/1.1 at the latest when it reads
 * again (HTTP/2 and HTTP/3 see a reset at once: uploads.test.ts). Each driver runs in a server process of its own (the driver is
 * chosen once per process), fixture `held-upload-app.ts`.
 */
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startApp, type AppProcess } from './helpers/index.js'
import { sleep } from './helpers/wait.js'
import type { State } from './fixtures/held-upload-app.js'

/** Far more than the core buffers for a handler that stopped reading (64 KiB, then 8 chunks). */
const SENT = 2_000_000

describe.each([
  ['hyper', { HTTPY_H1_DRIVER: 'hyper' }],
  ['own (default)', {}],
] as const)('HTTP/1.1 held-back upload, %s driver', (_name, env) => {
  let app: AppProcess
  let base: string
  beforeAll(async () => {
    app = await startApp('held-upload-app.ts', env)
    base = `http://127.0.0.1:${app.port}`
  })
  afterAll(async () => {
    if (app && app.child.exitCode === null) {
      app.child.kill('SIGTERM')
      const done = await Promise.race([app.exited, sleep(3000).then(() => 'timeout')])
      if (done === 'timeout') process.kill(app.pid, 'SIGKILL')
    }
  })

  /** Asks the server for `key`'s state until `ok` holds (every 20 ms, at most `ms`). */
  async function stateWhen(key: string, ok: (s: State | null) => boolean, ms: number): Promise<State | null> {
    const end = Date.now() + ms
    for (;;) {
      const s = await state(key)
      if (ok(s)) return s
      if (Date.now() > end) throw new Error(`state of ${key} not reached in ${ms} ms: ${JSON.stringify(s)}`)
      await sleep(20)
    }
  }
  const state = async (key: string): Promise<State | null> => (await (await fetch(`${base}/state/${key}`)).json()) as State | null

  /** Starts an upload of 5 MB declared, SENT bytes written, and waits until the handler holds it back. */
  async function heldUpload(key: string): Promise<net.Socket> {
    const sock = net.connect(app.port, '127.0.0.1')
    sock.on('error', () => {})
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()))
    sock.write(`POST /held/${key} HTTP/1.1\r\nhost: x\r\ncontent-length: 5000000\r\n\r\n`)
    sock.write(Buffer.alloc(SENT, 0x61))
    await stateWhen(key, (s) => s?.phase === 'waiting', 4000)
    // Let the core fill its buffer and stop reading the socket.
    await sleep(200)
    return sock
  }

  async function finished(key: string, resume: boolean): Promise<State> {
    if (resume) expect(await (await fetch(`${base}/resume/${key}`, { method: 'POST' })).text()).toBe('resumed')
    return (await stateWhen(key, (s) => s?.phase === 'done', 5000)) as State
  }

  it('a client that closes its socket: the stream errors and the signal aborts when the handler reads again', async () => {
    const sock = await heldUpload('fin')
    sock.destroy()
    await sleep(300)
    const s = await finished('fin', true)
    expect(s.woke).toBe('resume')
    expect(s.bytes).toBeGreaterThan(0)
    expect(s.error).toMatchObject({ code: 'ERR_HTTPY_BODY_ABORTED' })
    expect(s.aborted).toBe(true)
    expect(s.reason).toBe('AbortError')
  })

  it('a client that resets its connection: the stream errors and the signal aborts, at the latest when the handler reads again', async () => {
    // While the upload is held back neither driver reads the socket, so the
    // reset itself is found only at the next read (docs/fetch.md); over
    // HTTP/2 and HTTP/3 it is seen at once (uploads.test.ts).
    const sock = await heldUpload('rst')
    sock.resetAndDestroy()
    await sleep(300)
    const s = await finished('rst', true)
    expect(s.bytes).toBeGreaterThan(0)
    expect(s.error).toMatchObject({ code: 'ERR_HTTPY_BODY_ABORTED' })
    expect(s.aborted).toBe(true)
    expect(s.reason).toBe('AbortError')
  })

  it('keeps serving on the same process afterwards', async () => {
    expect(await (await fetch(`${base}/state/none`)).json()).toBeNull()
  })
})
