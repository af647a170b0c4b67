/**
 * multipart/form-data parsed in the core (`multipart` route option) while
 * the body streams: parts reach the handler with `req.parts()` and
 * `req.formData()`, sent by three independent clients (undici's FormData,
 * curl -F, Python requests); limits (part count, field size, file size)
 * answer 413 naming the limit, a malformed body 400 naming the problem, and
 * the server keeps serving. urlencoded forms are read by `req.formData()`.
 * A fetch handler's `request.formData()` on a multipart body goes through
 * the same parser and limits; its `request.body` still gives the raw bytes.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, serve, type Server } from '../ts/index.js'
import { listen, requireTool } from './helpers/index.js'

let server: Server
let url: string
const dir = mkdtempSync(join(tmpdir(), 'httpy-multipart-'))

/** Runs a client process without blocking the event loop (the server runs in this process). */
function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 30_000, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const file = (n: number, seed: number): Buffer => {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) % 256
  return b
}

interface Seen {
  name: string
  filename?: string
  type: string
  size: number
  sha256?: string
  text?: string
}

beforeAll(async () => {
  const app = new App()
  // Streams every part through a hash; fields are returned as text.
  app.post(
    '/parts',
    async (req) => {
      const seen: Seen[] = []
      for await (const part of req.parts()) {
        if (part.filename === undefined) {
          const text = await part.text()
          seen.push({ name: part.name, type: part.type, size: text.length, text })
        } else {
          const h = createHash('sha256')
          let size = 0
          for await (const c of part.stream()) {
            h.update(c)
            size += c.length
          }
          seen.push({ name: part.name, filename: part.filename, type: part.type, size, sha256: h.digest('hex') })
        }
      }
      return Response.json(seen)
    },
    { multipart: { maxParts: 5, maxFieldSize: 1000, maxFileSize: 8 * 1024 * 1024 } },
  )
  // Reads only the names, skipping every part's bytes.
  app.post(
    '/names',
    async (req) => {
      const names: string[] = []
      for await (const part of req.parts()) names.push(part.name)
      return Response.json(names)
    },
    { multipart: true },
  )
  app.post(
    '/form',
    async (req) => {
      const form = await req.formData()
      const out: Record<string, unknown> = {}
      for (const [k, v] of form) out[k] = typeof v === 'string' ? v : { name: v.name, size: v.size, type: v.type }
      return Response.json(out)
    },
    { multipart: true },
  )
  // A route without the option: formData() parses urlencoded (and whole multipart) bodies.
  app.post('/plain-form', async (req) => Response.json(Object.fromEntries(await req.formData())))
  app.get('/ping', () => Response.text('pong'))
  server = await listen(app, { maxBodySize: 64 * 1024 * 1024 })
  url = server.url
})

