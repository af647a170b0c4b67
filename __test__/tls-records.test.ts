/**
 * HTTP/1.1 over TLS at the record level: an answer larger than one TLS
 * record (16 KiB) arrives whole and in order, from a buffer and from a
 * stream; pipelined requests, in one record or in many records of one
 * TCP segment, are answered in order (route-cache hits and JS handlers
 * mixed); and the server ends a TLS connection with a close_notify alert
 * whether it closes after `Connection: close`, at the keep-alive timeout
 * or at a graceful `server.close()` (checked by Python's ssl module, which
 * tells a clean TLS close from a bare TCP FIN).
 */
import { createHash } from 'node:crypto'
import https from 'node:https'
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import { listen, requireTool } from './helpers/index.js'
import { closeProbe } from './helpers/tls-close.js'

/** 1 MiB that is not periodic at any record boundary. */
const BIG = Buffer.alloc(1 << 20)
for (let i = 0, x = 1; i < BIG.length; i++) {
  x = (x * 1103515245 + 12345) >>> 0
  BIG[i] = x >>> 24
}
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

function get(port: number, path: string, ca: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', servername: 'localhost', port, path, ca, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')))
  })
}

/**
 * Sends `requests` on one TLS connection (`oneRecord`: as one write, so
 * one record; else one write each, corked into one TCP segment) and
 * reads `requests.length` answers (content-length framed), returning
 * their bodies in arrival order.
 */
function pipelined(port: number, ca: string, requests: string[], oneRecord: boolean): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ALPNProtocols: ['http/1.1'] }, () => {
      if (oneRecord) {
        sock.write(requests.join(''))
      } else {
        sock.cork()
        for (const r of requests) sock.write(r)
        process.nextTick(() => sock.uncork())
      }
    })
    const bodies: string[] = []
    let buf = Buffer.alloc(0)
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new Error(`timeout after ${bodies.length} of ${requests.length} answers`))
    }, 10_000)
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c])
      for (;;) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = buf.subarray(0, end).toString('latin1')
        const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN)
        if (!head.startsWith('HTTP/1.1 200 ') || !Number.isInteger(len)) {
          clearTimeout(timer)
          sock.destroy()
          reject(new Error(`unexpected answer head: ${head}`))
          return
        }
        if (buf.length < end + 4 + len) return
        bodies.push(buf.subarray(end + 4, end + 4 + len).toString())
        buf = buf.subarray(end + 4 + len)
        if (bodies.length === requests.length) {
          clearTimeout(timer)
          sock.end()
          resolve(bodies)
          return
        }
      }
    })
    sock.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })
}

const haveOpenssl = requireTool('openssl')
const havePython = requireTool('python3')

describe.skipIf(!haveOpenssl)('TLS records', () => {
  let certs: TestCerts
  let server: Server
  beforeAll(async () => {
    certs = makeCerts()
    const app = new App()
    app.get('/big', () => new Response(BIG, { headers: { 'content-type': 'application/octet-stream' } }))
    app.get('/big-stream', () => {
      let off = 0
      const stream = new ReadableStream<Uint8Array>({
        pull(c) {
          // Pieces that straddle record boundaries: 40,000 bytes each.
          if (off >= BIG.length) return c.close()
          c.enqueue(BIG.subarray(off, Math.min(off + 40_000, BIG.length)))
          off += 40_000
        },
      })
      return new Response(stream)
    })
    app.get('/n/{i}', (req) => new Response(`n${req.pathParams.i}`))
    app.get('/cached', () => new Response('cached'), { cache: { ttl: 60 } })
    app.get('/small', () => new Response('ok'))
    server = await listen(app, { keepAliveTimeout: 1, tls: { cert: certs.certFile, key: certs.keyFile } })
  })
  afterAll(async () => {
    await server?.close()
    certs?.cleanup()
  })

  it('sends a 1 MiB answer as many records, whole and in order, from a buffer and from a stream', async () => {
    for (const path of ['/big', '/big-stream']) {
      const r = await get(server.port, path, certs.ca)
      expect(r.status).toBe(200)
      expect(r.body.length).toBe(BIG.length)
      expect(sha(r.body)).toBe(sha(BIG))
    }
  })

  it('answers pipelined requests in order, sent as one record or as one record each', async () => {
    const paths = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? '/cached' : `/n/${i}`))
    const want = paths.map((p) => (p === '/cached' ? 'cached' : `n${p.slice(3)}`))
    const reqs = paths.map((p) => `GET ${p} HTTP/1.1\r\nhost: localhost\r\n\r\n`)
    expect(await pipelined(server.port, certs.ca, reqs, true)).toEqual(want)
    expect(await pipelined(server.port, certs.ca, reqs, false)).toEqual(want)
  })

  describe.skipIf(!havePython)('close_notify', () => {
    const caFile = (): string => `${certs.dir}/ca.pem`

    it('ends a connection with close_notify after Connection: close', async () => {
      expect(await closeProbe(server.port, caFile(), { mode: 'h1', close: true })).toEqual(['HTTP/1.1 200 OK', 'close_notify'])
    })

    it('ends an idle keep-alive connection with close_notify at keepAliveTimeout', async () => {
      const t0 = Date.now()
      expect(await closeProbe(server.port, caFile(), { mode: 'h1' })).toEqual(['HTTP/1.1 200 OK', 'close_notify'])
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900)
      // And the server still serves.
      expect((await get(server.port, '/small', certs.ca)).body.toString()).toBe('ok')
    })

    it('ends an idle keep-alive connection with close_notify at a graceful close', async () => {
      const app = new App()
      app.get('/small', () => new Response('ok'))
      const s = await listen(app, { tls: { cert: certs.certFile, key: certs.keyFile } })
      let closing: Promise<void> | undefined
      const lines = await closeProbe(s.port, caFile(), {
        mode: 'h1',
        onAnswer: () => {
          closing = s.close({ timeout: 5 })
        },
      })
      await closing
      expect(lines).toEqual(['HTTP/1.1 200 OK', 'close_notify'])
    })
  })
})
