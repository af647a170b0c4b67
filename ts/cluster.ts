/**
 * Serving from several processes. `run({ workers: N })` in the primary
 * process forks N copies of the program with `node:cluster`; each copy runs
 * the same script, reaches the same `run()` call and, being a worker,
 * listens itself with SO_REUSEPORT, so the kernel spreads connections
 * between them without passing sockets through the primary. The primary
 * only supervises: it restarts a worker that dies (with back-off), refuses
 * to loop on a worker that cannot start, and drains every worker on
 * SIGTERM/SIGINT. With `tls`, SIGHUP reloads the certificates (in the
 * primary: in every worker). SIGUSR2 (or `reload()`) replaces the workers
 * one by one with fresh copies of the program: each new worker listens
 * before its predecessor drains, so the port never goes unserved.
 */
import cluster, { type Worker } from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HttpyTypeError } from './errors.js'
import { PUBSUB_DIR_ENV, WORKER_PORT_ENV, type ResolvedOptions } from './options.js'
import type { Server } from './server.js'
import type { TlsOptions } from './tls.js'

type WorkerMessage =
  | { httpy: 'listening'; port: number; address: string }
  | { httpy: 'error'; code: string; message: string }
  | { httpy: 'shutdown' }
  | { httpy: 'reload-tls' }

function isMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && typeof (m as { httpy?: unknown }).httpy === 'string'
}

/** Back-off before restarting a worker that died: doubles per quick crash, capped. */
const RESTART_MIN_MS = 100
const RESTART_MAX_MS = 10_000
/** A worker that lived this long is healthy again: its next crash restarts at once-ish. */
const STABLE_MS = 30_000

interface Slot {
  id: number
  worker: Worker | undefined
  listening: boolean
  crashes: number
  startedAt: number
  restart: NodeJS.Timeout | undefined
}

/**
 * The primary of a multi-process server: what `run({ workers })` resolves
 * to in the primary process, with the same `port`, `url`, `close()` and
 * `closed` as a `Server`.
 */
export class Supervisor {
  readonly kind = 'supervisor' as const
  #port = 0
  #address = ''
  readonly #slots: Slot[]
  readonly #opts: ResolvedOptions
  #stopping = false
  /** Workers being replaced by `reload()`: their exit is expected. */
  readonly #retired = new Set<Worker>()
  #reloading: Promise<boolean> | undefined
  readonly closed: Promise<void>
  #resolveClosed!: () => void
  /**
   * Where the workers' pub/sub sockets live: each worker listens on one
   * there and links to the others, so a publish in any worker reaches the
   * subscribers of all of them (docs/scaling.md). On Linux `@<prefix>`:
   * abstract sockets, which have no file and leave nothing behind however
   * the processes end; elsewhere a directory, removed once all exited.
   */
  readonly #pubsubDir: string

