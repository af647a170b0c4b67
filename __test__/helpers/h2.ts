/**
 * HTTP/2 helpers: a connected node:http2 session and one request on it,
 * and raw frames for sequences a well-behaved client will not send.
 */
import http2 from 'node:http2'

/** The HTTP/2 client connection preface. */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')

/** One raw HTTP/2 frame (9-byte header + payload), for hostile sequences. */
export function h2frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(stream & 0x7fffffff, 5)
  return Buffer.concat([head, payload])
}

/** One HTTP/2 stream: status and body. Errors after the response head (a
 * stream reset by the server after an early answer, as a 413 does) count
 * as the end of the body. */
export function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined })
    const chunks: Buffer[] = []
    let status = 0
    req.on('response', (h) => (status = Number(h[':status'])))
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve({ status, body: Buffer.concat(chunks) }))
    req.on('error', (e) => (status ? resolve({ status, body: Buffer.concat(chunks) }) : reject(e)))
    req.on('close', () =>
      status ? resolve({ status, body: Buffer.concat(chunks) }) : reject(new Error(`stream closed, code ${req.rstCode}`)),
    )
    if (body !== undefined) req.end(body)
  })
}

/** A node:http2 session to `url`, once connected. */
export const h2Connect = (url: string) =>
  new Promise<http2.ClientHttp2Session>((resolve, reject) => {
    const s = http2.connect(url)
    s.once('connect', () => resolve(s))
    s.once('error', reject)
  })
