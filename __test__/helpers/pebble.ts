/**
 * A real ACME CA for the automatic-certificate tests: Pebble, Let's
 * Encrypt's test server, started on 127.0.0.1 with a config of its own
 * (free ports, its HTTPS certificate from a throw-away test CA), and a tiny
 * DNS responder that answers every name with 127.0.0.1, so Pebble's
 * validation really connects to the server under test (`tlsPort` and
 * `httpPort` point at its ports). Pebble is stopped by its pid.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import dgram from 'node:dgram'
import https from 'node:https'
import net from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TestPki } from '../pki.js'
import { freePort, waitFor } from './proc.js'
import { pebbleBin } from './tools.js'

export interface DnsResponder {
  port: number
  /** Names asked so far (lower-case, without the final dot). */
  asked: Set<string>
  close: () => Promise<void>
}

/** The answer to one DNS query: A 127.0.0.1 for any name, no records for other types. */
function answer(q: Buffer, asked: Set<string>): Buffer | undefined {
  if (q.length < 12) return undefined
  // The question: labels from byte 12, then QTYPE and QCLASS.
  let i = 12
  const labels: string[] = []
  while (i < q.length && q[i] !== 0) {
    const len = q[i] as number
    labels.push(q.subarray(i + 1, i + 1 + len).toString('ascii'))
    i += len + 1
  }
  const qEnd = i + 5
  if (qEnd > q.length) return undefined
  const isA = q.readUInt16BE(i + 1) === 1
  asked.add(labels.join('.').toLowerCase())
  const head = Buffer.alloc(12)
  q.copy(head, 0, 0, 2) // ID
  head.writeUInt16BE(0x8180 | (q.readUInt16BE(2) & 0x0100), 2) // response, RD copied, RA, NOERROR
  head.writeUInt16BE(1, 4) // QDCOUNT
  head.writeUInt16BE(isA ? 1 : 0, 6) // ANCOUNT
  // Name as a pointer to the question (0xc00c), A, IN, TTL 60, 4 bytes.
  const rr = isA ? Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]) : Buffer.alloc(0)
  return Buffer.concat([head, q.subarray(12, qEnd), rr])
}

/**
 * A DNS responder on one port of 127.0.0.1, over TCP (what Pebble's
 * resolver uses: each message behind a two-byte length, RFC 1035 §4.2.2)
 * and UDP.
 */
export async function startDns(): Promise<DnsResponder> {
  const asked = new Set<string>()
  const tcp = net.createServer((sock) => {
    let buf = Buffer.alloc(0)
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0))
        buf = buf.subarray(2 + msg.length)
        const out = answer(msg, asked)
        if (out) {
          const len = Buffer.alloc(2)
          len.writeUInt16BE(out.length)
          sock.write(Buffer.concat([len, out]))
        }
      }
    })
    sock.on('error', () => sock.destroy())
  })
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve))
  const port = (tcp.address() as net.AddressInfo).port
  const udp = dgram.createSocket('udp4')
  udp.on('message', (q, rinfo) => {
    const out = answer(q, asked)
    if (out) udp.send(out, rinfo.port, rinfo.address)
  })
  await new Promise<void>((resolve) => udp.bind(port, '127.0.0.1', resolve))
  return {
    port,
    asked,
    close: async () => {
      await new Promise<void>((resolve) => udp.close(() => resolve()))
      await new Promise<void>((resolve) => tcp.close(() => resolve()))
    },
  }
}

export interface Pebble {
  /** The ACME directory URL. */
  directory: string
  /** PEM of the root that signs Pebble's own HTTPS certificate (`directoryCa`). */
  ca: string
  /** PEM of the root and intermediate that sign the certificates Pebble issues. */
  issuerChain: () => Promise<{ root: string; intermediate: string }>
  pid: number
  output: () => string
  stop: () => Promise<void>
}

export interface PebbleOptions {
  /** The port Pebble validates TLS-ALPN-01 on (the server's HTTPS port). */
  tlsPort: number
  /** The port Pebble validates HTTP-01 on. */
  httpPort: number
  /** Names Pebble refuses to issue for. */
  blocklist?: string[]
  /** Lifetime (s) of the `shortlived` profile's certificates. */
  shortLifetime?: number
}

/** GET with node:https trusting `ca` (Pebble answers 400 without a User-Agent). */
function getText(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, timeout: 5000, headers: { 'user-agent': 'httpy-tests' } }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (body += c))
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode} ${body}`))))
      })
      .on('error', reject)
  })
}

export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  if (!pebbleBin) throw new Error('pebble is not installed')
  const pki = new TestPki('pebble')
  const leaf = pki.leaf('pebble', ['localhost', '127.0.0.1'])
  const dns = await startDns()
  const [acmePort, mgmtPort] = [await freePort(), await freePort()]
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${acmePort}`,
      managementListenAddress: `127.0.0.1:${mgmtPort}`,
      certificate: leaf.cert,
      privateKey: leaf.key,
      httpPort: opts.httpPort,
      tlsPort: opts.tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      domainBlocklist: opts.blocklist ?? [],
      retryAfter: { authz: 1, order: 1 },
      keyAlgorithm: 'ecdsa',
      profiles: {
        default: { description: 'ninety days', validityPeriod: 7_776_000 },
        shortlived: { description: 'for the renewal test', validityPeriod: opts.shortLifetime ?? 6 },
      },
    },
  }
  const cfgFile = join(pki.dir, 'pebble.json')
  writeFileSync(cfgFile, JSON.stringify(config))
  let out = ''
  const child: ChildProcess = spawn(pebbleBin, ['-config', cfgFile, '-dnsserver', `127.0.0.1:${dns.port}`], {
    // No sleeps before validating, no nonces refused at random, and no
    // authorization reuse: every order is validated for real.
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<void>((r) => child.on('exit', () => r()))
  const directory = `https://127.0.0.1:${acmePort}/dir`
  const up = await waitFor(async () => getText(directory, pki.ca).then(() => true, () => false), 15_000, 100)
  if (!up || child.pid === undefined) {
    child.kill('SIGKILL')
    await dns.close()
    pki.cleanup()
    throw new Error(`pebble did not start:\n${out}`)
  }
  return {
    directory,
    ca: pki.ca,
    pid: child.pid,
    output: () => out,
    issuerChain: async () => ({
      root: await getText(`https://127.0.0.1:${mgmtPort}/roots/0`, pki.ca),
      intermediate: await getText(`https://127.0.0.1:${mgmtPort}/intermediates/0`, pki.ca),
    }),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid as number, 'SIGKILL')
      await exited
      await dns.close()
      pki.cleanup()
    },
  }
}
