import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { profileRoute } from '../ts/profile.js'
import { listen } from './helpers/index.js'

const CLI = join(__dirname, '..', 'ts', 'cli.ts')

/** Runs the CLI in its own process, as a user would (tsx compiles the TS). */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

describe('httpy bench', () => {
  let server: Server
  let hits = 0
  let lastBody = ''
  let lastHeader: string | null | undefined
  beforeAll(async () => {
    const app = new App()
    app.get('/hello', () => {
      hits++
      return Response.text('hello')
    })
    app.get('/fail', () => Response.text('no', 503))
    app.put('/upload', async (req) => {
      lastBody = await req.text()
      lastHeader = req.headers.get('x-bench')
      return Response.text('stored')
    })
    server = await listen(app)
  })
  afterAll(() => server.close({ timeout: 0.5 }))

  it('--json prints results that parse and match what the server saw', async () => {
    hits = 0
    const r = await cli(['bench', `${server.url}/hello`, '-n', '400', '-c', '4', '--json'])
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.totalRequests).toBe(400)
    expect(out.statusCounts).toEqual({ 200: 400 })
    expect(out.errors).toBe(0)
    expect(typeof out.requestsPerSecond).toBe('number')
    expect(hits).toBe(400)
  })

  it('prints a summary table and plain progress lines when not on a terminal', async () => {
    const r = await cli(['bench', `${server.url}/hello`, '-d', '1.3', '-c', '2'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/Throughput\s+[\d.]+ req\/s/)
    expect(r.stdout).toMatch(/Latency\s+min [\d.]+ms/)
    expect(r.stdout).toMatch(/Status\s+200: \d+/)
    expect(r.stderr).toMatch(/^progress: \d+% \d+ req/m)
    expect(r.stderr).not.toContain('\r')
  })

  it('sends -m, -H and --body FILE, over HTTP/2 with --http2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'httpy-cli-'))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'body.txt')
    writeFileSync(file, 'payload from a file')
    const r = await cli(['bench', `${server.url}/upload`, '-n', '20', '-m', 'PUT', '-H', 'X-Bench: yes', '--body', file, '--http2', '--json'])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout).protocol).toBe('http2')
    expect(lastBody).toBe('payload from a file')
    expect(lastHeader).toBe('yes')
  })

  it('exits 1 when the error rate is above --max-error-rate', async () => {
    const strict = await cli(['bench', `${server.url}/fail`, '-n', '50', '--json'])
    expect(strict.code).toBe(1)
    expect(JSON.parse(strict.stdout).statusCounts).toEqual({ 503: 50 })
    expect(strict.stderr).toMatch(/error rate 100\.00% is above/)
    const lenient = await cli(['bench', `${server.url}/fail`, '-n', '50', '--max-error-rate', '1'])
    expect(lenient.code).toBe(0)
  })

  it('exits 1 with a clear message when nothing listens', async () => {
    const r = await cli(['bench', 'http://127.0.0.1:9/', '-n', '5'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/no request reached http:\/\/127\.0\.0\.1:9.*refused/i)
  })

  it('exits 2 on bad usage', async () => {
    for (const args of [['bench'], ['bench', server.url, '-c', '0'], ['bench', server.url, '-n', 'many'], ['bench', server.url, '--nope'], ['frobnicate']]) {
      const r = await cli(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr).toMatch(/Usage: httpy bench/)
    }
  })
})

/** Deliberately slow: burns CPU so the profiler must find it. */
function deliberatelySlowChecksum(n: number): number {
  let x = 0
  for (let i = 0; i < n; i++) x = (x * 31 + i) % 1_000_003
  return x
}

describe('profileRoute', () => {
  it('names a deliberately slow function among the top entries and saves the profile', async () => {
    const app = new App()
    app.get('/slow', () => Response.json({ sum: deliberatelySlowChecksum(200_000) }))
    const dir = mkdtempSync(join(tmpdir(), 'httpy-profile-'))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const outFile = join(dir, 'slow.cpuprofile')
    const { results, top, profilePath } = await profileRoute({ app, route: '/slow', numRequests: 150, concurrency: 2, outFile, print: false })
    expect(results.totalRequests).toBe(150)
    expect(top.length).toBeGreaterThan(0)
    expect(top.length).toBeLessThanOrEqual(20)
    const names = top.slice(0, 5).map((e) => e.functionName)
    expect(names).toContain('deliberatelySlowChecksum')
    const entry = top.find((e) => e.functionName === 'deliberatelySlowChecksum')
    expect(entry?.location).toMatch(/cli\.test\.ts:\d+$/)
    expect(entry?.selfShare).toBeGreaterThan(0.1)
    expect(profilePath).toBe(outFile)
    expect(existsSync(outFile)).toBe(true)
    const saved = JSON.parse(readFileSync(outFile, 'utf8'))
    expect(Array.isArray(saved.nodes)).toBe(true)
    expect(Array.isArray(saved.samples)).toBe(true)
  })
})
