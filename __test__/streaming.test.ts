/**
 * Streamed response bodies: async generators, Node `Readable`s and web
 * `ReadableStream`s sent chunked (HTTP/1.1) or as DATA frames (HTTP/2);
 * a producer that throws aborts the connection and reaches `onError`; a
 * slow reader holds the producer back (memory stays bounded); a client that
 * leaves stops the producer.
 *
 * The bulk run moves 200 MB by default; set HTTPY_STREAM_MB=1024 for 1 GB.
 */
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import { Readable } from 'node:stream'
import { ReadableStream } from 'node:stream/web'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { listen } from './helpers/index.js'

const TOTAL_MB = Number(process.env.HTTPY_STREAM_MB ?? 200)
const CHUNK = 64 * 1024
let server: Server
let url: string
const errors: unknown[] = []
let produced = 0
let finished = false
let bulkClosed = false

beforeAll(async () => {
  const app = new App()
  app.get('/gen', () => {
    async function* gen() {
      yield 'hello '
      yield new TextEncoder().encode('streamed ')
      yield Buffer.from('world')
    }
    return new Response(gen(), { headers: { 'content-type': 'text/plain' } })
  })
  app.get('/readable', () => new Response(Readable.from(['a', 'b', 'c'].map((s) => s.repeat(10000)))))
  app.get('/web', () => {
    let i = 0
    const rs = new ReadableStream<Uint8Array>({
      pull(c) {
        if (i++ < 5) c.enqueue(new Uint8Array(1000).fill(65 + i))
        else c.close()
      },
    })
    return new Response(rs)
  })
  app.get('/throws', () => {
    async function* gen() {
      yield 'x'.repeat(100_000)
      await new Promise((r) => setTimeout(r, 20))
      throw new Error('source failed midway')
    }
    return new Response(gen())
  })
  app.get('/bad-chunk', () => {
    async function* gen() {
      yield 'ok'
      yield 42 as unknown as string
    }
    return new Response(gen())
  })
  app.get('/bulk', (req) => {
    const total = Number(req.query.get('mb')) * 1024 * 1024
    const chunk = Buffer.alloc(CHUNK, 120)
    produced = 0
    finished = false
    bulkClosed = false
    async function* gen() {
      try {
        while (produced < total) {
          produced += CHUNK
          yield chunk
        }
        finished = true
      } finally {
        bulkClosed = true
      }
    }
    return new Response(gen(), { headers: { 'content-type': 'application/octet-stream' } })
  })
  server = await listen(app, { onError: (e) => errors.push(e) })
  url = server.url
})

afterAll(async () => {
  await server?.close()
})

async function text(path: string): Promise<{ status: number; te: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(`${url}${path}`, (res) => {
        let body = ''
        res.setEncoding('latin1')
        res.on('data', (c: string) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, te: res.headers['transfer-encoding'], body }))
        res.on('error', reject)
      })
      .on('error', reject)
  })
}

