/**
 * Streamed request bodies (`streamBody` routes, fetch handlers) and
 * `request.signal`: bodies read from the socket chunk by chunk over
 * HTTP/1.1 (Content-Length and chunked), HTTP/2 and HTTP/3, with
 * backpressure (a stalled handler stalls its client, the server keeps
 * serving), `maxBodySize` enforced mid-stream (413, the handler's stream
 * errors), a 1 GB upload to a server process whose RSS stays bounded, and
 * the signal aborting when the client goes away mid-handler (HTTP/1.1,
 * HTTP/2 stream resets, closed QUIC connections).
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, serve, type Server } from '../ts/index.js'
import { h2Request, h3, listen, requireTool, sleep, startApp, until, type AppProcess } from './helpers/index.js'

const MAX_BODY = 8 * 1024 * 1024
let server: Server
let url: string
/** What the handlers saw, by test key. */
const seen = new Map<string, unknown>()

function sha(b: Buffer | Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}

/** Deterministic bytes, different in every position mod 251. */
function pattern(n: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = i % 251
  return b
}

/**
 * Writes `piece` to `req` again and again, `total` bytes in all (until the
 * request is destroyed when `total` is Infinity), waiting for `drain`
 * whenever the socket is full, then ends it. Returns the bytes written so far.
 */
function feed(req: http.ClientRequest, piece: Buffer, total: number): () => number {
  let written = 0
  const pump = (): void => {
    while (written < total && !req.destroyed) {
      written += piece.length
      if (!req.write(piece)) return void req.once('drain', pump)
    }
    if (!req.destroyed) req.end()
  }
  pump()
  return () => written
}

beforeAll(async () => {
  const app = new App()
  // Reads the body through the stream and reports what arrived.
  app.post(
    '/digest',
    async (req) => {
      const h = createHash('sha256')
      let bytes = 0
      let chunks = 0
      if (!req.streamed) {
        h.update(req.body)
        bytes = req.body.length
      } else {
        for await (const c of req.stream()) {
          h.update(c)
          bytes += c.length
          chunks++
        }
      }
      return Response.json({ streamed: req.streamed, bytes, chunks, sha256: h.digest('hex'), version: req.httpVersion })
    },
    { streamBody: true },
  )
  app.post(
    '/json',
    async (req) => {
      const body = await req.json<{ items: number[] }>()
      return Response.json({ streamed: req.streamed, count: body.items.length, again: req.body.length })
    },
    { streamBody: true },
  )
  app.post(
    '/touch-body',
    (req) => {
      try {
        return Response.json({ length: req.body.length })
      } catch (e) {
        return Response.json({ code: (e as { code?: string }).code, message: (e as Error).message }, 409)
      }
    },
    { streamBody: true },
  )
  // Not a streaming route: bodies arrive whole, as before.
  app.post('/whole', (req) => Response.json({ streamed: req.streamed, bytes: req.body.length }))
  // Records how its stream ended (too large, client gone).
  app.post(
    '/record/{key}',
    async (req) => {
      const key = req.pathParams.key as string
      let bytes = 0
      try {
        for await (const c of req.stream()) bytes += c.length
        seen.set(key, { ok: bytes })
      } catch (e) {
        seen.set(key, { code: (e as { code?: string }).code, message: (e as Error).message, bytes })
      }
      return Response.json({ bytes })
    },
    { streamBody: true },
  )
  // Reads the first chunk of a body, then waits for the client to leave
  // (recorded under `?key=`, by default 'slow-upload').
  app.post(
    '/slow-upload',
    async (req) => {
      const key = req.query.get('key') ?? 'slow-upload'
      const signal = req.signal
      await req.stream().getReader().read()
      seen.set(key, 'waiting')
      await new Promise<void>((resolve) => {
        signal.addEventListener('abort', () => resolve(), { once: true })
        setTimeout(resolve, 5000)
      })
      seen.set(key, { aborted: signal.aborted, reason: (signal.reason as Error | undefined)?.name })
      return Response.text('late')
    },
    { streamBody: true },
  )
  // Waits for the client to leave; records the signal's state.
  app.get('/wait-abort/{key}', async (req) => {
    const key = req.pathParams.key as string
    const signal = req.signal
    seen.set(key, 'waiting')
    await new Promise<void>((resolve) => {
      signal.addEventListener('abort', () => resolve(), { once: true })
      setTimeout(resolve, 5000)
    })
    seen.set(key, { aborted: signal.aborted, reason: (signal.reason as Error | undefined)?.name })
    return Response.text('late')
  })
  // Streams until its client is gone, then records the signal.
  app.get('/endless', (req) => {
    const signal = req.signal
    signal.addEventListener('abort', () => seen.set('endless', { aborted: true, reason: (signal.reason as Error).name }))
    async function* gen() {
      for (let i = 0; i < 100_000 && !signal.aborted; i++) yield Buffer.alloc(64 * 1024, 120)
    }
    return new Response(gen())
  })
  app.get('/answered', (req) => {
    const signal = req.signal
    setTimeout(() => seen.set('answered', signal.aborted), 300)
    return Response.text('ok')
  })
  app.get('/ping', () => Response.text('pong'))
  server = await listen(app, { maxBodySize: MAX_BODY })
  url = server.url
})

