/**
 * Headless Chromium driven over the DevTools protocol (CDP) with the `ws`
 * package: launch it (bounded in time, stopped by PID), open a page, and
 * evaluate a script in it. Enough for tests where a real browser is the
 * client; no browser-automation dependency.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { chromiumBin } from './tools.js'

export interface Browser {
  /** Opens `url` in a new tab and waits for its load. */
  open(url: string): Promise<Page>
  close(): Promise<void>
}

export interface Page {
  /** Evaluates an expression (awaiting a promise) and returns its JSON value. */
  evaluate<T>(expression: string): Promise<T>
}

export async function launchChromium(timeoutMs = 20_000): Promise<Browser> {
  if (!chromiumBin) throw new Error('chromium is not installed')
  const dir = mkdtempSync(join(tmpdir(), 'httpy-chromium-'))
  const child: ChildProcess = spawn(
    chromiumBin,
    [
      '--headless=new',
      // CI runs as root, where Chromium's sandbox cannot start.
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--no-default-browser-check',
      // The tests' certificates are made at test time.
      '--ignore-certificate-errors',
      '--remote-debugging-port=0',
      `--user-data-dir=${dir}`,
      'about:blank',
    ],
    // Its own process group: Chromium's zygote, GPU and renderer processes
    // are stopped with it, so none writes into the profile directory while
    // it is being removed (that raced the removal into ENOTEMPTY).
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  )
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGKILL')
      await exited
    }
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
    } catch {
      // The group is already gone.
    }
    // A child that was just killed may still be closing its files.
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
  }
  const killer = setTimeout(() => void stop(), 120_000)
  killer.unref()
  let endpoint: string
  try {
    endpoint = await new Promise<string>((resolve, reject) => {
      let err = ''
      const t = setTimeout(() => reject(new Error(`chromium did not start: ${err.slice(-1000)}`)), timeoutMs)
      child.stderr?.on('data', (c: Buffer) => {
        err += c.toString()
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(err)
        if (m) {
          clearTimeout(t)
          resolve(m[1] as string)
        }
      })
      child.once('exit', (code) => reject(new Error(`chromium exited with ${code}: ${err.slice(-1000)}`)))
    })
  } catch (e) {
    await stop()
    throw e
  }
  const cdp = new WebSocket(endpoint, { perMessageDeflate: false })
  await new Promise((resolve, reject) => {
    cdp.once('open', resolve)
    cdp.once('error', reject)
  })
  let nextId = 1
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  cdp.on('message', (data) => {
    const msg = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } }
    const w = msg.id === undefined ? undefined : waiting.get(msg.id)
    if (!w) return
    waiting.delete(msg.id as number)
    if (msg.error) w.reject(new Error(msg.error.message))
    else w.resolve(msg.result)
  })
  const call = <T>(method: string, params: object = {}, sessionId?: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++
      const t = setTimeout(() => {
        waiting.delete(id)
        reject(new Error(`CDP ${method} timed out`))
      }, timeoutMs)
      waiting.set(id, {
        resolve: (v) => {
          clearTimeout(t)
          resolve(v as T)
        },
        reject: (e) => {
          clearTimeout(t)
          reject(e)
        },
      })
      cdp.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }))
    })

  return {
    async open(url) {
      const { targetId } = await call<{ targetId: string }>('Target.createTarget', { url })
      const { sessionId } = await call<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true })
      const evaluate = async <T>(expression: string): Promise<T> => {
        const r = await call<{ result: { value: T }; exceptionDetails?: { exception?: { description?: string }; text: string } }>(
          'Runtime.evaluate',
          { expression, awaitPromise: true, returnByValue: true },
          sessionId,
        )
        if (r.exceptionDetails) throw new Error(r.exceptionDetails.exception?.description ?? r.exceptionDetails.text)
        return r.result.value
      }
      const deadline = Date.now() + timeoutMs
      while ((await evaluate<string>('location.href + " " + document.readyState')) !== `${url} complete`) {
        if (Date.now() > deadline) throw new Error(`page ${url} did not load`)
        await new Promise((r) => setTimeout(r, 50))
      }
      return { evaluate }
    },
    async close() {
      clearTimeout(killer)
      cdp.terminate()
      await stop()
    },
  }
}