describe('streamed responses', () => {
  it('sends async iterables, Readables and ReadableStreams chunked', async () => {
    const g = await text('/gen')
    expect(g.status).toBe(200)
    expect(g.te).toBe('chunked')
    expect(g.body).toBe('hello streamed world')
    expect((await text('/readable')).body).toBe('a'.repeat(10000) + 'b'.repeat(10000) + 'c'.repeat(10000))
    expect((await text('/web')).body).toBe('B'.repeat(1000) + 'C'.repeat(1000) + 'D'.repeat(1000) + 'E'.repeat(1000) + 'F'.repeat(1000))
  })

  it('streams over HTTP/2 as DATA frames', async () => {
    const client = http2.connect(url)
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = client.request({ ':path': '/readable' })
        let s = ''
        req.setEncoding('latin1')
        req.on('data', (c: string) => (s += c))
        req.on('end', () => resolve(s))
        req.on('error', reject)
        req.end()
      })
      expect(body.length).toBe(30000)
    } finally {
      client.close()
    }
  })

  it('aborts the connection when the producer throws, and reports it', async () => {
    const n = errors.length
    const outcome = await new Promise<string>((resolve) => {
      http
        .get(`${url}/throws`, (res) => {
          let got = 0
          res.on('data', (c: Buffer) => (got += c.length))
          res.on('end', () => resolve(`complete ${got}`))
          res.on('aborted', () => resolve('aborted'))
          res.on('error', () => resolve('aborted'))
        })
        .on('error', () => resolve('aborted'))
    })
    expect(outcome).toBe('aborted')
    await new Promise((r) => setTimeout(r, 50))
    expect(errors.length).toBe(n + 1)
    expect(String((errors[n] as Error).message)).toMatch(/source failed midway/)
    // A raw reader never sees the terminating zero-length chunk.
    const raw = await new Promise<string>((resolve) => {
      const s = net.connect(server.port, '127.0.0.1')
      let buf = ''
      s.setEncoding('latin1')
      s.on('data', (c: string) => (buf += c))
      s.on('close', () => resolve(buf))
      s.on('error', () => {})
      s.write('GET /throws HTTP/1.1\r\nHost: x\r\n\r\n')
    })
    expect(raw).toMatch(/^HTTP\/1\.1 200/)
    expect(raw.endsWith('0\r\n\r\n')).toBe(false)
    // The server keeps serving.
    expect((await text('/gen')).body).toBe('hello streamed world')
  })

  it('resets the HTTP/2 stream when the producer throws', async () => {
    const client = http2.connect(url)
    try {
      const outcome = await new Promise<string>((resolve) => {
        const req = client.request({ ':path': '/throws' })
        req.on('data', () => {})
        req.on('end', () => resolve(req.rstCode === 0 ? 'complete' : `reset ${req.rstCode}`))
        req.on('error', () => resolve(`reset ${req.rstCode}`))
        req.on('close', () => resolve(req.rstCode === 0 ? 'complete' : `reset ${req.rstCode}`))
        req.end()
      })
      expect(outcome).toBe(`reset ${http2.constants.NGHTTP2_INTERNAL_ERROR}`)
    } finally {
      client.close()
    }
  })

  it('rejects a chunk that is not bytes or text with an abort and onError', async () => {
    const n = errors.length
    const r = await new Promise<string>((resolve) => {
      http
        .get(`${url}/bad-chunk`, (res) => {
          res.on('data', () => {})
          res.on('end', () => resolve('complete'))
          res.on('aborted', () => resolve('aborted'))
          res.on('error', () => resolve('aborted'))
        })
        .on('error', () => resolve('aborted'))
    })
    expect(r).toBe('aborted')
    await new Promise((r) => setTimeout(r, 50))
    expect((errors[n] as { code?: string }).code).toBe('ERR_HTTPY_INVALID_RESPONSE')
  })

  it(`issue-7: holds a fast producer back for a slow reader and keeps memory bounded (${TOTAL_MB} MB)`, async () => {
    const total = TOTAL_MB * 1024 * 1024
    const rssBefore = process.memoryUsage().rss
    let received = 0
    let maxAhead = 0
    let maxRss = 0
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${url}/bulk?mb=${TOTAL_MB}`, (res) => {
        // Phase 1: a stalled reader for a while; the producer must stop.
        res.pause()
        setTimeout(() => {
          maxAhead = Math.max(maxAhead, produced - received)
          res.on('data', (c: Buffer) => {
            received += c.length
            if ((received & (16 * 1024 * 1024 - 1)) < c.length) {
              maxAhead = Math.max(maxAhead, produced - received)
              maxRss = Math.max(maxRss, process.memoryUsage().rss)
            }
          })
          res.on('end', () => resolve())
          res.on('error', reject)
          res.resume()
        }, 700)
      })
      req.on('error', reject)
      req.setTimeout(120_000, () => req.destroy(new Error('bulk stream timed out')))
    })
    expect(received).toBe(total)
    expect(finished).toBe(true)
    // Socket buffers on both sides plus the core's few chunks: a few MB at
    // most, not the whole stream.
    expect(maxAhead).toBeLessThan(16 * 1024 * 1024)
    expect(maxRss - rssBefore).toBeLessThan(150 * 1024 * 1024)
  }, 180_000)

  it('stops the producer when the client goes away', async () => {
    await new Promise<void>((resolve) => {
      const req = http.get(`${url}/bulk?mb=1000`, (res) => {
        res.once('data', () => {
          req.destroy()
          resolve()
        })
      })
      req.on('error', () => {})
    })
    const deadline = Date.now() + 5000
    while (!bulkClosed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(bulkClosed).toBe(true)
    expect(finished).toBe(false)
    expect(produced).toBeLessThan(100 * 1024 * 1024)
  })
})