afterAll(async () => {
  await server?.close()
})

/** POSTs `body` with HTTP/1.1, chunked when `chunked` (no Content-Length). */
function post1(path: string, body: Buffer, chunked = false, chunk = 64 * 1024): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': body.length }
    const req = http.request(`${url}${path}`, { method: 'POST', headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
    })
    req.on('error', reject)
    let at = 0
    const pump = (): void => {
      while (at < body.length) {
        const part = body.subarray(at, at + chunk)
        at += part.length
        if (!req.write(part)) {
          req.once('drain', pump)
          return
        }
      }
      req.end()
    }
    pump()
  })
}

describe('streamed request bodies', () => {
  it('a short body still arrives whole, a long one streams (HTTP/1.1, Content-Length and chunked)', async () => {
    const small = pattern(1000)
    const r = await post1('/digest', small)
    expect(JSON.parse(r.text)).toMatchObject({ streamed: false, bytes: 1000, sha256: sha(small) })

    const big = pattern(3 * 1024 * 1024 + 17)
    for (const chunked of [false, true]) {
      const res = await post1('/digest', big, chunked)
      const got = JSON.parse(res.text) as { streamed: boolean; bytes: number; chunks: number; sha256: string }
      expect(res.status).toBe(200)
      expect(got).toMatchObject({ streamed: true, bytes: big.length, sha256: sha(big) })
      expect(got.chunks).toBeGreaterThan(1)
    }
    // A chunked body that ends early is delivered whole too.
    const tiny = await post1('/digest', pattern(10), true)
    expect(JSON.parse(tiny.text)).toMatchObject({ streamed: false, bytes: 10 })
  })

  it('routes without streamBody keep whole bodies', async () => {
    const r = await post1('/whole', pattern(500_000), true)
    expect(JSON.parse(r.text)).toEqual({ streamed: false, bytes: 500_000 })
  })

  it('json() reads a streamed body to its end; req.body then holds it, and before, names the way to read it', async () => {
    const doc = Buffer.from(JSON.stringify({ items: Array.from({ length: 40_000 }, (_, i) => i) }))
    expect(doc.length).toBeGreaterThan(100_000)
    const r = await post1('/json', doc, true)
    expect(JSON.parse(r.text)).toEqual({ streamed: true, count: 40_000, again: doc.length })
    const t = await post1('/touch-body', pattern(200_000), true)
    expect(t.status).toBe(409)
    expect(JSON.parse(t.text)).toMatchObject({ code: 'ERR_HTTPY_BODY_STREAMED' })
    expect(JSON.parse(t.text).message).toContain('req.stream()')
  })

  it('streams over HTTP/2 (node:http2 client)', async () => {
    const session = http2.connect(url)
    try {
      const big = pattern(2 * 1024 * 1024 + 5)
      const got = await h2Request(session, { ':method': 'POST', ':path': '/digest' }, big)
      expect(got.status).toBe(200)
      expect(JSON.parse(got.body.toString())).toMatchObject({ streamed: true, bytes: big.length, sha256: sha(big), version: '2' })
    } finally {
      session.close()
    }
  })

  it.skipIf(!requireTool('aioquic'))('streams over HTTP/3 (aioquic client)', async () => {
    const app = new App().post(
      '/digest',
      async (req) => {
        const h = createHash('sha256')
        let bytes = 0
        for await (const c of req.stream()) {
          h.update(c)
          bytes += c.length
        }
        return Response.json({ streamed: req.streamed, bytes, sha256: h.digest('hex'), version: req.httpVersion })
      },
      { streamBody: true },
    )
    const s = await app.listen({ host: '127.0.0.1', port: 0, tls: 'self-signed', http3Port: 0, quiet: true })
    try {
      const n = 1024 * 1024 + 3
      const block = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
      const sent = Buffer.concat(Array.from({ length: Math.ceil(n / 256) }, () => block)).subarray(0, n)
      const r = await h3(s.http3Port as number, [{ method: 'POST', path: '/digest', body_size: n }])
      const res = r.responses[0]
      expect(res?.status).toBe(200)
      expect(JSON.parse(res?.body ?? '{}')).toEqual({ streamed: true, bytes: n, sha256: sha(sent), version: '3' })
    } finally {
      await s.close()
    }
  })

  it('past maxBodySize mid-stream: 413 for the client, an error naming the limit in the handler, the server keeps serving', async () => {
    // Chunked: no Content-Length to refuse up front.
    const r = await post1('/record/too-large', pattern(MAX_BODY + 1024 * 1024), true).catch((e: Error) => ({ status: -1, text: e.message }))
    // The client may see the 413, or a reset if it was still writing when the server closed.
    expect([413, -1]).toContain(r.status)
    await until(() => seen.has('too-large'))
    expect(seen.get('too-large')).toMatchObject({ code: 'ERR_HTTPY_BODY_TOO_LARGE' })
    expect((seen.get('too-large') as { message: string }).message).toContain(`maxBodySize (${MAX_BODY} bytes)`)
    // A client that reads the answer while it sends sees the 413 itself.
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${url}/record/too-large-2`, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      req.on('error', reject)
      feed(req, pattern(256 * 1024), Infinity)
    })
    expect(status).toBe(413)
    expect((await fetch(`${url}/ping`)).status).toBe(200)
  })

  it('a client that leaves mid-upload errors the stream with ERR_HTTPY_BODY_ABORTED', async () => {
    const sock = net.connect(server.port, '127.0.0.1')
    await new Promise((r) => sock.once('connect', r))
    sock.write('POST /record/gone HTTP/1.1\r\nhost: x\r\ncontent-length: 5000000\r\n\r\n')
    sock.write(pattern(200_000))
    await sleep(200)
    sock.destroy()
    await until(() => seen.has('gone'))
    expect(seen.get('gone')).toMatchObject({ code: 'ERR_HTTPY_BODY_ABORTED' })
    expect((await fetch(`${url}/ping`)).status).toBe(200)
  })

  it('a client silent mid-body for requestTimeout gets 408; the handler sees the body broken off, not ended', async () => {
    let outcome: unknown
    const app = new App().post(
      '/slow',
      async (req) => {
        let bytes = 0
        try {
          for await (const c of req.stream()) bytes += c.length
          outcome = { ended: bytes }
        } catch (e) {
          outcome = { code: (e as { code?: string }).code, bytes }
        }
        return Response.text('late')
      },
      { streamBody: true },
    )
    const s = await listen(app, { requestTimeout: 1 })
    try {
      const sock = net.connect(s.port, '127.0.0.1')
      let answer = ''
      sock.on('data', (d: Buffer) => (answer += d.toString('latin1')))
      await new Promise((r) => sock.once('connect', r))
      sock.write('POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n')
      sock.write(pattern(100_000))
      await until(() => answer.length > 0, 5000)
      expect(answer).toMatch(/^HTTP\/1\.1 408 /)
      await until(() => outcome !== undefined)
      expect(outcome).toMatchObject({ code: 'ERR_HTTPY_BODY_ABORTED' })
      sock.destroy()
    } finally {
      await s.close()
    }
  })

  it('a stalled consumer stalls its client, not the server', async () => {
    let release: (() => void) | undefined
    const app = new App()
      .post(
        '/stall',
        async (req) => {
          const reader = req.stream().getReader()
          let bytes = (await reader.read()).value?.length ?? 0
          await new Promise<void>((r) => (release = r))
          for (;;) {
            const { value, done } = await reader.read()
            if (done) break
            bytes += value.length
          }
          return Response.json({ bytes })
        },
        { streamBody: true },
      )
      .get('/ping', () => Response.text('pong'))
    const s = await listen(app, { maxBodySize: 1024 ** 3 })
    try {
      const total = 64 * 1024 * 1024
      let written = (): number => 0
      const done = new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = http.request(`${s.url}/stall`, { method: 'POST', headers: { 'content-length': total } }, (res) => {
          let text = ''
          res.on('data', (c: Buffer) => (text += c.toString()))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
        })
        req.on('error', reject)
        written = feed(req, Buffer.alloc(64 * 1024, 1), total)
      })
      await until(() => release !== undefined)
      await sleep(500)
      const stuckAt = written()
      await sleep(500)
      // The client could not push the body through: socket buffers and the
      // core's few chunks hold what it wrote, far below the 64 MB.
      expect(written()).toBe(stuckAt)
      expect(stuckAt).toBeLessThan(24 * 1024 * 1024)
      // Meanwhile the server answers others at once.
      const t0 = Date.now()
      expect(await (await fetch(`${s.url}/ping`)).text()).toBe('pong')
      expect(Date.now() - t0).toBeLessThan(1000)
      ;(release as (() => void) | undefined)?.()
      const r = await done
      expect(r.status).toBe(200)
      expect(JSON.parse(r.text)).toEqual({ bytes: total })
    } finally {
      await s.close()
    }
  })
})

describe('request.signal', () => {
  it('aborts when an HTTP/1.1 client leaves mid-upload', async () => {
    const sock = net.connect(server.port, '127.0.0.1')
    await new Promise((r) => sock.once('connect', r))
    sock.write('POST /slow-upload HTTP/1.1\r\nhost: x\r\ncontent-length: 5000000\r\n\r\n')
    // Less than the core buffers for a handler that stops reading (64 KiB
    // whole, then 8 chunks): the server reads all of it and so sees the
    // client leave. With more, the rest waits unread in the socket and the
    // departure is seen only when the handler reads again (docs/fetch.md);
    // 300 KB here made the test pass or fail by hyper's read sizes.
    sock.write(pattern(120_000))
    await until(() => seen.get('slow-upload') === 'waiting')
    sock.destroy()
    await until(() => typeof seen.get('slow-upload') === 'object', 4000)
    expect(seen.get('slow-upload')).toEqual({ aborted: true, reason: 'AbortError' })
  })

  it('aborts when an HTTP/2 client resets its stream while its upload is held back', async () => {
    // Far more than the core buffers for a handler that stopped reading:
    // the rest waits in flow control, and the reset is still seen at once.
    const session = http2.connect(url)
    try {
      const s = session.request({ ':method': 'POST', ':path': '/slow-upload?key=h2-held', 'content-length': '5000000' })
      s.on('error', () => {})
      s.write(pattern(2_000_000))
      await until(() => seen.get('h2-held') === 'waiting')
      await sleep(200)
      s.close(http2.constants.NGHTTP2_CANCEL)
      await until(() => typeof seen.get('h2-held') === 'object', 2000)
      expect(seen.get('h2-held')).toEqual({ aborted: true, reason: 'AbortError' })
    } finally {
      session.close()
    }
  })

  it('aborts when an HTTP/2 stream is reset mid-handler', async () => {
    const session = http2.connect(url)
    try {
      const s = session.request({ ':path': '/wait-abort/h2' })
      s.on('error', () => {})
      await until(() => seen.get('h2') === 'waiting')
      s.close(http2.constants.NGHTTP2_CANCEL)
      await until(() => typeof seen.get('h2') === 'object', 4000)
      expect(seen.get('h2')).toEqual({ aborted: true, reason: 'AbortError' })
    } finally {
      session.close()
    }
  })

  it('aborts when the client leaves mid-response (a streamed answer)', async () => {
    const sock = net.connect(server.port, '127.0.0.1')
    await new Promise((r) => sock.once('connect', r))
    sock.write('GET /endless HTTP/1.1\r\nhost: x\r\n\r\n')
    await new Promise((r) => sock.once('data', r))
    sock.destroy()
    await until(() => seen.has('endless'), 4000)
    expect(seen.get('endless')).toEqual({ aborted: true, reason: 'AbortError' })
  })

  it('stays quiet for an answered request', async () => {
    expect(await (await fetch(`${url}/answered`)).text()).toBe('ok')
    await until(() => seen.has('answered'))
    expect(seen.get('answered')).toBe(false)
  })
})

describe('fetch-style handlers', () => {
  let s: Server
  const events: string[] = []
  beforeAll(async () => {
    s = await serve({
      host: '127.0.0.1',
      port: 0,
      quiet: true,
      maxBodySize: MAX_BODY,
      fetch: async (request) => {
        const path = new URL(request.url).pathname
        if (path === '/digest') {
          const h = createHash('sha256')
          let bytes = 0
          const body = request.body
          if (body) {
            for await (const c of body) {
              h.update(c)
              bytes += c.length
            }
          }
          return globalThis.Response.json({ bytes, sha256: h.digest('hex') })
        }
        if (path === '/text') return new globalThis.Response(String((await request.text()).length))
        if (path === '/form') {
          const form = await request.formData()
          const file = form.get('file') as File
          return globalThis.Response.json({ name: file.name, size: file.size, field: form.get('field') })
        }
        if (path === '/wait') {
          events.push('waiting')
          await new Promise<void>((resolve) => {
            request.signal.addEventListener('abort', () => resolve(), { once: true })
            setTimeout(resolve, 5000)
          })
          events.push(request.signal.aborted ? 'aborted' : 'not aborted')
          return new globalThis.Response('late')
        }
        return new globalThis.Response('nope', { status: 404 })
      },
    })
  })
  afterAll(async () => {
    await s?.close()
  })

  it('request.body streams a long upload from the socket; text() and formData() read it too', async () => {
    const big = pattern(3 * 1024 * 1024)
    const r = await fetch(`${s.url}/digest`, { method: 'POST', body: new Uint8Array(big) })
    expect(await r.json()).toEqual({ bytes: big.length, sha256: sha(big) })
    const t = await fetch(`${s.url}/text`, { method: 'POST', body: 'x'.repeat(1_000_000) })
    expect(await t.text()).toBe('1000000')
    const form = new FormData()
    form.set('field', 'value')
    form.set('file', new Blob([new Uint8Array(pattern(2_000_000))]), 'big.bin')
    const f = await fetch(`${s.url}/form`, { method: 'POST', body: form })
    expect(await f.json()).toEqual({ name: 'big.bin', size: 2_000_000, field: 'value' })
  })

  /**
   * A fetch server over HTTP/3 whose handler waits for its signal (5 s at
   * most), recording how that ended by path: `aborted AbortError MS` (MS
   * from the signal's first read) or `not aborted`. With `readAfterMs`, the
   * handler reads the signal only that late, and on `/unread` answers then
   * without reading it.
   */
  async function h3SignalServer(got: Map<string, string>, readAfterMs = 0): Promise<Server> {
    return serve({
      host: '127.0.0.1',
      port: 0,
      quiet: true,
      tls: 'self-signed',
      http3Port: 0,
      fetch: async (request) => {
        const key = new URL(request.url).pathname
        got.set(key, 'waiting')
        if (readAfterMs > 0) {
          await sleep(readAfterMs)
          if (key === '/unread') return new globalThis.Response('nobody listens')
        }
        const signal = request.signal
        const t0 = Date.now()
        await new Promise<void>((resolve) => {
          signal.addEventListener('abort', () => resolve(), { once: true })
          setTimeout(resolve, 5000)
        })
        got.set(key, signal.aborted ? `aborted ${(signal.reason as Error).name} ${Date.now() - t0}` : 'not aborted')
        return new globalThis.Response('late')
      },
    })
  }

  it.skipIf(!requireTool('aioquic'))('request.signal aborts when an HTTP/3 client closes its connection mid-handler (aioquic)', async () => {
    const got = new Map<string, string>()
    const h3s = await h3SignalServer(got)
    try {
      // The whole request arrived; the client closes its QUIC connection while the handler waits.
      await h3(h3s.http3Port as number, [{ path: '/gone' }], { abandonAfterMs: 400 })
      await until(() => got.get('/gone')?.startsWith('aborted') === true, 4000)
      expect(got.get('/gone')).toMatch(/^aborted AbortError /)
    } finally {
      await h3s.close()
    }
  })

  /**
   * POSTs `bodySize` bytes of a longer body over HTTP/3 (aioquic) and
   * resets the stream (with STOP_SENDING) 400 ms in, staying connected 3 s
   * more: the handler's signal must fire well before that.
   */
  async function expectResetSeen(path: string, bodySize: number): Promise<void> {
    const got = new Map<string, string>()
    const h3s = await h3SignalServer(got)
    try {
      const client = h3(h3s.http3Port as number, [
        { method: 'POST', path, headers: { 'content-length': '5000000' }, body_size: bodySize, hold_body: true, reset_after_ms: 400, linger_ms: 3000 },
      ])
      await until(() => got.get(path) !== undefined, 4000)
      const t0 = Date.now()
      await until(() => got.get(path)?.startsWith('aborted') === true, 4000)
      expect(Date.now() - t0).toBeLessThan(2500)
      expect((await client).responses[0]).toMatchObject({ cancelled: true })
    } finally {
      await h3s.close()
    }
  }

  it.skipIf(!requireTool('aioquic'))('request.signal aborts when an HTTP/3 client resets its request stream mid-body (aioquic)', async () => {
    // Past 64 KiB of body the request reaches the handler; all 100 KB fit
    // the core's buffers.
    await expectResetSeen('/reset', 100_000)
  })

  it.skipIf(!requireTool('aioquic'))('request.signal aborts when an HTTP/3 client resets its request stream while its upload is held back (aioquic)', async () => {
    // 2 MB sent to a handler that reads none of it: most waits in QUIC flow
    // control, and the reset is still seen at once.
    await expectResetSeen('/held', 2_000_000)
  })

  it.skipIf(!requireTool('aioquic'))('request.signal aborts when an HTTP/3 client stops its stream after the whole request (aioquic)', async () => {
    const got = new Map<string, string>()
    const h3s = await h3SignalServer(got)
    try {
      // The whole request arrived; the client stops the response 400 ms in and stays connected 3 s more.
      const client = h3(h3s.http3Port as number, [{ path: '/stopped', stop_after_ms: 400, linger_ms: 3000 }])
      await until(() => got.get('/stopped') !== undefined, 4000)
      const t0 = Date.now()
      await until(() => got.get('/stopped')?.startsWith('aborted') === true, 4000)
      expect(got.get('/stopped')).toMatch(/^aborted AbortError /)
      expect(Date.now() - t0).toBeLessThan(2500)
      expect((await client).responses[0]).toMatchObject({ stopped: true })
      // The server keeps serving on that port, and holds no request.
      const again = await h3(h3s.http3Port as number, [{ path: '/again', stop_after_ms: 50 }])
      expect(again.responses[0]).toMatchObject({ stopped: true })
      await until(() => h3s.stats().heldResponders === 0 && h3s.stats().pending === 0, 4000)
    } finally {
      await h3s.close()
    }
  })

  it.skipIf(!requireTool('aioquic'))('request.signal read after an HTTP/3 client stopped its stream is aborted; unread, the request still ends (aioquic)', async () => {
    // The stop is watched only from the first read of the signal on: one
    // that came before must be found then.
    const got = new Map<string, string>()
    const h3s = await h3SignalServer(got, 800)
    try {
      // Stopped 200 ms in; the handler reads the signal 800 ms in; the
      // connection stays open until 1.7 s, so only the stop can abort it
      // within 500 ms of the read.
      const client = h3(h3s.http3Port as number, [{ path: '/late', stop_after_ms: 200, linger_ms: 1500 }])
      await until(() => got.get('/late')?.startsWith('aborted') === true || got.get('/late') === 'not aborted', 5000)
      const [, name, ms] = (got.get('/late') as string).split(' ')
      expect(name).toBe('AbortError')
      expect(Number(ms)).toBeLessThan(500)
      expect((await client).responses[0]).toMatchObject({ stopped: true })
      // A handler that never reads it answers a stopped stream: nothing is held.
      const unread = await h3(h3s.http3Port as number, [{ path: '/unread', stop_after_ms: 200, linger_ms: 700 }])
      expect(unread.responses[0]).toMatchObject({ stopped: true })
      await until(() => h3s.stats().heldResponders === 0 && h3s.stats().pending === 0, 4000)
      const ok = await h3(h3s.http3Port as number, [{ path: '/unread' }])
      expect(ok.responses[0]).toMatchObject({ status: 200, body: 'nobody listens' })
    } finally {
      await h3s.close()
    }
  })

  it('request.signal aborts when the client resets its HTTP/2 stream mid-handler', async () => {
    const session = http2.connect(s.url)
    try {
      const st = session.request({ ':path': '/wait' })
      st.on('error', () => {})
      await until(() => events.includes('waiting'))
      st.close(http2.constants.NGHTTP2_CANCEL)
      await until(() => events.length === 2, 4000)
      expect(events).toEqual(['waiting', 'aborted'])
    } finally {
      session.close()
    }
  })


})

describe('a 1 GB upload', () => {
  let app: AppProcess | undefined
  afterAll(() => {
    if (app && app.child.exitCode === null) process.kill(app.pid, 'SIGKILL')
  })

  function rssMb(pid: number): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return Number(m?.[1] ?? 0) / 1024
  }

  it.skipIf(process.platform !== 'linux')('goes to a file stream with the server RSS bounded', async () => {
    app = await startApp('upload-sink.ts', {})
    const { port, pid } = app
    // Warm up (code paths, allocator), then take the baseline.
    expect(await (await fetch(`http://127.0.0.1:${port}/ping`)).text()).toBe('pong')
    const baseline = rssMb(pid)
    const total = 1024 * 1024 * 1024
    let peak = baseline
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 50)
    const t0 = Date.now()
    const result = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/sink', method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        let text = ''
        res.on('data', (c: Buffer) => (text += c.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      })
      req.on('error', reject)
      // Generated on the fly: one 1 MiB block written again and again.
      feed(req, Buffer.alloc(1024 * 1024, 0x5a), total)
    }).finally(() => clearInterval(sampler))
    const seconds = (Date.now() - t0) / 1000
    expect(result.status).toBe(200)
    expect(JSON.parse(result.text)).toEqual({ bytes: total, streamed: true })
    // Whole, the body alone would add 1024 MB.
    console.log(`1 GB upload: ${seconds.toFixed(1)} s, server RSS ${baseline.toFixed(0)} MB before, ${peak.toFixed(0)} MB at peak`)
    expect(peak - baseline).toBeLessThan(96)
  }, 120_000)
})
