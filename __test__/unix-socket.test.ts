/**
 * Listening on a Unix domain socket: HTTP/1.1 (node:http, curl) and h2c
 * (node:http2) over it, TLS with both by ALPN, its file mode, a stale socket file replaced, a
 * live one or a regular file refused, the file removed on close, and a
 * real nginx in front with `proxy_pass http://unix:…:`.
 */
import { execFile, spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { listenError } from './helpers/h1.js'
import { startNginx, type Nginx } from './helpers/nginx.js'
import { freePort } from './helpers/proc.js'
import { requireTool } from './helpers/tools.js'

function app(): App {
  return new App()
    .get('/who', (req) => Response.json({ version: req.httpVersion, ip: req.ip, peer: req.remoteAddress }))
    .post('/echo', async (req) => Response.text(await req.text()))
}

/** One request with node:http to `where` (a socket path, or host and port); status and body. */
function send(where: http.RequestOptions, path: string, method = 'GET', body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...where, path, method, agent: false }, (res) => {
      let out = ''
      res.on('data', (c: Buffer) => (out += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: out }))
    })
    req.setTimeout(5000, () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end(body)
  })
}

const unixGet = (socketPath: string, path: string, method = 'GET', body?: string) => send({ socketPath }, path, method, body)

/** GET /who on an open HTTP/2 session; the body as text. */
function h2Who(session: http2.ClientHttp2Session): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':path': '/who' })
    let out = ''
    s.on('data', (c: Buffer) => (out += c.toString()))
    s.on('end', () => resolve(out))
    s.on('error', reject)
    s.end()
  })
}

const isWindows = process.platform === 'win32'

