/**
 * Rolling restart of `run({ workers })`: SIGUSR2 to the primary replaces
 * every worker with a fresh process, each new one listening before the old
 * one drains, while client loops keep requesting. Counts every request and
 * every failure; none may fail.
 */
import http from 'node:http'
import { describe, expect, it } from 'vitest'
import { alive, startApp, waitFor } from './helpers/proc.js'

interface LoadCounts {
  ok: number
  failed: number
  /**
   * GETs sent again because the server closed a reused keep-alive
   * connection before answering (RFC 9112 §9.3.1 lets clients retry
   * idempotent requests then; browsers and most HTTP clients do, and
   * Node's docs show it with `req.reusedSocket`). A request on a fresh
   * connection is never retried: it counts as failed.
   */
  retried: number
  errors: string[]
  pids: Map<number, number>
}

/**
 * `loops` concurrent clients, each sending GET /pid one after another over
 * its own kept-alive connection (new connection when the server closes it),
 * until `stop()` is called.
 */
function load(port: number, loops: number): { counts: LoadCounts; stop: () => Promise<void> } {
  const counts: LoadCounts = { ok: 0, failed: 0, retried: 0, errors: [], pids: new Map() }
  let running = true
  const one = (agent: http.Agent, retry = true): Promise<void> =>
    new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/pid', agent }, (res) => {
        let body = ''
        res.on('data', (c: Buffer) => (body += c.toString()))
        res.on('end', () => {
          if (res.statusCode === 200) {
            counts.ok++
            const pid = Number(body)
            counts.pids.set(pid, (counts.pids.get(pid) ?? 0) + 1)
          } else {
            counts.failed++
            counts.errors.push(`status ${res.statusCode}`)
          }
          resolve()
        })
        res.on('error', (e) => {
          counts.failed++
          counts.errors.push(e.message)
          resolve()
        })
      })
      req.setTimeout(5000, () => req.destroy(new Error('timeout')))
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (retry && req.reusedSocket && (e.code === 'ECONNRESET' || e.message === 'socket hang up')) {
          counts.retried++
          void one(agent, false).then(resolve)
          return
        }
        counts.failed++
        counts.errors.push(e.message)
        resolve()
      })
    })
  const done = Array.from({ length: loops }, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    while (running) await one(agent)
    agent.destroy()
  })
  return {
    counts,
    stop: async () => {
      running = false
      await Promise.all(done)
    },
  }
}

describe.skipIf(process.platform === 'win32')('rolling restart of workers', () => {
  it('SIGUSR2: new workers listen before the old ones drain, and no request fails under load', async () => {
    const app = await startApp('prod-app.ts', {
      HTTPY_TEST_OPTS: JSON.stringify({ host: '127.0.0.1', port: 0, workers: 2, shutdownTimeout: 5 }),
    })
    try {
      const before = new Set(app.workers)
      expect(before.size).toBe(2)
      const { counts, stop } = load(app.port, 4)
      await waitFor(() => counts.ok > 200)
      process.kill(app.pid, 'SIGUSR2')
      const done = await waitFor(() => /rolling restart done/.test(app.stderr()), 20_000)
      expect(done, app.stderr()).toBe(true)
      const okAtReload = counts.ok
      await waitFor(() => counts.ok > okAtReload + 200)
      await stop()
      const after = /rolling restart done, workers (\d+), (\d+)/.exec(app.stderr())
      const fresh = new Set([Number(after?.[1]), Number(after?.[2])])
      // The counts, for the report: requests served, failures, by worker.
      console.log(
        `rolling restart under load: ${counts.ok} ok, ${counts.failed} failed, ${counts.retried} retried on a reused connection; by pid ${JSON.stringify([...counts.pids])}; old ${[...before].join(',')} new ${[...fresh].join(',')}`,
      )
      expect(counts.errors).toEqual([])
      expect(counts.failed).toBe(0)
      for (const pid of fresh) expect(before.has(pid)).toBe(false)
      // Both generations served (with four kept-alive connections, the
      // kernel may hand all the new ones to one new worker), and the old
      // workers are gone.
      expect([...before].some((p) => (counts.pids.get(p) ?? 0) > 0)).toBe(true)
      expect([...fresh].some((p) => (counts.pids.get(p) ?? 0) > 0)).toBe(true)
      expect(await waitFor(() => [...before].every((p) => !alive(p)), 10_000)).toBe(true)
    } finally {
      app.child.kill('SIGTERM')
      await app.exited
    }
  })
})
