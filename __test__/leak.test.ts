/**
 * Leak check of the native addon: a server runs under valgrind's memcheck
 * in its own node process, serves a few hundred requests of every kind
 * (HTTP/1.1 with bodies, errors and 413, HTTP/2 streams, WebSocket echo
 * and a client that vanishes), closes, and exits. memcheck must report no
 * invalid read or write and nothing definitely lost (one allocation made
 * once at module load by napi-rs is suppressed, see valgrind.supp).
 *
 * The fixture runs the built package (dist/, which the global setup builds
 * before any file runs); valgrind is an external tool (see helpers/tools.ts). Under
 * valgrind node runs about thirty times slower: the check takes about a
 * minute.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import http2 from 'node:http2'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { requireTool } from './helpers/tools.js'

const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url))

describe.skipIf(!requireTool('valgrind'))('leak check (valgrind memcheck)', () => {
  it('a few hundred mixed requests: no invalid access, nothing definitely lost', async () => {
    expect(existsSync(dist), 'dist/index.js (built by the global setup)').toBe(true)
    const child = spawn(
      'valgrind',
      [
        '--leak-check=full',
        '--show-leak-kinds=definite',
        '--errors-for-leak-kinds=definite',
        '--error-exitcode=99',
        `--suppressions=${fileURLToPath(new URL('./valgrind.supp', import.meta.url))}`,
        process.execPath,
        fileURLToPath(new URL('./fixtures/leak-app.mjs', import.meta.url)),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let out = ''
    let report = ''
    child.stdout.on('data', (c: Buffer) => (out += c))
    child.stderr.on('data', (c: Buffer) => (report += c))
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
    const killer = setTimeout(() => child.kill('SIGKILL'), 150_000)
    try {
      const start = Date.now()
      while (!out.includes('"listening"') && Date.now() - start < 90_000 && child.exitCode === null) {
        await new Promise((r) => setTimeout(r, 200))
      }
      const port = Number(/"port":(\d+)/.exec(out)?.[1])
      expect(port, `not listening\n${report.slice(-2000)}`).toBeGreaterThan(0)
      const base = `http://127.0.0.1:${port}`

      const statuses: number[] = []
      const get = async (path: string, init?: RequestInit) => {
        const r = await fetch(`${base}${path}`, init)
        await r.arrayBuffer()
        statuses.push(r.status)
      }
      for (let i = 0; i < 40; i++) {
        await get('/ok')
        await get(`/json/${i}`)
        await get('/missing')
        await get('/throw')
        await get('/echo', { method: 'POST', body: 'x'.repeat(1000 * i) })
      }
      await get('/echo', { method: 'POST', body: 'x'.repeat(100_000) })
      const session = http2.connect(base)
      await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          new Promise<void>((resolve, reject) => {
            const req = session.request({ ':path': i % 2 ? '/ok' : '/missing' })
            req.on('response', (h) => statuses.push(Number(h[':status'])))
            req.on('error', reject)
            req.resume()
            req.on('close', () => resolve())
          }),
        ),
      )
      await new Promise<void>((r) => session.close(() => r()))
      let echoed = 0
      for (let i = 0; i < 10; i++) {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
        await new Promise((r, j) => ws.once('open', r).once('error', j))
        ws.send('hi')
        if ((await new Promise((r) => ws.once('message', r)))?.toString() === 'hi') echoed++
        if (i % 2) ws.terminate()
        else {
          const closed = new Promise((r) => ws.once('close', r))
          ws.close()
          await closed
        }
      }
      const count = (s: number) => statuses.filter((x) => x === s).length
      expect([count(200), count(404), count(500), count(413), echoed]).toEqual([140, 60, 40, 1, 10])

      child.kill('SIGTERM')
      const code = await exited
      const summary = /ERROR SUMMARY: (\d+) errors/.exec(report)
      console.log(`leak check: ${statuses.length} requests, ${echoed} WebSocket echoes, ${Math.round((Date.now() - start) / 1000)} s under valgrind;`,
        report.split('\n').filter((l) => /definitely lost:|ERROR SUMMARY/.test(l)).map((l) => l.replace(/^==\d+==\s*/, '')).join('; '))
      expect(out, 'the app closed its server').toContain('"closed"')
      expect(report).not.toMatch(/Invalid (read|write|free)|uninitialised|Mismatched free/)
      expect(summary?.[1], report.slice(-6000)).toBe('0')
      expect(code, report.slice(-6000)).toBe(0)
    } finally {
      clearTimeout(killer)
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  }, 180_000)
})
