/**
 * The core's file cache behind `serveStatic`: hits answered from memory
 * with the exact bytes, edits picked up within the mount's `revalidate`
 * interval, deleted files and symlinks retargeted out of the root giving
 * 404, ranges/304/HEAD/siblings answered from cached entries, and the
 * memory bound held (observed through `server.stats()`).
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, type Server } from '../ts/index.js'
import { listen } from './helpers/index.js'
import { requireTool } from './helpers/tools.js'
import { sleep } from './helpers/wait.js'

const BOUND = 300 // ms, the `revalidate` of the /fresh mount
let base: string
let root: string
let server: Server
let url: string
let zserver: Server


async function fetchBytes(path: string, headers: Record<string, string> = {}, method = 'GET') {
  const res = await fetch(`${url}${path}`, { method, headers })
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) }
}

/** Backdates a file so that its stamp alone identifies it (not "racy"). */
function settle(path: string) {
  const past = new Date(Date.now() - 60_000)
  utimesSync(path, past, past)
}

/**
 * Requests `path` until `ok` holds. Returns when (ms after the call) the
 * last request that still got the old answer was sent: the revalidate
 * bound promises that none sent later than the bound gets it, however long
 * each request takes on a busy machine.
 */
async function lastStaleUntil(path: string, ok: (r: Awaited<ReturnType<typeof fetchBytes>>) => boolean, limitMs: number) {
  const started = Date.now()
  let lastStale = 0
  for (;;) {
    const sentAt = Date.now() - started
    const r = await fetchBytes(path)
    if (ok(r)) return lastStale
    lastStale = sentAt
    if (Date.now() - started > limitMs) throw new Error(`${path}: no change within ${limitMs} ms (last status ${r.status})`)
    await sleep(10)
  }
}

/** Slack over the bound for the file system's and the clocks' granularity. */
const SLACK = 50

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'httpy-static-cache-'))
  root = join(base, 'public')
  mkdirSync(join(root, 'many'), { recursive: true })
  writeFileSync(join(base, 'secret.txt'), 'TOP-SECRET-OUTSIDE-ROOT')
  const app = new App()
  app.serveStatic('/fresh', root, { revalidate: BOUND })
  app.serveStatic('/every', root, { revalidate: 0 })
  server = await listen(app)
  url = server.url
  const zapp = new App()
  zapp.serveStatic('/z', root)
  zserver = await listen(zapp, { compression: true })
})

afterAll(async () => {
  await server?.close()
  await zserver?.close()
  rmSync(base, { recursive: true, force: true })
})

