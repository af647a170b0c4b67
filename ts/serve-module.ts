/**
 * `httpy serve <module>`: serves a module written for Bun, Deno or Workers
 * (`export default { fetch }`, or a default export that is a Hono app or a
 * function), with server options from the module's default export
 * (`port`, `hostname`/`host`, any `run()` option) and from the command line
 * (which wins). TypeScript modules load through `tsx` when it is installed.
 */
import cluster from 'node:cluster'
import { extname, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { args, numberArg } from './argv.js'
import { HttpyTypeError } from './errors.js'
import type { FetchHandler } from './fetch.js'
import type { ServerOptions } from './options.js'
import { serve } from './serve.js'

export const SERVE_USAGE = `Usage: httpy serve <module> [options]

  Serves the module's fetch handler: export default { fetch } (options such as
  port and hostname may sit beside it), a default export with a .fetch (a Hono
  app), a default function, or a named export fetch.
  TypeScript modules (.ts, .mts, .cts) need tsx installed beside the app.

  -p, --port PORT          TCP port (default: the module's, else 8080)
      --host HOST          interface to bind (default: the module's, else 127.0.0.1)
  -w, --workers N          worker processes sharing the port
      --tls-cert FILE      PEM certificate chain (with --tls-key): HTTPS, HTTP/2
      --tls-key FILE       PEM private key
      --self-signed        HTTPS with a generated development certificate
      --http3-port PORT    also serve HTTP/3 on this UDP port (needs TLS)
      --compression        native gzip/br/zstd of responses
      --metrics            Prometheus metrics at /metrics`

/** Thrown for bad command lines (the CLI prints the usage with it). */
export class ServeUsageError extends Error {}

interface ServeArgs {
  file: string
  overrides: ServerOptions
}

function intArg(flag: string, v: string | undefined): number {
  const n = numberArg(flag, v, 'whole')
  if (typeof n === 'string') throw new ServeUsageError(n)
  return n
}

/** Parses `serve` arguments (without the `serve` word). Exported for tests. */
export function parseServeArgs(argv: string[]): ServeArgs {
  let file: string | undefined
  const o: ServerOptions = {}
  let cert: string | undefined
  let key: string | undefined
  for (const { flag, raw: a, value } of args(argv)) {
    switch (flag) {
      case '-p':
      case '--port':
        o.port = intArg(flag, value())
        break
      case '--host':
        o.host = value()
        if (!o.host) throw new ServeUsageError('--host needs an address')
        break
      case '-w':
      case '--workers':
        o.workers = intArg(flag, value())
        break
      case '--tls-cert':
        cert = value()
        break
      case '--tls-key':
        key = value()
        break
      case '--self-signed':
        o.tls = 'self-signed'
        break
      case '--http3-port':
        o.http3Port = intArg(flag, value())
        break
      case '--compression':
        o.compression = true
        break
      case '--metrics':
        o.metrics = true
        break
      default:
        if (a.startsWith('-')) throw new ServeUsageError(`unknown option ${a}`)
        if (file !== undefined) throw new ServeUsageError(`unexpected argument ${JSON.stringify(a)}`)
        file = a
    }
  }
  if (file === undefined) throw new ServeUsageError('missing <module>')
  if ((cert === undefined) !== (key === undefined)) throw new ServeUsageError('--tls-cert and --tls-key go together')
  if (cert !== undefined && key !== undefined) o.tls = { cert, key }
  return { file, overrides: o }
}

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.tsx'])

async function load(file: string): Promise<Record<string, unknown>> {
  const path = resolve(file)
  const url = pathToFileURL(path).href
  if (!TS_EXTENSIONS.has(extname(path))) return (await import(url)) as Record<string, unknown>
  // A variable specifier: tsx is optional, found beside the app when installed.
  const tsxApi = 'tsx/esm/api'
  let tsImport: ((specifier: string, parent: string) => Promise<unknown>) | undefined
  try {
    tsImport = ((await import(tsxApi)) as { tsImport?: typeof tsImport }).tsImport
  } catch {
    tsImport = undefined
  }
  if (tsImport) return (await tsImport(url, import.meta.url)) as Record<string, unknown>
  try {
    // Works when a TypeScript loader is already active (node --import tsx).
    return (await import(url)) as Record<string, unknown>
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_UNKNOWN_FILE_EXTENSION') {
      throw new ServeUsageError(`${file} is TypeScript: install tsx beside the app (npm i -D tsx), or serve a .js/.mjs build of it`)
    }
    throw e
  }
}

/** The fetch handler and the server options a module exports. */
export function fromModule(mod: Record<string, unknown>, file: string): { fetch: FetchHandler; options: ServerOptions } {
  let def = mod.default as unknown
  // A CommonJS module loaded by import(): its exports are the default.
  if (def !== null && typeof def === 'object' && 'default' in def && typeof (def as { fetch?: unknown }).fetch !== 'function') {
    def = (def as { default: unknown }).default
  }
  let fetch: unknown
  let options: ServerOptions = {}
  if (typeof def === 'function' && typeof (def as { fetch?: unknown }).fetch !== 'function') {
    fetch = def
  } else if (def !== null && typeof def === 'object' && typeof (def as { fetch?: unknown }).fetch === 'function') {
    const { fetch: f, hostname, ...rest } = def as { fetch: FetchHandler; hostname?: unknown } & Record<string, unknown>
    // Bound: a Hono app's fetch reads `this`.
    fetch = f.bind(def)
    // Bun's `hostname` is HTTPy's `host`; the rest passes as run() options,
    // except what a framework object carries that is not an option.
    if (isPlainObject(def)) options = { ...(rest as ServerOptions), ...(typeof hostname === 'string' ? { host: hostname } : {}) }
  } else if (typeof mod.fetch === 'function') {
    fetch = mod.fetch
  }
  if (typeof fetch !== 'function') {
    throw new HttpyTypeError(
      'ERR_HTTPY_INVALID_OPTION',
      `${file} exports no fetch handler: export default { fetch(request) { … } }, a Hono app as default, or a function named fetch`,
    )
  }
  return { fetch: fetch as FetchHandler, options }
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown
  return proto === Object.prototype || proto === null
}

/** Runs `httpy serve`: resolves once the server listens; it then runs until a signal closes it. */
export async function serveCommand(argv: string[]): Promise<number> {
  const { file, overrides } = parseServeArgs(argv)
  const { fetch, options } = fromModule(await load(file), file)
  const server = await serve({ ...options, ...overrides, fetch })
  // With workers, the primary speaks for them.
  if (!cluster.isWorker) console.log(`httpy: ${file} listening on ${server.url}`)
  return 0
}
