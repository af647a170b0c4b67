/**
 * HTTP/1.1 helpers: start an app on a free port, talk raw TCP for input
 * that well-behaved clients refuse to send, GET without decoding the body.
 */
import { spawn } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { App, type Server, type ServerOptions } from '../../ts/index.js'

/** Starts `app` on 127.0.0.1 with a free port; remember to close it. */
export async function listen(app: App, opts: ServerOptions = {}): Promise<Server> {
  return app.listen({ host: '127.0.0.1', port: 0, ...opts })
}

/**
 * Starts `app` with options expected to be refused; returns the error
 * (`null`, after closing it, if the server started after all).
 */
export async function listenError(app: App, opts: ServerOptions): Promise<{ code?: string; message: string } | null> {
  try {
    const s = await app.listen(opts)
    await s.close()
    return null
  } catch (e) {
    return e as { code?: string; message: string }
  }
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

/** The bodies of the responses found in raw output (heads cut off). */
export function bodies(raw: string): string[] {
  return raw
    .split(/HTTP\/1\.[01] \d{3}[^\r]*\r\n/)
    .slice(1)
    .map((r) => r.slice(r.indexOf('\r\n\r\n') + 4))
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

/** A node:http request on a fresh connection that returns the raw (undecoded) body. */
export function rawGet(
  url: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/**
 * Like `rawGet` (GET only), but the request fails after 10 s of socket
 * inactivity instead of waiting for the test timeout.
 */
export function rawGetTimed(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
  })
}

/**
 * Runs `routes` (source that registers routes on `app`, with `App` and
 * `Response` in scope) in a child process served by hyper
 * (`HTTPY_H1_DRIVER=hyper`; the switch is read once per process); `use`
 * gets its port. The child is stopped by PID afterwards,
 * and killed after 10 s whatever happens.
 */
export async function withHyperChild(routes: string, use: (port: number) => Promise<void>): Promise<void> {
  const entry = path.resolve(__dirname, '../../dist/index.js')
  const script = `
    const { App, Response } = await import(${JSON.stringify(entry)})
    const app = new App()
    ${routes}
    const s = await app.listen({ host: '127.0.0.1', port: 0 })
    console.log(s.port)
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, HTTPY_H1_DRIVER: 'hyper' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const kill = setTimeout(() => child.kill('SIGKILL'), 10_000)
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())))
      child.once('exit', (code) => reject(new Error(`exited with ${code}`)))
    })
    await use(port)
  } finally {
    clearTimeout(kill)
    child.kill('SIGTERM')
  }
}
