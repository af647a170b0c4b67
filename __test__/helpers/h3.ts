/**
 * Runs the independent HTTP/3 client (`__test__/fixtures/h3client.py`, Python's
 * aioquic) for a test: one QUIC connection, the given requests sent
 * concurrently, bounded in time.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'

const CLIENT = join(import.meta.dirname, '..', 'fixtures', 'h3client.py')

export interface H3Response {
  status: number
  headers: Record<string, string>
  body: string
  length: number
  sha256: string
}
export interface H3Result {
  responses: H3Response[]
  transport: Record<string, number | null>
}
export interface H3Request {
  method?: string
  path: string
  headers?: Record<string, string>
  body_size?: number
}

/**
 * Runs the aioquic client once against 127.0.0.1:`port`; the client is
 * killed after `timeoutMs` (60 s by default).
 */
export function h3(
  port: number,
  requests: H3Request[],
  opts: { ca?: string; garbage?: number; timeoutMs?: number; serverName?: string; cert?: string; key?: string } = {},
): Promise<H3Result> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', [CLIENT], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
    child.stdout.on('data', (c: Buffer) => (out += c.toString()))
    child.stderr.on('data', (c: Buffer) => (err += c.toString()))
    child.on('exit', (code) => {
      clearTimeout(timer)
      if (code === 0) resolve(JSON.parse(out) as H3Result)
      else reject(new Error(`h3 client exited with ${code}: ${err.slice(-2000)}`))
    })
    child.stdin.end(JSON.stringify({ host: '127.0.0.1', port, requests, ca: opts.ca ?? null, garbage: opts.garbage ?? 0, server_name: opts.serverName ?? null, cert: opts.cert ?? null, key: opts.key ?? null }))
  })
}