  /** @internal */
  constructor(count: number, opts: ResolvedOptions) {
    this.#opts = opts
    this.#pubsubDir =
      // The workers find each other in /proc/net/unix: without it (no /proc
      // mounted), the directory.
      process.platform === 'linux' && existsSync('/proc/net/unix')
        ? `@httpy-pubsub-${process.pid}-${randomBytes(4).toString('hex')}`
        : mkdtempSync(join(tmpdir(), 'httpy-pubsub-'))
    this.#slots = Array.from({ length: count }, (_, i) => ({
      id: i + 1,
      worker: undefined,
      listening: false,
      crashes: 0,
      startedAt: 0,
      restart: undefined,
    }))
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    void this.closed.then(() => this.#removePubsubDir())
  }

  /** The port every worker listens on. */
  get port(): number {
    return this.#port
  }

  get address(): string {
    return this.#address
  }

  get url(): string {
    const a = this.#address.includes(':') ? `[${this.#address}]` : this.#address
    return `${this.#opts.native.tls ? 'https' : 'http'}://${a}:${this.#port}`
  }

  /** Process ids of the live workers. */
  get workers(): number[] {
    return this.#slots.flatMap((s) => (s.worker?.process.pid !== undefined ? [s.worker.process.pid] : []))
  }

  /** @internal Starts the first worker (which picks the port), then the rest. */
  async _start(): Promise<void> {
    const [first, ...rest] = this.#slots
    await this.#spawn(first as Slot)
    await Promise.all(rest.map((s) => this.#spawn(s)))
  }

  /**
   * Starts a worker in `slot`; resolves true once it listens. A worker that
   * exits before listening ends the primary (`#abort`), unless
   * `onFailedStart` is given: then it is reported there and the promise
   * resolves false.
   */
  #spawn(slot: Slot, onFailedStart?: (message: string) => void): Promise<boolean> {
    return new Promise((resolve) => {
      const env: Record<string, string> = { HTTPY_WORKER_ID: String(slot.id), [PUBSUB_DIR_ENV]: this.#pubsubDir }
      if (this.#port !== 0) env[WORKER_PORT_ENV] = String(this.#port)
      const worker = cluster.fork(env)
      slot.worker = worker
      slot.listening = false
      slot.startedAt = Date.now()
      let failure: string | undefined
      worker.on('message', (m: unknown) => {
        if (!isMessage(m)) return
        if (m.httpy === 'listening') {
          slot.listening = true
          if (this.#port === 0) {
            this.#port = m.port
            this.#address = m.address
          }
          resolve(true)
        } else if (m.httpy === 'error') {
          failure = `${m.code}: ${m.message}`
        }
      })
      let listened = false
      worker.on('message', (m: unknown) => {
        if (isMessage(m) && m.httpy === 'listening') listened = true
      })
      worker.on('exit', (code, signal) => {
        if (slot.worker === worker) slot.worker = undefined
        if (this.#stopping) {
          if (this.workers.length === 0) this.#resolveClosed()
          return
        }
        if (this.#retired.delete(worker)) return
        const how = signal ? `signal ${signal}` : `code ${code}`
        if (!listened) {
          const message = `httpy: worker ${slot.id} (pid ${worker.process.pid}) failed to start: ${failure ?? `exited with ${how}`}`
          if (onFailedStart) {
            onFailedStart(message)
            resolve(false)
            return
          }
          // A worker that cannot even start would fail the same way again:
          // report it and stop, rather than restart it forever.
          this.#abort(message)
          return
        }
        if (Date.now() - slot.startedAt >= STABLE_MS) slot.crashes = 0
        const wait = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** slot.crashes)
        slot.crashes++
        console.error(`httpy: worker ${slot.id} (pid ${worker.process.pid}) exited with ${how}; restarting in ${wait} ms`)
        slot.restart = setTimeout(() => {
          slot.restart = undefined
          if (!this.#stopping) void this.#spawn(slot)
        }, wait)
      })
    })
  }

  /** Removes the sockets' directory (abstract sockets need nothing). */
  #removePubsubDir(): void {
    if (!this.#pubsubDir.startsWith('@')) rmSync(this.#pubsubDir, { recursive: true, force: true })
  }

  #abort(message: string): never {
    console.error(message)
    this.#removePubsubDir()
    this.#stopping = true
    for (const s of this.#slots) s.worker?.process.kill('SIGKILL')
    process.exit(1)
  }

  /**
   * Rolling restart (what SIGUSR2 does): for each worker in turn, starts a
   * fresh copy of the program, waits until it listens, then drains the old
   * one (in-flight requests finish, HTTP/1.1 responses carry `Connection:
   * close`, HTTP/2 gets GOAWAY, WebSockets close with 1001). If a new
   * worker fails to start, the reload stops there, the old workers keep
   * serving, and the promise resolves false. Resolves true when every
   * worker has been replaced.
   */
  reload(): Promise<boolean> {
    this.#reloading ??= this.#rollAll().finally(() => {
      this.#reloading = undefined
    })
    return this.#reloading
  }

  async #rollAll(): Promise<boolean> {
    for (const slot of this.#slots) {
      if (this.#stopping) return false
      // A worker waiting to be restarted after a crash is started by the reload instead.
      if (slot.restart) clearTimeout(slot.restart)
      slot.restart = undefined
      const old = slot.worker
      if (old) this.#retired.add(old)
      let failed = ''
      const ok = await this.#spawn(slot, (message) => (failed = message))
      if (!ok) {
        if (old) this.#retired.delete(old)
        slot.worker = old
        console.error(`${failed}; reload stopped, the previous workers keep serving`)
        return false
      }
      if (old && old.isConnected()) {
        try {
          old.send({ httpy: 'shutdown' } satisfies WorkerMessage)
        } catch {
          old.process.kill('SIGTERM')
        }
        const limit = (this.#opts.shutdownDelay + this.#opts.shutdownTimeout) * 1000 + 2000
        setTimeout(() => old.process.kill('SIGKILL'), limit).unref()
      }
    }
    return true
  }

  /**
   * Makes every worker read its `tls` files again (what SIGHUP does); each
   * reports a failure on stderr and keeps its current certificates.
   */
  reloadTls(): void {
    for (const s of this.#slots) {
      try {
        s.worker?.send({ httpy: 'reload-tls' } satisfies WorkerMessage)
      } catch {
        // A worker exiting meanwhile is restarted with the files as they are now.
      }
    }
  }

  /**
   * Drains every worker (each closes gracefully within `shutdownTimeout`)
   * and resolves once all have exited; stragglers are killed.
   */
  close(): Promise<void> {
    if (this.#stopping) return this.closed
    this.#stopping = true
    for (const s of this.#slots) {
      if (s.restart) clearTimeout(s.restart)
      s.restart = undefined
    }
    const live = this.#slots.flatMap((s) => (s.worker ? [s.worker] : []))
    if (live.length === 0) {
      this.#resolveClosed()
      return this.closed
    }
    for (const w of live) {
      try {
        w.send({ httpy: 'shutdown' } satisfies WorkerMessage)
      } catch {
        w.process.kill('SIGTERM')
      }
    }
    const limit = (this.#opts.shutdownDelay + this.#opts.shutdownTimeout) * 1000 + 2000
    const killer = setTimeout(() => {
      for (const s of this.#slots) s.worker?.process.kill('SIGKILL')
    }, limit)
    killer.unref()
    void this.closed.then(() => clearTimeout(killer))
    return this.closed
  }
}

/**
 * Closes `server` on SIGINT/SIGTERM (and, in a supervised worker, on the
 * primary's request), then exits; exits anyway once the shutdown has had
 * `shutdownDelay + shutdownTimeout` seconds.
 */
function exitOnSignals(server: Server, opts: ResolvedOptions, supervised: boolean): void {
  let begun = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (begun) return
    begun = true
    if (!supervised) {
      // Standalone: a second signal while draining kills the process the default way.
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    }
    const code = signal === 'SIGINT' ? 130 : 0
    setTimeout(() => process.exit(code), (opts.shutdownDelay + opts.shutdownTimeout) * 1000 + 1000).unref()
    void server.close().then(() => {
      process.exitCode = code
      process.exit()
    })
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const tls = opts.tls
  const onReload = (): void => {
    if (tls !== undefined && !begun) reloadTls(server, tls)
  }
  if (tls !== undefined) process.on('SIGHUP', onReload)
  const onMessage = (m: unknown): void => {
    if (isMessage(m) && m.httpy === 'shutdown') onSignal('SIGTERM')
    if (isMessage(m) && m.httpy === 'reload-tls') onReload()
  }
  if (supervised) process.on('message', onMessage)
  void server.closed.then(() => {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.off('SIGHUP', onReload)
    process.off('message', onMessage)
  })
}

/** SIGHUP: the `tls` option read again; a failure keeps the current certificates. */
function reloadTls(server: Server, tls: TlsOptions): void {
  try {
    server.setTls(tls)
    console.error(`httpy: pid ${process.pid}: TLS certificates reloaded`)
  } catch (e) {
    console.error(`httpy: pid ${process.pid}: TLS reload failed, the current certificates stay in use: ${(e as Error).message}`)
  }
}

/**
 * `run()` with options already resolved: in the primary process with
 * `workers`, a supervisor of that many workers; otherwise `listen()`'s
 * server, closed on signals (and, in a worker, reporting to the primary).
 */
export async function serve(resolved: ResolvedOptions, listen: () => Promise<Server>): Promise<Server | Supervisor> {
  if (resolved.workers !== undefined && cluster.isPrimary) {
    const sup = new Supervisor(resolved.workers, resolved)
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      void sup.close().then(() => process.exit(signal === 'SIGINT' ? 130 : 0))
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    if (resolved.tls !== undefined) process.on('SIGHUP', () => sup.reloadTls())
    process.on('SIGUSR2', () => {
      void sup.reload().then((ok) => {
        if (ok) console.error(`httpy: rolling restart done, workers ${sup.workers.join(', ')}`)
      })
    })
    await sup._start()
    if (!resolved.quiet) console.log(`httpy listening on ${sup.url} (${resolved.workers} workers)`)
    return sup
  }
  const supervised = resolved.workers !== undefined && cluster.isWorker
  let server: Server
  try {
    server = await listen()
  } catch (e) {
    if (supervised && process.send) {
      const err = e as { code?: unknown; message?: unknown }
      process.send({ httpy: 'error', code: String(err.code ?? 'ERR_HTTPY_LISTEN'), message: String(err.message ?? e) })
    }
    throw e
  }
  if (supervised && process.send) {
    process.send({ httpy: 'listening', port: server.port, address: server.address } satisfies WorkerMessage)
  } else if (!resolved.quiet) {
    const h3 = server.http3Port
    console.log(`httpy listening on ${server.url}${h3 === undefined ? '' : ` (HTTP/3 on udp ${h3})`}`)
  }
  exitOnSignals(server, resolved, supervised)
  return server
}

/** @internal `app.listen()` starts one server; only `run()` forks workers. */
export function refuseWorkersInListen(workers: number | undefined): void {
  if (workers !== undefined && cluster.isPrimary) {
    throw new HttpyTypeError(
      'ERR_HTTPY_INVALID_OPTION',
      'option "workers" is handled by run(), which forks and supervises the workers; app.listen() serves from this process only',
    )
  }
}