describe('serveStatic file cache', () => {
  it('answers repeated requests from the cache with the exact bytes', async () => {
    const data = randomBytes(100 * 1024)
    writeFileSync(join(root, 'data.bin'), data)
    settle(join(root, 'data.bin'))
    const before = server.stats()
    for (let i = 0; i < 20; i++) {
      const r = await fetchBytes('/fresh/data.bin')
      expect(r.status).toBe(200)
      expect(r.headers.get('content-length')).toBe(String(data.length))
      expect(r.body.equals(data)).toBe(true)
    }
    const after = server.stats()
    expect(after.staticCacheHits - before.staticCacheHits).toBeGreaterThanOrEqual(19)
    expect(after.staticCacheMisses - before.staticCacheMisses).toBeLessThanOrEqual(1)
    expect(after.staticCacheEntries).toBeGreaterThanOrEqual(1)
    expect(after.staticCacheBytes).toBeGreaterThanOrEqual(data.length)
  })

  it.skipIf(!requireTool('curl'))('curl sees the same cached bytes', () => {
    const data = readFileSync(join(root, 'data.bin'))
    const viaCurl = execFileSync('curl', ['-s', '--fail', `${url}/fresh/data.bin`], { maxBuffer: 1 << 22 })
    expect(viaCurl.equals(data)).toBe(true)
  })

  it('serves ranges, 304, If-Range and HEAD from a cached entry', async () => {
    const data = randomBytes(64 * 1024)
    writeFileSync(join(root, 'range.bin'), data)
    settle(join(root, 'range.bin'))
    const whole = await fetchBytes('/fresh/range.bin')
    const etag = whole.headers.get('etag') as string
    const hitsBefore = server.stats().staticCacheHits
    const part = await fetchBytes('/fresh/range.bin', { range: 'bytes=100-199' })
    expect(part.status).toBe(206)
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${data.length}`)
    expect(part.body.equals(data.subarray(100, 200))).toBe(true)
    const tail = await fetchBytes('/fresh/range.bin', { range: 'bytes=-10' })
    expect(tail.body.equals(data.subarray(data.length - 10))).toBe(true)
    expect((await fetchBytes('/fresh/range.bin', { range: `bytes=${data.length}-` })).status).toBe(416)
    const ifRange = await fetchBytes('/fresh/range.bin', { range: 'bytes=0-9', 'if-range': etag })
    expect(ifRange.status).toBe(206)
    expect((await fetchBytes('/fresh/range.bin', { range: 'bytes=0-9', 'if-range': '"old"' })).status).toBe(200)
    const nm = await fetchBytes('/fresh/range.bin', { 'if-none-match': etag })
    expect(nm.status).toBe(304)
    expect(nm.body.length).toBe(0)
    const ims = await fetchBytes('/fresh/range.bin', { 'if-modified-since': whole.headers.get('last-modified') as string })
    expect(ims.status).toBe(304)
    const head = await fetchBytes('/fresh/range.bin', {}, 'HEAD')
    expect(head.status).toBe(200)
    expect(head.headers.get('content-length')).toBe(String(data.length))
    expect(head.body.length).toBe(0)
    expect(server.stats().staticCacheHits - hitsBefore).toBeGreaterThanOrEqual(8)
  })

  it(`serves an edited file fresh within the revalidate bound (${BOUND} ms)`, async () => {
    const path = join(root, 'edit.txt')
    writeFileSync(path, 'version one')
    settle(path)
    expect((await fetchBytes('/fresh/edit.txt')).body.toString()).toBe('version one')
    // Same size, new content: only the modification time tells them apart.
    writeFileSync(path, 'version two')
    const lastStale = await lastStaleUntil('/fresh/edit.txt', (r) => r.body.toString() === 'version two', BOUND + 2000)
    expect(lastStale).toBeLessThanOrEqual(BOUND + SLACK)
    // Once seen, never the old bytes again.
    for (let i = 0; i < 5; i++) expect((await fetchBytes('/fresh/edit.txt')).body.toString()).toBe('version two')
  })

  it('serves an edit at once with revalidate: 0, even one within the same timestamp tick', async () => {
    const path = join(root, 'now.txt')
    writeFileSync(path, 'aaaa')
    expect((await fetchBytes('/every/now.txt')).body.toString()).toBe('aaaa')
    writeFileSync(path, 'bbbb')
    expect((await fetchBytes('/every/now.txt')).body.toString()).toBe('bbbb')
    writeFileSync(path, 'cccc')
    expect((await fetchBytes('/every/now.txt')).body.toString()).toBe('cccc')
  })

  it('gives 404 for a deleted file (at once with revalidate: 0, within the bound otherwise)', async () => {
    const path = join(root, 'gone.txt')
    writeFileSync(path, 'here')
    settle(path)
    expect((await fetchBytes('/fresh/gone.txt')).status).toBe(200)
    expect((await fetchBytes('/every/gone.txt')).status).toBe(200)
    unlinkSync(path)
    expect((await fetchBytes('/every/gone.txt')).status).toBe(404)
    const lastStale = await lastStaleUntil('/fresh/gone.txt', (r) => r.status === 404, BOUND + 2000)
    expect(lastStale).toBeLessThanOrEqual(BOUND + SLACK)
    // And back again.
    writeFileSync(path, 'back')
    expect((await fetchBytes('/every/gone.txt')).body.toString()).toBe('back')
  })

  it('gives 404 once a cached symlink is retargeted out of the root', async () => {
    writeFileSync(join(root, 'target.txt'), 'inside')
    symlinkSync(join(root, 'target.txt'), join(root, 'link.txt'))
    expect((await fetchBytes('/every/link.txt')).body.toString()).toBe('inside')
    unlinkSync(join(root, 'link.txt'))
    symlinkSync(join(base, 'secret.txt'), join(root, 'link.txt'))
    const r = await fetchBytes('/every/link.txt')
    expect(r.status).toBe(404)
    expect(r.body.toString()).not.toContain('SECRET')
  })

  it('picks up a precompressed sibling that appears, and drops one that goes', async () => {
    const css = 'a { color: blue; }\n'.repeat(100)
    writeFileSync(join(root, 'site.css'), css)
    settle(join(root, 'site.css'))
    const first = await fetchBytes('/every/site.css', { 'accept-encoding': 'gzip' })
    expect(first.headers.get('content-encoding')).toBeNull()
    writeFileSync(join(root, 'site.css.gz'), gzipSync(css))
    const gz = await fetch(`${url}/every/site.css`, { headers: { 'accept-encoding': 'gzip' } })
    expect(gz.headers.get('content-encoding')).toBe('gzip')
    expect(await gz.text()).toBe(css) // fetch decodes it
    unlinkSync(join(root, 'site.css.gz'))
    const plain = await fetchBytes('/every/site.css', { 'accept-encoding': 'gzip' })
    expect(plain.headers.get('content-encoding')).toBeNull()
    expect(plain.body.toString()).toBe(css)
  })

  it('streams large files without holding them, and stays within its memory bound', async () => {
    const big = randomBytes(1024 * 1024 + 7)
    writeFileSync(join(root, 'big.bin'), big)
    const before = server.stats().staticCacheBytes
    const r = await fetchBytes('/fresh/big.bin')
    expect(r.body.equals(big)).toBe(true)
    expect(server.stats().staticCacheBytes - before).toBeLessThan(64 * 1024)
    // 300 files of 256 KiB (75 MiB) through a 64 MiB cache.
    const chunk = randomBytes(256 * 1024)
    for (let i = 0; i < 300; i++) writeFileSync(join(root, 'many', `${i}.bin`), chunk)
    for (let i = 0; i < 300; i++) {
      const res = await fetch(`${url}/fresh/many/${i}.bin`)
      expect(res.status).toBe(200)
      expect(Buffer.from(await res.arrayBuffer()).equals(chunk)).toBe(true)
    }
    const s = server.stats()
    expect(s.staticCacheBytes).toBeLessThanOrEqual(64 * 1024 * 1024)
    expect(s.staticCacheEntries).toBeLessThan(300)
    expect(s.staticCacheEntries).toBeGreaterThan(100)
    // Evicted files are still served (read again).
    const again = await fetchBytes('/fresh/many/0.bin')
    expect(again.body.equals(chunk)).toBe(true)
  })

  it('compresses a held file once per coding and keeps the form with the entry', async () => {
    const css = Buffer.from(Array.from({ length: 2000 }, (_, i) => `.c${i} { margin: ${i}px; }\n`).join(''))
    writeFileSync(join(root, 'z.css'), css)
    settle(join(root, 'z.css'))
    const zurl = zserver.url
    // node:http leaves the body encoded.
    const get = (headers: Record<string, string>) =>
      new Promise<{ headers: Headers; body: Buffer }>((resolve, reject) => {
        http
          .get(`${zurl}/z/z.css`, { headers, agent: false }, (res) => {
            const chunks: Buffer[] = []
            res.on('data', (c: Buffer) => chunks.push(c))
            res.on('end', () => {
              const h = new Headers()
              for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v)
              resolve({ headers: h, body: Buffer.concat(chunks) })
            })
          })
          .on('error', reject)
      })
    const first = await get({ 'accept-encoding': 'gzip' })
    expect(first.headers.get('content-encoding')).toBe('gzip')
    expect(first.headers.get('vary')).toMatch(/accept-encoding/i)
    expect(first.headers.get('etag')).toMatch(/^W\//)
    expect(gunzipSync(first.body).equals(css)).toBe(true)
    const afterFirst = zserver.stats()
    for (let i = 0; i < 5; i++) {
      const again = await get({ 'accept-encoding': 'gzip' })
      expect(again.body.equals(first.body)).toBe(true)
    }
    // Kept, not made again: the entry's charge did not grow.
    expect(zserver.stats().staticCacheBytes).toBe(afterFirst.staticCacheBytes)
    expect(afterFirst.staticCacheBytes).toBeGreaterThanOrEqual(css.length + first.body.length)
    const plain = await get({})
    expect(plain.headers.get('content-encoding')).toBeNull()
    expect(plain.body.equals(css)).toBe(true)
    const part = await get({ 'accept-encoding': 'gzip', range: 'bytes=0-9' })
    expect(part.headers.get('content-encoding')).toBeNull()
    expect(part.body.equals(css.subarray(0, 10))).toBe(true)
  })
})

describe('revalidate option', () => {
  it('rejects values that are not milliseconds >= 0, naming the option', () => {
    for (const bad of [-1, Number.NaN, Infinity, '1000', null]) {
      expect(() => new App().serveStatic('/s', tmpdir(), { revalidate: bad as never })).toThrow(
        expect.objectContaining({ code: 'ERR_HTTPY_INVALID_OPTION', message: expect.stringContaining('revalidate') }),
      )
    }
  })
})
