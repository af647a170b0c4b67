/**
 * A real `redis-server` for the pub/sub tests: started on 127.0.0.1 on a
 * given port, stopped by its pid (SIGKILL for the fault tests, so it goes
 * away as a crash would), and `redis-cli` to inspect it. Persistence is off
 * unless `aof` names a directory: then every write is in the append-only
 * file before Redis answers it (`appendfsync always`), and a Redis started
 * again on that directory has everything it acknowledged. With `tls`, Redis
 * speaks TLS only (`--port 0 --tls-port <port>`, clients need no
 * certificate), `url` is `rediss://…` and `redis-cli` trusts the given CA.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { waitFor } from './proc.js'

export interface RedisServer {
  port: number
  url: string
  pid: number
  /** Kills it (SIGKILL) and waits for the exit. */
  kill: () => Promise<void>
  /** Runs `redis-cli` against it; the reply's lines. */
  cli: (...args: string[]) => string[]
}

export interface RedisOptions {
  /** A directory for the append-only file (persistence on). */
  aof?: string
  /** More `--name value` settings. */
  extra?: string[]
  /** TLS only: the server's certificate chain and key, and the CA `redis-cli` trusts. */
  tls?: { cert: string; key: string; ca: string }
}

export async function startRedis(port: number, opts: RedisOptions = {}): Promise<RedisServer> {
  const persistence = opts.aof === undefined
    ? ['--appendonly', 'no']
    : ['--dir', opts.aof, '--appendonly', 'yes', '--appendfsync', 'always']
  const { tls } = opts
  const listen = tls === undefined
    ? ['--port', String(port)]
    : ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key,
        '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', 'no']
  const child: ChildProcess = spawn(
    'redis-server',
    [...listen, '--bind', '127.0.0.1', '--save', '', ...persistence, '--protected-mode', 'no', ...(opts.extra ?? [])],
    { stdio: 'ignore' },
  )
  const exited = new Promise<void>((r) => child.on('exit', () => r()))
  const cliTls = tls === undefined ? [] : ['--tls', '--cacert', tls.ca]
  const cli = (...args: string[]): string[] => {
    const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...cliTls, ...args], { encoding: 'utf8', timeout: 10_000 })
    return r.stdout.split('\n').filter((l) => l !== '')
  }
  const up = await waitFor(() => cli('PING')[0] === 'PONG', 10_000, 50)
  if (!up || child.pid === undefined) {
    child.kill('SIGKILL')
    throw new Error(`redis-server did not start on port ${port}`)
  }
  return {
    port,
    url: `${tls === undefined ? 'redis' : 'rediss'}://127.0.0.1:${port}/0`,
    pid: child.pid,
    cli,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}
