/**
 * The TLS write path after the handshake: the server keeps TLS 1.3's
 * session tickets back until its first answer and queues close_notify
 * behind the last answer, so that each leaves in the same write as an
 * answer. Seen by Python's ssl module (`suppress_ragged_eofs=False`, so a
 * close without close_notify is reported): the tickets must still arrive
 * (a later connection resumes with them) and in the right order, before a
 * request sent at once, a request sent late, a route-cache hit, pipelined
 * requests and a `Connection: close` answer; a TLS 1.2 client, whose
 * handshake ends with the server's Finished, must get it at once.
 */
import { spawn } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { makeCerts, type TestCerts } from './certs.js'
import { listen, requireTool } from './helpers/index.js'

const PROBE = `
import socket, ssl, sys, time
port, cafile = int(sys.argv[1]), sys.argv[2]
def context(v12=False):
    c = ssl.create_default_context(cafile=cafile)
    c.set_alpn_protocols(['http/1.1'])
    if v12: c.maximum_version = ssl.TLSVersion.TLSv1_2
    return c
def connect(c, session=None):
    s = c.wrap_socket(socket.create_connection(('127.0.0.1', port)), server_hostname='localhost',
                      suppress_ragged_eofs=False, session=session)
    s.settimeout(4)
    return s
def request(path, close=False):
    return ('GET %s HTTP/1.1\\r\\nhost: localhost\\r\\n%s\\r\\n' % (path, close and 'connection: close\\r\\n' or '')).encode()
def answers(s, n):
    # n content-length framed answers; returns their bodies.
    data, bodies = b'', []
    while len(bodies) < n:
        while True:
            end = data.find(b'\\r\\n\\r\\n')
            if end < 0: break
            head = data[:end].decode('latin1')
            assert head.startswith('HTTP/1.1 200 '), head
            length = int([l.split(':')[1] for l in head.split('\\r\\n') if l.lower().startswith('content-length:')][0])
            if len(data) < end + 4 + length: break
            bodies.append(data[end + 4:end + 4 + length].decode())
            data = data[end + 4 + length:]
            if len(bodies) == n: break
        if len(bodies) < n:
            chunk = s.recv(65536)
            assert chunk, 'closed after %d answers' % len(bodies)
            data += chunk
    return bodies
def ending(s):
    try:
        while True:
            if not s.recv(65536): return 'close_notify'
    except ssl.SSLEOFError:
        return 'ragged'
def resumes(c, session):
    s = connect(c, session)
    s.sendall(request('/js', True))
    body = answers(s, 1)[0]
    return '%s %s %s' % (s.session_reused, body, ending(s))
c13 = context()
# 1. Connection: close at once (JS handler): answer, close_notify, tickets that resume.
s = connect(c13)
s.sendall(request('/js', True))
print('close', s.version(), answers(s, 1)[0], ending(s), flush=True)
print('resumed', resumes(c13, s.session), flush=True)
# 2. A request sent late, keep-alive, then pipelined with a close at the end.
s = connect(c13)
time.sleep(0.15)
s.sendall(request('/cached'))
first = answers(s, 1)[0]
s.sendall(request('/js') + request('/cached') + request('/js', True))
print('late', first, ','.join(answers(s, 3)), ending(s), flush=True)
print('resumed', resumes(c13, s.session), flush=True)
# 3. A route-cache hit first, Connection: close.
s = connect(c13)
s.sendall(request('/cached', True))
print('cached', answers(s, 1)[0], ending(s), flush=True)
print('resumed', resumes(c13, s.session), flush=True)
# 4. TLS 1.2: the server's Finished is not held back (this would time out).
s = connect(context(True))
s.sendall(request('/js'))
print('tls12', s.version(), answers(s, 1)[0], flush=True)
s.sendall(request('/js', True))
print('tls12', answers(s, 1)[0], ending(s), flush=True)
`

function probe(port: number, caFile: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', PROBE, String(port), caFile], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    child.stdout.on('data', (c: Buffer) => (out += c.toString()))
    child.stderr.on('data', (c: Buffer) => (err += c.toString()))
    child.on('exit', (code) => {
      clearTimeout(timer)
      if (code !== 0) reject(new Error(`python3 exited with ${code}: ${err}\n${out}`))
      else resolve(out.trim().split('\n'))
    })
  })
}

const ready = requireTool('openssl') && requireTool('python3')

describe.skipIf(!ready)('TLS write path: tickets and close_notify joined to the answers', () => {
  let certs: TestCerts
  let server: Server
  beforeAll(async () => {
    certs = makeCerts()
    const app = new App()
    app.get('/js', () => new Response('js'))
    app.get('/cached', () => new Response('cached'), { cache: { ttl: 60 } })
    server = await listen(app, { tls: { cert: certs.certFile, key: certs.keyFile } })
  })
  afterAll(async () => {
    await server?.close()
    certs?.cleanup()
  })

  it('delivers tickets, answers in order and close_notify, and TLS 1.2 handshakes at once', async () => {
    expect(await probe(server.port, `${certs.dir}/ca.pem`)).toEqual([
      'close TLSv1.3 js close_notify',
      'resumed True js close_notify',
      'late cached js,cached,js close_notify',
      'resumed True js close_notify',
      'cached cached close_notify',
      'resumed True js close_notify',
      'tls12 TLSv1.2 js',
      'tls12 js close_notify',
    ])
  })
})