describe.skipIf(isWindows)('Unix domain sockets', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'httpy-unix-'))
    chmodSync(dir, 0o755) // nginx workers run as an unprivileged user
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('serves HTTP/1.1 and h2c on the path with the given mode, and removes the file on close', async () => {
    const path = join(dir, 'app.sock')
    const server = await app().listen({ path, permissions: 0o660, quiet: true })
    try {
      expect(server.address).toBe(path)
      expect(server.port).toBe(0)
      expect(server.url).toBe(`http+unix://${encodeURIComponent(path)}`)
      const st = statSync(path)
      expect(st.isSocket()).toBe(true)
      expect(st.mode & 0o777).toBe(0o660)

      const r = await unixGet(path, '/who')
      expect(r.status).toBe(200)
      expect(JSON.parse(r.body)).toEqual({ version: '1.1', ip: '127.0.0.1', peer: '127.0.0.1' })
      expect((await unixGet(path, '/echo', 'POST', 'x'.repeat(100_000))).body.length).toBe(100_000)

      // HTTP/2 with prior knowledge over the same socket.
      const session = http2.connect('http://localhost', { createConnection: () => net.connect(path) })
      session.on('error', () => {})
      const h2 = await h2Who(session)
      session.close()
      expect(JSON.parse(h2).version).toBe('2')

      if (requireTool('curl')) {
        // Asynchronously: the handler runs on this process's event loop.
        const out = await new Promise<string>((resolve, reject) =>
          execFile('curl', ['-sS', '--max-time', '5', '--unix-socket', path, 'http://localhost/who'], (err, stdout) =>
            err ? reject(err) : resolve(stdout),
          ),
        )
        expect(JSON.parse(out).version).toBe('1.1')
      }
    } finally {
      await server.close()
    }
    expect(existsSync(path)).toBe(false)
  })

  it('serves TLS on the path: HTTP/1.1 and HTTP/2 chosen by ALPN', async () => {
    const path = join(dir, 'tls.sock')
    const server = await app().listen({ path, quiet: true, tls: 'self-signed' })
    try {
      expect(server.url).toBe(`https+unix://${encodeURIComponent(path)}`)
      const ca = server.certificate as string
      const h1 = await new Promise<string>((resolve, reject) => {
        const req = https.get({ socketPath: path, path: '/who', servername: 'localhost', ca, agent: false }, (res) => {
          let out = ''
          res.on('data', (c: Buffer) => (out += c.toString()))
          res.on('end', () => resolve(out))
        })
        req.setTimeout(5000, () => req.destroy(new Error('timeout')))
        req.on('error', reject)
      })
      expect(JSON.parse(h1).version).toBe('1.1')
      const session = http2.connect('https://localhost', {
        createConnection: () => tls.connect({ path, servername: 'localhost', ca, ALPNProtocols: ['h2'] }),
      })
      session.on('error', () => {})
      const h2 = await h2Who(session)
      session.close()
      expect(JSON.parse(h2).version).toBe('2')
      // A client that does not trust the certificate fails its own handshake only.
      await expect(
        new Promise((resolve, reject) => https.get({ socketPath: path, path: '/who', agent: false }, resolve).on('error', reject)),
      ).rejects.toThrow(/self[- ]signed|certificate/i)
    } finally {
      await server.close()
    }
    expect(existsSync(path)).toBe(false)
  })

  it('replaces a stale socket file, refuses a live socket and a regular file', async () => {
    // A socket file nobody accepts on, as a server killed with SIGKILL leaves it.
    const stale2 = join(dir, 'stale.sock')
    const killed = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(stale2)}, () => console.log('up'))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    await new Promise((r) => killed.stdout?.once('data', r))
    const gone = new Promise((r) => killed.once('exit', r))
    killed.kill('SIGKILL')
    await gone
    expect(statSync(stale2).isSocket()).toBe(true)
    const server = await app().listen({ path: stale2, quiet: true })
    try {
      expect((await unixGet(stale2, '/who')).status).toBe(200)
      // The path is live now: a second server is refused and the first keeps serving.
      const err = await listenError(app(), { path: stale2, quiet: true })
      expect(err?.code).toBe('EADDRINUSE')
      expect(err?.message).toMatch(/another server is accepting on it/)
      expect((await unixGet(stale2, '/who')).status).toBe(200)
    } finally {
      await server.close()
    }
    const regular = join(dir, 'not-a-socket')
    writeFileSync(regular, 'keep me')
    const err = await listenError(app(), { path: regular, quiet: true })
    expect(err?.message).toMatch(/exists and is not a socket/)
    expect(readFileSync(regular, 'utf8')).toBe('keep me')
  })

  it('refuses path with port or workers, and bad permissions, naming the option', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ path: join(dir, 'x.sock'), port: 8080 }, /"path" must be used without "port"/],
      [{ path: join(dir, 'x.sock'), permissions: 0o1777 }, /"permissions" must be an integer from 0 to 511/],
      [{ permissions: 0o600 }, /"permissions" must be used with "path"/],
      [{ path: '/' + 'x'.repeat(120) }, /at most 103 bytes/],
    ]
    for (const [opts, message] of cases) {
      const err = await listenError(app(), { quiet: true, ...opts })
      expect(err?.code).toBe('ERR_HTTPY_INVALID_OPTION')
      expect(err?.message).toMatch(message)
    }
  })

  describe.skipIf(!requireTool('nginx'))('behind nginx: proxy_pass http://unix:', () => {
    let nginx: Nginx | undefined
    let server: Server
    let port: number
    const conf = (): string => join(dir, 'ngx')

    beforeAll(async () => {
      const sock = join(dir, 'behind-nginx.sock')
      // 0666: nginx's workers run as another user.
      server = await app().listen({ path: sock, permissions: 0o666, trustProxy: 'loopback', quiet: true })
      port = await freePort()
      nginx = await startNginx(
        conf(),
        [
          `upstream httpy { server unix:${sock}; keepalive 8; }`,
          'server {',
          `  listen 127.0.0.1:${port};`,
          '  location / {',
          '    proxy_pass http://httpy;',
          '    proxy_http_version 1.1;',
          '    proxy_set_header Connection "";',
          '    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
          '  }',
          '  location /direct/ {',
          `    proxy_pass http://unix:${sock}:/;`,
          '    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
          '  }',
          '}',
        ],
        async () => (await viaNginx('/who')).status === 200,
        512,
      )
    })

    afterAll(async () => {
      await nginx?.stop()
      await server?.close()
    })

    const viaNginx = (path: string, method = 'GET', body?: string) =>
      send({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }, path, method, body)

    it('answers through nginx, with the client address from X-Forwarded-For', async () => {
      // The upstream block speaks HTTP/1.1 with kept-alive connections; the
      // direct form, nginx's default HTTP/1.0.
      for (const [path, version] of [['/who', '1.1'], ['/direct/who', '1.0']]) {
        const r = await viaNginx(path as string)
        expect(r.status, path).toBe(200)
        expect(JSON.parse(r.body), path).toEqual({ version, ip: '127.0.0.2', peer: '127.0.0.1' })
      }
      const big = 'y'.repeat(300_000)
      const echoed = await viaNginx('/echo', 'POST', big)
      expect(echoed.body).toBe(big)
      // Many requests over nginx's kept-alive upstream connections.
      const all = await Promise.all(Array.from({ length: 50 }, () => viaNginx('/who')))
      expect(all.every((r) => r.status === 200)).toBe(true)
    })
  })
})
