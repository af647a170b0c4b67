#!/usr/bin/env node
/**
 * `httpy` command line. `httpy bench <url>` loads a URL with the built-in
 * generator: live progress on a terminal, a summary table (or JSON), and a
 * non-zero exit code when too many requests fail.
 */
import { readFileSync, realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { args, numberArg } from './argv.js'
import { benchmarkRoute, BenchmarkError, type BenchmarkOptions, type BenchmarkResults } from './benchmark.js'

const USAGE = `Usage: httpy bench <url> [options]
       httpy serve <module> [options]   (httpy serve --help)

  -n, --requests N        measured requests (default 1000)
  -d, --duration SECONDS  measure for a time instead of a count
  -c, --concurrency C     requests in flight (default 10)
      --connections K     HTTP/2 connections (default: one per 16 streams)
      --http2             HTTP/2 over cleartext (h2c, prior knowledge)
      --http3             HTTP/3 over QUIC (an https:// URL with the UDP port)
      --ws                WebSocket echo: req/s are messages/s (also: a ws:// URL)
  -m, --method METHOD     request method (default GET)
  -H, --header 'N: V'     request header (repeatable)
      --body FILE         send FILE as the request body
      --warmup SECONDS    unmeasured load first (default 0)
      --timeout SECONDS   per-request timeout (default 10)
      --threads T         load generator threads (default 1)
      --insecure          https://: accept any certificate (e.g. self-signed)
      --ca-file FILE      https://: trust the certificates in this PEM file
      --new-connection    a new connection per request (HTTP/1.1; with https://
                          each request is a full TLS handshake)
      --json              print the results as JSON
      --max-error-rate X  exit 1 when errors / requests > X (default 0)

  -h, --help              print this help

Exit codes: 0 ok, 1 errors above the threshold or target unreachable, 2 bad usage.`

class UsageError extends Error {}

interface Parsed {
  /** `-h` / `--help` was given: print the usage, nothing else. */
  help: boolean
  url: string
  opts: BenchmarkOptions
  json: boolean
  maxErrorRate: number
}

function num(flag: string, v: string | undefined, integer: boolean): number {
  const n = numberArg(flag, v, integer ? 'integer' : 'number')
  if (typeof n === 'string') throw new UsageError(n)
  return n
}

/** Parses `bench` arguments (without the `bench` word). Exported for tests. */
export function parseBenchArgs(argv: string[]): Parsed {
  let url: string | undefined
  const opts: BenchmarkOptions = {}
  const headers: Array<[string, string]> = []
  let json = false
  let maxErrorRate = 0
  for (const { flag, raw: a, value } of args(argv)) {
    switch (flag) {
      case '-h':
      case '--help':
        return { help: true, url: '', opts: {}, json: false, maxErrorRate: 0 }
      case '-n':
      case '--requests':
        opts.numRequests = num(flag, value(), true)
        break
      case '-d':
      case '--duration':
        opts.duration = num(flag, value(), false)
        break
      case '-c':
      case '--concurrency':
        opts.concurrency = num(flag, value(), true)
        break
      case '--connections':
        opts.connections = num(flag, value(), true)
        break
      case '--http2':
        opts.protocol = 'http2'
        break
      case '--http3':
        opts.protocol = 'http3'
        break
      case '--ws':
      case '--websocket':
        opts.protocol = 'websocket'
        break
      case '-m':
      case '--method':
        opts.method = value()
        if (!opts.method) throw new UsageError(`${flag} needs a method`)
        break
      case '-H':
      case '--header': {
        const h = value() ?? ''
        const colon = h.indexOf(':')
        if (colon <= 0) throw new UsageError(`${flag} needs "Name: value" (got ${JSON.stringify(h)})`)
        headers.push([h.slice(0, colon).trim(), h.slice(colon + 1).trim()])
        break
      }
      case '--body': {
        const file = value()
        if (!file) throw new UsageError('--body needs a file')
        try {
          opts.body = readFileSync(file)
        } catch (e) {
          throw new UsageError(`--body: cannot read ${file}: ${(e as Error).message}`)
        }
        break
      }
      case '--warmup':
        opts.warmup = num(flag, value(), false)
        break
      case '--timeout':
        opts.timeout = num(flag, value(), false)
        break
      case '--threads':
        opts.threads = num(flag, value(), true)
        break
      case '--insecure':
        opts.insecure = true
        break
      case '--ca-file': {
        const file = value()
        if (!file) throw new UsageError('--ca-file needs a file')
        opts.caFile = file
        break
      }
      case '--new-connection':
        opts.newConnectionPerRequest = true
        break
      case '--json':
        json = true
        break
      case '--max-error-rate':
        maxErrorRate = num(flag, value(), false)
        if (maxErrorRate < 0 || maxErrorRate > 1) throw new UsageError('--max-error-rate must be between 0 and 1')
        break
      default:
        if (a.startsWith('-')) throw new UsageError(`unknown option ${a}`)
        if (url !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(a)}`)
        url = a
    }
  }
  if (url === undefined) throw new UsageError('missing <url>')
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) url = `http://${url}`
  if (/^wss?:/i.test(url)) opts.protocol ??= 'websocket'
  if (headers.length) opts.headers = headers
  return { help: false, url, opts, json, maxErrorRate }
}

const ms = (s: number) => `${(s * 1000).toFixed(2)}ms`

/** The human-readable summary printed after a run. */
export function formatSummary(r: BenchmarkResults): string {
  const h2 = r.url.startsWith('https:') ? 'HTTP/2 (TLS)' : 'HTTP/2 (h2c)'
  const proto = r.protocol === 'http2' ? h2 : r.protocol === 'http3' ? 'HTTP/3 (QUIC)' : r.protocol === 'websocket' ? 'WebSocket echo (1 message in flight per connection)' : 'HTTP/1.1'
  const statuses = Object.entries(r.statusCounts).map(([s, n]) => `${s}: ${n}`).join(', ') || 'none'
  const rows: Array<[string, string]> = [
    ['Target', `${r.url}  ${proto}, concurrency ${r.concurrency}, ${r.connectionsOpened} connections opened`],
    ['Requests', `${r.totalRequests} in ${r.duration.toFixed(2)}s, ${r.errors} errors`],
    ['Throughput', `${r.requestsPerSecond.toFixed(1)} req/s, ${(r.bytesReceived / 1e6 / (r.duration || 1)).toFixed(2)} MB/s of body`],
    ['Latency', `min ${ms(r.minResponseTime)}  avg ${ms(r.avgResponseTime)}  p50 ${ms(r.p50ResponseTime)}  p95 ${ms(r.p95ResponseTime)}  p99 ${ms(r.p99ResponseTime)}  max ${ms(r.maxResponseTime)}`],
    ['Status', statuses],
  ]
  const e = r.errorCounts
  if (r.errors > 0) {
    rows.push(['Errors', `connect ${e.connect}, timeout ${e.timeout}, io ${e.io}, protocol ${e.protocol}, status>=400 ${e.status}`])
    for (const m of r.errorMessages) rows.push(['', m])
  }
  return rows.map(([k, v]) => `  ${k.padEnd(11)} ${v}`).join('\n')
}

function progressReporter(opts: BenchmarkOptions): { onProgress: NonNullable<BenchmarkOptions['onProgress']>; end(): void } {
  const tty = process.stderr.isTTY === true
  const width = 30
  let lastPlain = -1
  const total = opts.duration ?? opts.numRequests ?? 1000
  return {
    onProgress(p) {
      if (p.warmup) {
        if (tty) process.stderr.write('\r\x1b[2Kwarming up…')
        return
      }
      const frac = Math.min(1, opts.duration !== undefined ? p.elapsed / total : p.done / total)
      const rate = p.elapsed > 0 ? p.done / p.elapsed : 0
      const text = `${p.done} req, ${p.errors} err, ${rate.toFixed(0)} req/s, ${p.elapsed.toFixed(1)}s`
      if (tty) {
        const fill = Math.round(frac * width)
        process.stderr.write(`\r\x1b[2K[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${text}`)
      } else if (Math.floor(p.elapsed) > lastPlain) {
        // One plain line a second keeps logs readable.
        lastPlain = Math.floor(p.elapsed)
        process.stderr.write(`progress: ${(frac * 100).toFixed(0)}% ${text}\n`)
      }
    },
    end() {
      if (tty) process.stderr.write('\r\x1b[2K')
    },
  }
}

async function bench(argv: string[]): Promise<number> {
  const { help, url, opts, json, maxErrorRate } = parseBenchArgs(argv)
  if (help) {
    console.log(USAGE)
    return 0
  }
  const parsed = new URL(url)
  const route = parsed.pathname + parsed.search
  const progress = progressReporter(opts)
  let results: BenchmarkResults
  try {
    results = await benchmarkRoute({ ...opts, baseUrl: `${parsed.protocol}//${parsed.host}`, route, onProgress: progress.onProgress })
  } catch (e) {
    progress.end()
    if (e instanceof BenchmarkError) {
      if (json && e.results) console.log(JSON.stringify({ ...e.results, error: e.message }, null, 2))
      console.error(`httpy bench: ${e.message}`)
      return 1
    }
    throw e
  }
  progress.end()
  if (json) console.log(JSON.stringify(results, null, 2))
  else console.log(formatSummary(results))
  const rate = results.totalRequests > 0 ? results.errors / results.totalRequests : 0
  if (rate > maxErrorRate) {
    console.error(`httpy bench: error rate ${(rate * 100).toFixed(2)}% is above --max-error-rate ${(maxErrorRate * 100).toFixed(2)}%`)
    return 1
  }
  return 0
}

async function serveModule(argv: string[]): Promise<number> {
  // Loaded on use: `bench` needs none of the server.
  const { serveCommand, ServeUsageError, SERVE_USAGE } = await import('./serve-module.js')
  if (argv[0] === '-h' || argv[0] === '--help') {
    console.log(SERVE_USAGE)
    return 0
  }
  try {
    return await serveCommand(argv)
  } catch (e) {
    if (e instanceof ServeUsageError) {
      console.error(`httpy serve: ${e.message}\n\n${SERVE_USAGE}`)
      return 2
    }
    throw e
  }
}

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  try {
    if (cmd === 'bench') return await bench(rest)
    if (cmd === 'serve') return await serveModule(rest)
    if (cmd === undefined || cmd === '-h' || cmd === '--help' || cmd === 'help') {
      console.log(USAGE)
      return cmd === undefined ? 2 : 0
    }
    throw new UsageError(`unknown command ${JSON.stringify(cmd)}`)
  } catch (e) {
    if (e instanceof UsageError || (e instanceof TypeError && 'code' in e)) {
      console.error(`httpy: ${e.message}\n\n${USAGE}`)
      return 2
    }
    console.error('httpy:', e)
    return 1
  }
}

function invokedDirectly(): boolean {
  // Through npm's bin link argv[1] is a symlink to this file.
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (invokedDirectly()) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code
  })
}
