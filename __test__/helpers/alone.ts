/**
 * Two test files run at a time (vitest.config.ts), except the files named in
 * ALONE, which run with nothing beside them. The rule is kept by a lock
 * file that the global setup creates for the run: every file takes it in
 * `__test__/setup-alone.ts` before its first test, shared for an ordinary
 * file and exclusive for a file in ALONE, and gives it back after its last
 * hook. The lock is flock(1) (util-linux) held by a child process that
 * exits when its stdin closes, so a worker that dies releases it too.
 *
 * A file belongs in ALONE when it measures time or resources that a
 * neighbour would disturb, or when it keeps both cores busy by itself.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { basename } from 'node:path'

/** The variable naming the run's lock file (set by the global setup). */
export const LOCK_ENV = 'HTTPY_TEST_LOCK'

export const ALONE: Record<string, string> = {
  // Both cores: kosoku runs 4 cases at a time against the echo server.
  'websocket-autobahn.test.ts': 'keeps both cores busy',
  // RSS and descriptor counts over many connections, with time limits.
  'soak.test.ts': 'measures memory over a long load',
  'soak-h3.test.ts': 'measures memory over a long load',
  // Rates and CPU per request.
  'benchmark.test.ts': 'measures throughput',
  'benchmark-tls.test.ts': 'measures throughput',
  'benchmark-websocket.test.ts': 'measures throughput',
  'bench-pairs.test.ts': 'measures throughput',
  'bench-ws-close.test.ts': 'measures throughput',
}

export function isAlone(file: string): boolean {
  return Object.hasOwn(ALONE, basename(file))
}

/**
 * Waits for the lock (exclusive when `file` is in ALONE) and returns the
 * function that releases it; a no-op when no lock file is set (a file run
 * outside vitest's global setup).
 */
export async function takeTurn(file: string, lock = process.env[LOCK_ENV]): Promise<() => Promise<void>> {
  if (!lock) return async () => {}
  const holder: ChildProcess = spawn('flock', [isAlone(file) ? '-x' : '-s', lock, '-c', 'echo held; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  await new Promise<void>((resolve, reject) => {
    holder.once('error', reject)
    holder.once('exit', (code) => reject(new Error(`flock exited ${code} before taking ${lock}`)))
    holder.stdout?.once('data', () => resolve())
  })
  holder.removeAllListeners('exit')
  return async () => {
    const gone = new Promise((r) => holder.once('exit', r))
    holder.stdin?.end()
    await gone
  }
}
