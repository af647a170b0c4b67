/**
 * JS answers over TLS encrypted and written by the task that delivers a
 * batch of answers (docs/performance.md §16.5), as on plain TCP
 * (`delivery-write.test.ts`). A batch needs more than one answer, so the
 * handlers wait at a gate that opens when all of a round's requests are
 * in. Seen from node:tls sockets on keep-alive connections: every client
 * gets its own answer, round after round (the TLS records of both writers
 * in sequence, or the client's decryption fails); a request pipelined
 * behind one in flight is answered after it; `stats().directWrites` shows
 * that the path is taken over TLS.
 */
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import { listen, requireTool } from './helpers/index.js'

/** Opens when `n` handlers wait at it; they go on in one microtask. */
class Gate {
  #waiting: Array<() => void> = []
  n = 2
  wait(): Promise<void> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve)
      if (this.#waiting.length >= this.n) {
        const open = this.#waiting
        this.#waiting = []
        for (const r of open) r()
      }
    })
  }
}

/** A keep-alive TLS client that reads content-length framed answers. */
class Client {
  #buf = Buffer.alloc(0)
  #wanted: Array<(body: string) => void> = []
  #failed: (e: Error) => void = () => {}
  constructor(readonly sock: tls.TLSSocket) {
    sock.on('data', (c: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, c])
      for (;;) {
        const end = this.#buf.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = this.#buf.subarray(0, end).toString('latin1')
        const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN)
        if (!head.startsWith('HTTP/1.1 200 ') || !Number.isInteger(len)) {
          this.#failed(new Error(`unexpected answer head: ${head}`))
          return
        }
        if (this.#buf.length < end + 4 + len) return
        const body = this.#buf.subarray(end + 4, end + 4 + len).toString()
        this.#buf = this.#buf.subarray(end + 4 + len)
        this.#wanted.shift()?.(body)
      }
    })
    sock.on('error', (e) => this.#failed(e))
  }
  /** Sends `paths` in one write; resolves with their answers' bodies. */
  get(paths: string[]): Promise<string[]> {
    const answers = paths.map(
      () =>
        new Promise<string>((resolve, reject) => {
          this.#wanted.push(resolve)
          this.#failed = reject
        }),
    )
    this.sock.write(paths.map((p) => `GET ${p} HTTP/1.1\r\nhost: localhost\r\n\r\n`).join(''))
    return Promise.all(answers)
  }
}

function connect(port: number, ca: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ALPNProtocols: ['http/1.1'] }, () =>
      resolve(new Client(sock)),
    )
    sock.once('error', reject)
  })
}

describe.skipIf(!requireTool('openssl'))('TLS answers written by the delivering task', () => {
  const gate = new Gate()
  let certs: TestCerts
  let server: Server
  beforeAll(async () => {
    certs = makeCerts()
    const app = new App()
    app.get('/g/{id}', async (req) => {
      await gate.wait()
      return Response.text(`g${req.pathParams.id}`)
    })
    app.get('/hello', () => Response.text('hello'))
    server = await listen(app, { tls: { cert: certs.certFile, key: certs.keyFile } })
  })
  afterAll(async () => {
    await server?.close()
    certs?.cleanup()
  })

  it('answers rounds of batched requests on keep-alive TLS connections, each its own, in order', async () => {
    const n = 8
    const clients = await Promise.all(Array.from({ length: n }, () => connect(server.port, certs.ca)))
    gate.n = n
    const before = server.stats().directWrites
    for (let round = 0; round < 6; round++) {
      const got = await Promise.all(clients.map((c, i) => c.get([`/g/${i}-${round}`])))
      expect(got).toEqual(clients.map((_, i) => [`g${i}-${round}`]))
    }
    // Taken over TLS (the first round's answers carry the tickets, so they
    // go the driver's way; later rounds can be written directly).
    expect(server.stats().directWrites - before).toBeGreaterThan(0)
    // Pipelined behind a request in flight: answered after it, in order.
    const piped = await Promise.all(clients.map((c, i) => c.get([`/g/p${i}`, '/hello'])))
    expect(piped).toEqual(clients.map((_, i) => [`gp${i}`, 'hello']))
    for (const c of clients) c.sock.destroy()
  })
})
