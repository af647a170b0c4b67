/**
 * How a TLS server ends a connection, seen by clients that tell a clean
 * TLS close (close_notify alert, RFC 8446 §6.1) from a bare TCP FIN:
 *
 * - `closeProbe`: Python's ssl module with `suppress_ragged_eofs=False`,
 *   speaking HTTP/1.1 or HTTP/2 (raw frames: preface, SETTINGS, one GET,
 *   SETTINGS and, unless told not to, PINGs acknowledged as a client must);
 * - `recordTail`: a TCP relay that keeps the server's bytes, for a Node
 *   client pinned to TLS 1.2, where an alert record's outer type (21)
 *   shows on the wire (TLS 1.3 hides every record type).
 */
import { spawn } from 'node:child_process'
import net from 'node:net'

const PROBE = `
import socket, ssl, struct, sys
port, mode, close, ack = int(sys.argv[1]), sys.argv[2], sys.argv[3] == '1', sys.argv[5] == '1'
ctx = ssl.create_default_context(cafile=sys.argv[4])
ctx.set_alpn_protocols([mode == 'h2' and 'h2' or 'http/1.1'])
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', port)), server_hostname='localhost', suppress_ragged_eofs=False)
s.settimeout(8)
def finish():
    try:
        while True:
            if not s.recv(65536):
                print('close_notify'); return
    except ssl.SSLEOFError:
        print('ragged')
if mode == 'h1':
    s.sendall(b'GET /small HTTP/1.1\\r\\nhost: localhost\\r\\n' + (b'connection: close\\r\\n' if close else b'') + b'\\r\\n')
    data = b''
    while b'\\r\\n\\r\\nok' not in data:
        data += s.recv(65536)
    print(data.split(b'\\r\\n')[0].decode(), flush=True)
    finish()
    sys.exit(0)
print('alpn', s.selected_alpn_protocol(), flush=True)
def frame(t, flags, sid, payload=b''):
    return struct.pack('>I', len(payload))[1:] + bytes([t, flags]) + struct.pack('>I', sid) + payload
# GET https://localhost/small: :method GET, :scheme https, :path (literal), :authority (literal).
block = b'\\x82\\x87\\x04\\x06/small\\x01\\x09localhost'
s.sendall(b'PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n' + frame(4, 0, 0) + frame(1, 5, 1, block))
buf, said = b'', set()
def say(word):
    if word not in said:
        said.add(word); print(word, flush=True)
try:
    while True:
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], 'big')
            if len(buf) < 9 + n: break
            t, flags, sid, payload = buf[3], buf[4], int.from_bytes(buf[5:9], 'big') & 0x7fffffff, buf[9:9 + n]
            buf = buf[9 + n:]
            if t == 4 and not flags & 1: s.sendall(frame(4, 1, 0))
            if t == 6 and not flags & 1 and ack: s.sendall(frame(6, 1, 0, payload))
            if t == 1 and sid == 1: say('status %s' % (payload[:1] == b'\\x88' and '200' or payload[:1].hex()))
            if t == 0 and sid == 1 and flags & 1: say('end of stream')
            if t == 7: say('goaway')
        chunk = s.recv(65536)
        if not chunk:
            print('close_notify'); break
        buf += chunk
except ssl.SSLEOFError:
    print('ragged')
`

/**
 * Runs the Python client against `port` (`mode`: ALPN `http/1.1` or `h2`;
 * `close`: HTTP/1.1 `Connection: close`) and resolves with the lines it
 * printed once the server ended the connection: for HTTP/1.1 the status
 * line, then `close_notify` or `ragged`; for HTTP/2 `alpn h2`, `status
 * 200`, `end of stream`, `goaway`, then `close_notify` or `ragged`.
 * `ackPings: false`: the HTTP/2 client never acknowledges a PING (so never
 * completes a graceful GOAWAY). `onAnswer` runs once the answer has arrived.
 */
export function closeProbe(
  port: number,
  caFile: string,
  opts: { mode: 'h1' | 'h2'; close?: boolean; ackPings?: boolean; onAnswer?: () => void },
): Promise<string[]> {
  let onAnswer = opts.onAnswer
  const ready = opts.mode === 'h1' ? 'HTTP/1.1' : 'end of stream'
  return new Promise((resolve, reject) => {
    const args = ['-c', PROBE, String(port), opts.mode, opts.close ? '1' : '0', caFile, opts.ackPings === false ? '0' : '1']
    const child = spawn('python3', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      if (onAnswer && out.includes(ready)) {
        const f = onAnswer
        onAnswer = undefined
        f()
      }
    })
    child.stderr.on('data', (c: Buffer) => (err += c.toString()))
    child.on('exit', (code) => {
      clearTimeout(timer)
      if (code !== 0) reject(new Error(`python3 exited with ${code}: ${err}`))
      else resolve(out.trim().split('\n'))
    })
  })
}

/** A relay on a free port to `target`, keeping what the server sends. */
export interface RecordingRelay {
  port: number
  /** Resolves with the server's bytes once the server has ended its side. */
  serverBytes(): Promise<Buffer>
  close(): Promise<void>
}

/** Starts a relay for one connection to `127.0.0.1:target`. */
export function recordingRelay(target: number): Promise<RecordingRelay> {
  const chunks: Buffer[] = []
  let ended: (b: Buffer) => void = () => {}
  const done = new Promise<Buffer>((r) => (ended = r))
  const sockets: net.Socket[] = []
  // Half-open allowed both ways: the client may end its side first, and
  // the server's last records (close_notify among them) still pass.
  const relay = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ port: target, host: '127.0.0.1', allowHalfOpen: true })
    sockets.push(client, upstream)
    upstream.on('data', (c: Buffer) => chunks.push(c))
    upstream.on('end', () => ended(Buffer.concat(chunks)))
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
  })
  return new Promise((resolve) => {
    relay.listen(0, '127.0.0.1', () => {
      resolve({
        port: (relay.address() as net.AddressInfo).port,
        serverBytes: () => done,
        close: () =>
          new Promise((r) => {
            for (const s of sockets) s.destroy()
            relay.close(() => r())
          }),
      })
    })
  })
}

/** The outer content types of the TLS records in `wire`, in order. */
export function recordTypes(wire: Buffer): number[] {
  const types: number[] = []
  let off = 0
  while (off + 5 <= wire.length) {
    types.push(wire.readUInt8(off))
    off += 5 + wire.readUInt16BE(off + 3)
  }
  if (off !== wire.length) throw new Error(`a partial TLS record at ${off} of ${wire.length} bytes`)
  return types
}
