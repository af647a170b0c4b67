/**
 * Shared test helpers: start an app on a free port, talk raw TCP for input
 * that well-behaved clients refuse to send.
 */
import net from 'node:net'
import { App, type Server, type ServerOptions } from '../ts/index.js'

/** Starts `app` on 127.0.0.1 with a free port; remember to close it. */
export async function listen(app: App, opts: ServerOptions = {}): Promise<Server> {
  return app.listen({ host: '127.0.0.1', port: 0, ...opts })
}

/**
 * Sends `data` on a new TCP connection and collects everything the server
 * writes until it closes the connection or `timeoutMs` passes.
 */
export function rawRequest(
  port: number,
  data: string | Buffer | Array<string | Buffer>,
  timeoutMs = 3000,
  gapMs = 0,
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let closed = false
    const timer = setTimeout(() => {
      sock.destroy()
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed })
    }, timeoutMs)
    sock.on('data', (c) => chunks.push(c))
    sock.on('error', (e) => {
      if ((e as NodeJS.ErrnoException).code === 'ECONNRESET') return
      clearTimeout(timer)
      reject(e)
    })
    sock.on('close', () => {
      closed = true
      clearTimeout(timer)
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed })
    })
    sock.on('connect', async () => {
      const parts = Array.isArray(data) ? data : [data]
      for (const p of parts) {
        if (sock.destroyed) break
        sock.write(p)
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs))
      }
    })
  })
}

/** Status codes of every HTTP response head found in raw output. */
export function statuses(raw: string): number[] {
  return [...raw.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]))
}

/**
 * Opens a raw TCP connection and records what the server sends and when it
 * closes; `waitFor` polls a condition up to `ms` milliseconds.
 */
export async function openRaw(port: number) {
  const sock = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve())
    sock.once('error', reject)
  })
  const state = { text: '', closed: false, closedAt: 0 }
  sock.on('data', (c: Buffer) => (state.text += c.toString('latin1')))
  sock.on('error', () => {})
  sock.on('close', () => {
    state.closed = true
    state.closedAt = Date.now()
  })
  const waitFor = async (cond: () => boolean, ms: number) => {
    const end = Date.now() + ms
    while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5))
    return cond()
  }
  return { sock, state, waitFor }
}
