/**
 * RFC 9113 §4.2 on the cleartext port: the server advertises
 * SETTINGS_MAX_FRAME_SIZE 65,536; a frame larger than that ends the
 * connection with GOAWAY(FRAME_SIZE_ERROR), for HEADERS, DATA and
 * CONTINUATION alike; a frame of exactly that size is accepted. (On this
 * port an invalid preface falls back to HTTP/1.1, a 400.)
 */
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { H2_PREFACE, h2frame, listen } from './helpers/index.js'

const FRAME_SIZE_ERROR = 0x6
const ADVERTISED = 65_536

let server: Server
beforeAll(async () => {
  server = await listen(new App().post('/', (req) => Response.text(String(req.body.length))).get('/', () => Response.text('ok')))
})
afterAll(async () => {
  await server?.close()
})

interface Seen {
  settings: Buffer | undefined
  goaway: number | undefined
  /** Streams the server sent HEADERS on. */
  headersOn: number[]
  closed: boolean
}

/** Sends the preface and `frames`; collects the server's SETTINGS payload, the first GOAWAY code, and the close. */
async function exchange(frames: Buffer[], waitMs = 5000): Promise<Seen> {
  const sock = net.connect(server.port, '127.0.0.1')
  await new Promise((r) => sock.once('connect', r))
  const seen: Seen = { settings: undefined, goaway: undefined, headersOn: [], closed: false }
  let got = Buffer.alloc(0)
  sock.on('data', (c: Buffer) => {
    got = Buffer.concat([got, c])
    for (let at = 0; at + 9 <= got.length; ) {
      const len = got.readUIntBE(at, 3)
      if (at + 9 + len > got.length) break
      const type = got[at + 3]
      if (type === 0x4 && ((got[at + 4] as number) & 1) === 0 && !seen.settings) seen.settings = got.subarray(at + 9, at + 9 + len)
      if (type === 0x7 && seen.goaway === undefined) seen.goaway = got.readUInt32BE(at + 9 + 4)
      if (type === 0x1) seen.headersOn.push(got.readUInt32BE(at + 5) & 0x7fffffff)
      got = got.subarray(at + 9 + len)
      at = 0
    }
  })
  sock.on('error', () => {})
  const closed = new Promise<void>((r) => sock.once('close', () => r()))
  sock.write(Buffer.concat([H2_PREFACE, h2frame(0x4, 0, 0), ...frames]))
  await Promise.race([closed, new Promise((r) => setTimeout(r, waitMs))])
  seen.closed = sock.destroyed || sock.readableEnded
  sock.destroy()
  return seen
}

/** A HEADERS block for `POST /` (literal fields without indexing, lengths < 127). */
function postHeaders(): Buffer {
  const field = (name: string, value: string) => Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)])
  return Buffer.concat([field(':method', 'POST'), field(':scheme', 'http'), field(':path', '/'), field(':authority', 'localhost')])
}

describe('HTTP/2 frame size (h2c)', () => {
  it('advertises SETTINGS_MAX_FRAME_SIZE 65,536', async () => {
    const seen = await exchange([h2frame(0x7, 0, 0, Buffer.alloc(8))])
    const s = seen.settings as Buffer
    const values = new Map<number, number>()
    for (let at = 0; at + 6 <= s.length; at += 6) values.set(s.readUInt16BE(at), s.readUInt32BE(at + 2))
    expect(values.get(0x5)).toBe(ADVERTISED)
  })

  for (const [name, frame] of [
    ['HEADERS', () => h2frame(0x1, 0x4, 1, Buffer.alloc(ADVERTISED + 1, 0x40))],
    ['DATA', () => Buffer.concat([h2frame(0x1, 0x4, 1, postHeaders()), h2frame(0x0, 0x1, 1, Buffer.alloc(ADVERTISED + 1))])],
    ['CONTINUATION', () => Buffer.concat([h2frame(0x1, 0x0, 1, postHeaders()), h2frame(0x9, 0x4, 1, Buffer.alloc(ADVERTISED + 1, 0x40))])],
    ['an unknown type', () => h2frame(0xfa, 0, 0, Buffer.alloc(ADVERTISED + 1))],
  ] as const) {
    it(`${name} frame of 65,537 bytes: GOAWAY(FRAME_SIZE_ERROR) and close`, async () => {
      const seen = await exchange([frame()])
      expect(seen.goaway).toBe(FRAME_SIZE_ERROR)
      expect(seen.closed).toBe(true)
    })
  }

  it('a frame of exactly 65,536 bytes is accepted: an unknown type is ignored and the next request is answered', async () => {
    const get = Buffer.concat([Buffer.from([0x82, 0x86, 0x84]), Buffer.from([0x01, 9]), Buffer.from('localhost')])
    const seen = await exchange([h2frame(0xfa, 0, 0, Buffer.alloc(ADVERTISED)), h2frame(0x1, 0x5, 1, get)], 1500)
    expect(seen.goaway).toBeUndefined()
    expect(seen.headersOn).toContain(1)
    expect((await fetch(`${server.url}/`)).status).toBe(200)
  })
})
