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
  /** Set instead of the others for a request sent with `abort: true`. */
  aborted?: boolean
  /** The HTTP/3 error code of a stream reset without a response, else null. */
  reset: number | null
  /** Set when the client reset the stream itself (`hold_body` with `reset_after_ms`). */
  cancelled?: boolean
  /** Set when the client stopped the response itself (`stop_after_ms`). */
  stopped?: boolean
}
export interface H3Result {
  /** Empty when the client vanished (`vanishAfter`). */
  responses: H3Response[]
  vanished?: boolean
  transport: Record<string, number | null>
  /** The server's SETTINGS, by identifier. */
  settings: Record<string, number>
}
export interface H3Request {
  method?: string
  path: string
  headers?: Record<string, string>
  body_size?: number
  /** Cancel the request after its headers and half of its body (RESET_STREAM + STOP_SENDING). */
  abort?: boolean
  /** Send `body_size` bytes without ending the body; then reset the stream after `reset_after_ms` (or wait). */
  hold_body?: boolean
  reset_after_ms?: number
  /** Send the request whole, then stop its response (STOP_SENDING alone) after this long. */
  stop_after_ms?: number
  /** After the reset (or stop), stay connected this long (default 200 ms). */
  linger_ms?: number
}

/**
 * Runs the aioquic client once against 127.0.0.1:`port`; the client is
 * killed after `timeoutMs` (60 s by default). With `vanishAfter` (seconds)
 * the client sends the requests, waits that long and exits without closing
 * the connection.
 */
export function h3(
  port: number,
  requests: H3Request[],
  opts: { ca?: string; garbage?: number; timeoutMs?: number; serverName?: string; vanishAfter?: number; sequential?: boolean; abandonAfterMs?: number; cert?: string; key?: string } = {},
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
      if (code === 0) resolve({ responses: [], transport: {}, settings: {}, ...(JSON.parse(out) as Partial<H3Result>) })
      else reject(new Error(`h3 client exited with ${code}: ${err.slice(-2000)}`))
    })
    child.stdin.end(JSON.stringify({ host: '127.0.0.1', port, requests, ca: opts.ca ?? null, garbage: opts.garbage ?? 0, server_name: opts.serverName ?? null, vanish_after: opts.vanishAfter ?? null, sequential: opts.sequential ?? false, abandon_after_ms: opts.abandonAfterMs ?? null, cert: opts.cert ?? null, key: opts.key ?? null }))
  })
}
