/**
 * A real nginx for a test: a configuration written into `dir` around the
 * test's own `http { … }` lines, nginx started in the foreground, waited
 * for until `ready()` says it answers, and stopped by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { waitFor } from './proc.js'
import { nginxBin } from './tools.js'

export interface Nginx {
  process: ChildProcess
  /** Graceful stop (SIGQUIT), resolved once nginx has exited. */
  stop(): Promise<void>
}

export async function startNginx(
  dir: string,
  http: string[],
  ready: () => Promise<boolean>,
  workerConnections = 256,
): Promise<Nginx> {
  mkdirSync(join(dir, 'tmp'), { recursive: true })
  writeFileSync(
    join(dir, 'nginx.conf'),
    [
      'daemon off;',
      'worker_processes 1;',
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log warn;`,
      `events { worker_connections ${workerConnections}; }`,
      'http {',
      `  access_log ${dir}/access.log;`,
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/tmp/${t};`),
      ...http.map((l) => `  ${l}`),
      '}',
    ].join('\n'),
  )
  const child = spawn(nginxBin as string, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let log = ''
  child.stderr?.on('data', (c: Buffer) => (log += c.toString()))
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const gone = new Promise((r) => child.once('exit', r))
    child.kill('SIGQUIT')
    await gone
  }
  const up = await waitFor(async () => {
    try {
      return await ready()
    } catch {
      return false
    }
  }, 10_000)
  if (!up) {
    await stop()
    let errors = ''
    try {
      errors = readFileSync(join(dir, 'error.log'), 'utf8')
    } catch {
      // nginx never got as far as opening its log
    }
    throw new Error(`nginx did not start: ${log}\n${errors}`)
  }
  return { process: child, stop }
}