afterAll(async () => {
  await server?.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('multipart parsed in the core', () => {
  it('undici FormData: fields and files arrive as parts, files streamed', async () => {
    const big = file(5 * 1024 * 1024 + 3, 1)
    const small = file(1000, 2)
    const form = new FormData()
    form.set('title', 'holiday')
    form.set('photo', new Blob([new Uint8Array(big)], { type: 'image/jpeg' }), 'beach.jpg')
    form.set('notes', new Blob([new Uint8Array(small)], { type: 'text/plain' }), 'notes.txt')
    const r = await fetch(`${url}/parts`, { method: 'POST', body: form })
    expect(r.status).toBe(200)
    expect(await r.json()).toEqual([
      { name: 'title', type: '', size: 7, text: 'holiday' },
      { name: 'photo', filename: 'beach.jpg', type: 'image/jpeg', size: big.length, sha256: sha(big) },
      { name: 'notes', filename: 'notes.txt', type: 'text/plain', size: small.length, sha256: sha(small) },
    ])
  })

  it.skipIf(!requireTool('curl'))('curl -F', async () => {
    const path = join(dir, 'upload.bin')
    const data = file(300_000, 3)
    writeFileSync(path, data)
    const r = await run('curl', ['-sS', '-F', 'who=curl', '-F', `doc=@${path};type=application/octet-stream`, `${url}/parts`])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual([
      { name: 'who', type: '', size: 4, text: 'curl' },
      { name: 'doc', filename: 'upload.bin', type: 'application/octet-stream', size: data.length, sha256: sha(data) },
    ])
  })

  it.skipIf(!requireTool('requests'))('Python requests', async () => {
    const script = [
      'import hashlib, json, sys, requests',
      'data = bytes((i * 13) % 256 for i in range(200000))',
      `r = requests.post(sys.argv[1], data={"lang": "python"}, files={"blob": ("b.dat", data, "application/x-test")}, timeout=20)`,
      'print(json.dumps({"status": r.status_code, "body": r.json(), "sha": hashlib.sha256(data).hexdigest()}))',
    ].join('\n')
    const r = await run('python3', ['-c', script, `${url}/parts`])
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as { status: number; body: Seen[]; sha: string }
    expect(out.status).toBe(200)
    expect(out.body).toEqual([
      { name: 'lang', type: '', size: 6, text: 'python' },
      { name: 'blob', filename: 'b.dat', type: 'application/x-test', size: 200_000, sha256: out.sha },
    ])
  })

  it('parts left unread are skipped; formData() collects fields and files', async () => {
    const form = new FormData()
    form.set('a', '1')
    form.set('f', new Blob([new Uint8Array(file(400_000, 4))]), 'f.bin')
    form.set('b', '2')
    expect(await (await fetch(`${url}/names`, { method: 'POST', body: form })).json()).toEqual(['a', 'f', 'b'])
    const r = await fetch(`${url}/form`, { method: 'POST', body: form })
    expect(await r.json()).toEqual({ a: '1', f: { name: 'f.bin', size: 400_000, type: 'application/octet-stream' }, b: '2' })
  })

  it('limits answer 413 naming the limit; the server keeps serving', async () => {
    const tooMany = new FormData()
    for (let i = 0; i < 6; i++) tooMany.append(`f${i}`, 'x')
    let r = await fetch(`${url}/parts`, { method: 'POST', body: tooMany })
    expect(r.status).toBe(413)
    expect(await r.text()).toBe('multipart body has more than 5 parts (maxParts)')

    const longField = new FormData()
    longField.set('essay', 'y'.repeat(1001))
    r = await fetch(`${url}/parts`, { method: 'POST', body: longField })
    expect(r.status).toBe(413)
    expect(await r.text()).toBe('multipart part "essay" exceeds maxFieldSize (1000 bytes)')

    const bigFile = new FormData()
    bigFile.set('video', new Blob([new Uint8Array(8 * 1024 * 1024 + 1)]), 'v.mp4')
    r = await fetch(`${url}/parts`, { method: 'POST', body: bigFile }).catch(() => ({ status: -1, text: async () => 'reset' }) as unknown as globalThis.Response)
    // The client may be cut off while still sending; when it reads the answer, it is the 413.
    if (r.status !== -1) {
      expect(r.status).toBe(413)
      expect(await r.text()).toBe('multipart part "video" exceeds maxFileSize (8388608 bytes)')
    }
    expect(await (await fetch(`${url}/ping`)).text()).toBe('pong')
  })

  it('a part with oversized headers is a 413 naming maxHeaderSize', async () => {
    const r = await fetch(`${url}/names`, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=XYZ' },
      body: `--XYZ\r\ncontent-disposition: form-data; name="a"\r\nx-padding: ${'p'.repeat(20_000)}\r\n\r\nv\r\n--XYZ--\r\n`,
    })
    expect(r.status).toBe(413)
    expect(await r.text()).toBe('multipart part 1 has headers over maxHeaderSize (16384 bytes)')
  })

  it('a malformed body is a 400 naming the problem', async () => {
    const r = await fetch(`${url}/parts`, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=XYZ' },
      body: '--XYZ\r\ncontent-disposition: form-data; name="a"\r\n\r\nno closing boundary',
    })
    expect(r.status).toBe(400)
    expect(await r.text()).toMatch(/^malformed multipart body: /)
    expect(await (await fetch(`${url}/ping`)).text()).toBe('pong')
  })

  it('urlencoded forms (and multipart on routes without the option) are read by formData()', async () => {
    const r = await fetch(`${url}/plain-form`, { method: 'POST', body: new URLSearchParams({ q: 'a b', n: '1' }) })
    expect(await r.json()).toEqual({ q: 'a b', n: '1' })
    const form = new FormData()
    form.set('x', 'y')
    expect(await (await fetch(`${url}/plain-form`, { method: 'POST', body: form })).json()).toEqual({ x: 'y' })
    const bad = await fetch(`${url}/plain-form`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' })
    expect(bad.status).toBe(400)
  })
})

describe("a fetch handler's request.formData()", () => {
  let fs: Server
  beforeAll(async () => {
    fs = await serve({
      host: '127.0.0.1',
      port: 0,
      quiet: true,
      maxBodySize: 64 * 1024 * 1024,
      multipart: { maxParts: 4, maxFileSize: 1024 * 1024 },
      fetch: async (request) => {
        const path = new URL(request.url).pathname
        if (path === '/form') {
          const form = await request.formData()
          const out: Record<string, unknown> = {}
          for (const [k, v] of form) out[k] = typeof v === 'string' ? v : { name: v.name, size: v.size, type: v.type, sha256: sha(new Uint8Array(await v.arrayBuffer())) }
          return globalThis.Response.json(out)
        }
        if (path === '/raw') return new globalThis.Response(sha(new Uint8Array(await request.arrayBuffer())))
        return new globalThis.Response('pong')
      },
    })
  })
  afterAll(async () => {
    await fs?.close()
  })

  it('undici FormData with a file part: parsed by the core, File and field as standard', async () => {
    const data = file(300_000, 5)
    const form = new FormData()
    form.set('title', 'report')
    form.set('doc', new Blob([new Uint8Array(data)], { type: 'application/pdf' }), 'r.pdf')
    const r = await fetch(`${fs.url}/form`, { method: 'POST', body: form })
    expect(r.status).toBe(200)
    expect(await r.json()).toEqual({ title: 'report', doc: { name: 'r.pdf', size: data.length, type: 'application/pdf', sha256: sha(data) } })
    // A short one (within the 64 KiB a plain body would arrive whole in) too.
    const short = new FormData()
    short.set('n', '1')
    short.set('f', new Blob([new Uint8Array(file(10, 6))]), 'f.bin')
    expect(await (await fetch(`${fs.url}/form`, { method: 'POST', body: short })).json()).toEqual({
      n: '1',
      f: { name: 'f.bin', size: 10, type: 'application/octet-stream', sha256: sha(file(10, 6)) },
    })
  })

  it("the route's limits: 413 naming the limit, 400 on a malformed body, the server keeps serving", async () => {
    const tooMany = new FormData()
    for (let i = 0; i < 5; i++) tooMany.append(`f${i}`, 'x')
    let r = await fetch(`${fs.url}/form`, { method: 'POST', body: tooMany })
    expect(r.status).toBe(413)
    expect(await r.text()).toBe('multipart body has more than 4 parts (maxParts)')
    const bigFile = new FormData()
    bigFile.set('video', new Blob([new Uint8Array(1024 * 1024 + 1)]), 'v.mp4')
    r = await fetch(`${fs.url}/form`, { method: 'POST', body: bigFile })
    expect(r.status).toBe(413)
    expect(await r.text()).toBe('multipart part "video" exceeds maxFileSize (1048576 bytes)')
    r = await fetch(`${fs.url}/form`, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=XYZ' },
      body: '--XYZ\r\ncontent-disposition: form-data; name="a"\r\n\r\nno closing boundary',
    })
    expect(r.status).toBe(400)
    expect(await r.text()).toMatch(/^malformed multipart body: /)
    expect(await (await fetch(`${fs.url}/ping`)).text()).toBe('pong')
  })

  it('request.body of a multipart body is still its raw bytes', async () => {
    const body = `--B1\r\ncontent-disposition: form-data; name="a"\r\nx-extra: kept\r\n\r\n${'z'.repeat(100_000)}\r\n--B1--\r\n`
    const r = await fetch(`${fs.url}/raw`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=B1' }, body })
    expect(await r.text()).toBe(sha(Buffer.from(body)))
  })
})

describe('maxHeaderSize while a part header is read', () => {
  it('a part header without a line end is refused (413) while the request is unfinished', async () => {
    // 1 MiB of one header line, chunked, and the request never ended: a
    // server that waited for the whole header (or body) would never answer.
    // A raw socket, so the client's writes are all done before the answer
    // and the server closing on the rest cannot cut the response short.
    const { port } = new URL(url)
    const answer = await new Promise<string>((resolve) => {
      const sock = net.connect(Number(port), '127.0.0.1')
      let text = ''
      const done = setTimeout(() => sock.destroy(), 10_000)
      sock.on('data', (c: Buffer) => (text += c.toString('latin1')))
      sock.on('error', () => {}) // a reset after the answer: judged by what arrived
      sock.on('close', () => {
        clearTimeout(done)
        resolve(text)
      })
      const chunk = (b: Buffer | string): string | Buffer[] =>
        typeof b === 'string' ? `${Buffer.byteLength(b).toString(16)}\r\n${b}\r\n` : [Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]
      sock.write(`POST /names HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: multipart/form-data; boundary=XYZ\r\ntransfer-encoding: chunked\r\n\r\n`)
      sock.write(chunk('--XYZ\r\ncontent-disposition: form-data; name="a"\r\nx-long: ') as string)
      const piece = Buffer.alloc(64 * 1024, 0x61)
      for (let i = 0; i < 16; i++) for (const b of chunk(piece) as Buffer[]) sock.write(b)
    })
    expect(answer).toMatch(/^HTTP\/1\.1 413 /)
    expect(answer).toContain('multipart part 1 has headers over maxHeaderSize (16384 bytes)')
    expect(await (await fetch(`${url}/ping`)).text()).toBe('pong')
  })
})
