/**
 * Running test apps as separate processes (workers, signals and exits
 * need a process of their own): spawn with tsx, wait for the "listening"
 * line, and collect output for assertions.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import { fileURLToPath } from 'node:url'

export interface AppProcess {
  child: ChildProcess
  port: number
  pid: number
  workers: number[]
  stdout: () => string
  stderr: () => string
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>
}

export function fixture(name: string): string {
  return fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))
}

/** Spawns `node --import tsx <fixture>`, collecting its output. */
function spawnFixture(name: string, env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture(name)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const io = { out: '', err: '' }
  child.stdout?.on('data', (c: Buffer) => (io.out += c.toString()))
  child.stderr?.on('data', (c: Buffer) => (io.err += c.toString()))
  return { child, io }
}

/** Starts `node --import tsx <fixture>` and waits for its listening line (or its exit). */
export function startApp(name: string, env: Record<string, string>, timeoutMs = 20_000): Promise<AppProcess> {
  const { child, io } = spawnFixture(name, env)
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1))
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${name} did not start within ${timeoutMs} ms\nstdout: ${io.out}\nstderr: ${io.err}`))
    }, timeoutMs)
    const onData = (): void => {
      const line = io.out.split('\n').find((l) => l.startsWith('{"event":"listening"'))
      if (!line) return
      clearTimeout(timer)
      child.stdout?.off('data', onData)
      const info = JSON.parse(line) as { port: number; pid: number; workers: number[] }
      resolve({ child, ...info, stdout: () => io.out, stderr: () => io.err, exited })
    }
    child.stdout?.on('data', onData)
    void exited.then((code) => {
      clearTimeout(timer)
      reject(Object.assign(new Error(`${name} exited with ${code} before listening\nstderr: ${io.err}`), { code, stderr: io.err }))
    })
  })
}

/** Starts a fixture that is expected to fail; resolves with its exit code and output. */
export function runToExit(
  name: string,
  env: Record<string, string>,
  timeoutMs = 20_000,
): Promise<{ code: number | string; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now()
  const { child, io } = spawnFixture(name, env)
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: code ?? signal ?? -1, stdout: io.out, stderr: io.err, ms: Date.now() - t0 })
    })
  })
}

/** One GET on a fresh connection (no keep-alive), so each request is a new accept. */
export function getOnce(port: number, path: string, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
  })
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const srv = net.createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as net.AddressInfo).port
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, stepMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, stepMs))
  }
  return check()
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
