/**
 * What `run()` prints: one line with the URL it listens on (once, from the
 * primary, with workers), nothing with `quiet: true`; and a handler that
 * throws shows up on stderr with no configuration at all.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { fixture } from './helpers/proc.js'

interface Started {
  child: ChildProcess
  port: number
  out: () => string
  err: () => string
}

const children: ChildProcess[] = []
afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once('exit', r))
      c.kill('SIGTERM')
      await gone
    }
  }
})

function start(env: Record<string, string>): Promise<Started> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture('listen-line.ts')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  let out = ''
  let err = ''
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line:\n${out}\n${err}`)), 20_000)
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /^ready (\d+)$/m.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({ child, port: Number(m[1]), out: () => out, err: () => err })
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`exited with ${code}:\n${out}\n${err}`))
    })
  })
}

describe('run() output', () => {
  it('prints one line with the URL; a throwing handler is logged to stderr', async () => {
    const s = await start({})
    const lines = s.out().trim().split('\n')
    expect(lines).toEqual([`httpy listening on http://127.0.0.1:${s.port}`, `ready ${s.port}`])
    const r = await fetch(`http://127.0.0.1:${s.port}/boom`)
    expect([r.status, await r.text()]).toEqual([500, 'Internal Server Error'])
    await new Promise((r) => setTimeout(r, 100))
    expect(s.err()).toContain('GET /boom')
    expect(s.err()).toContain('boom-from-handler')
    expect(s.err()).toMatch(/\n\s+at /)
  })

  it('prints nothing with quiet: true', async () => {
    const s = await start({ QUIET: '1' })
    expect(s.out().trim()).toBe(`ready ${s.port}`)
  })

  it('with workers, prints the line once, from the primary', async () => {
    const s = await start({ WORKERS: '2' })
    expect((await fetch(`http://127.0.0.1:${s.port}/ok`)).status).toBe(200)
    await new Promise((r) => setTimeout(r, 200))
    const lines = s.out().trim().split('\n')
    expect(lines.filter((l) => l.includes('listening'))).toEqual([`httpy listening on http://127.0.0.1:${s.port} (2 workers)`])
  }, 30_000)
})
