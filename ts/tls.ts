/**
 * The `tls` option: one certificate, several chosen by SNI, or
 * `'self-signed'` for development, optionally with client certificates
 * (mTLS). Certificates, keys and CAs are PEM text, Buffers or file paths;
 * files are read here so that errors can name them; parsing and checking
 * (names, validity, key match) happen in the core.
 */
import { readFileSync } from 'node:fs'
import { HttpyError, HttpyTypeError } from './errors.js'
import { isAbsolute } from 'node:path'
import { AcmeChallengeType, type NativeAcme, type NativeCert, type NativeTls } from './native.js'

/** PEM text, a Buffer holding PEM, or a path to a PEM file. */
export type PemSource = string | Buffer | Uint8Array

/** One certificate chain (leaf first) and its key. */
export interface CertificateOptions {
  /**
   * The name this certificate answers for in SNI (`'a.example'`, or
   * `'*.b.example'` for one label under it). Leave it out on the default
   * certificate, served to every other name and to clients without SNI.
   */
  serverName?: string
  cert: PemSource
  key: PemSource
}

/** Client certificates (mutual TLS). */
export interface ClientAuthOptions {
  /** CA certificates that client certificates must chain to (needed with `requestCert`). */
  ca?: PemSource
  /** Ask clients for a certificate (default false). */
  requestCert?: boolean
  /**
   * With `requestCert`: refuse the handshake of a client without a valid
   * certificate (default true). When false, every client gets in and
   * `req.tls.clientCertificate.authorized` tells whether it verified.
   */
  rejectUnauthorized?: boolean
}

/** Let's Encrypt's production directory, the default `tls.acme.directory`. */
export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory'

/**
 * Certificates ordered and renewed automatically from an ACME CA
 * (docs/tls-http2.md, "Automatic certificates").
 */
export interface AcmeOptions {
  /** DNS names the certificate covers (no wildcards: they need DNS-01). */
  domains: string[]
  /** Contact address given to the CA (expiry notices). */
  email?: string
  /** The CA's directory URL (default: Let's Encrypt production). */
  directory?: string
  /** Extra root certificates (PEM) trusted for the directory's HTTPS, e.g. a test CA's. */
  directoryCa?: PemSource
  /** Directory keeping the account key and the certificates (created 0700, files 0600). */
  cache: string
  /** `'tls-alpn-01'` (default: on the HTTPS port) or `'http-01'` (on `httpPort`). */
  challenge?: 'tls-alpn-01' | 'http-01'
  /** With `'http-01'`: the plain port answering challenges and redirecting the rest to HTTPS (default 80). */
  httpPort?: number
  /** An ACME profile to ask for (CAs may offer several lifetimes, e.g. `'shortlived'`). */
  profile?: string
  /** Renew once this fraction of the certificate's lifetime has passed (default 2/3). */
  renewAt?: number
  /** Seconds before the first retry after a failure, doubled per failure up to an hour (default 10). */
  retryDelay?: number
}

/**
 * TLS settings.
 *
 * ```ts
 * await run({ port: 8443, tls: { cert: 'cert.pem', key: 'key.pem' } })
 * await run({ port: 8443, tls: [                         // SNI
 *   { serverName: 'a.example', cert: 'a.pem', key: 'a.key' },
 *   { serverName: '*.b.example', cert: 'b.pem', key: 'b.key' },
 *   { cert: 'default.pem', key: 'default.key' },           // any other name
 * ] })
 * await run({ port: 8443, tls: { cert, key, ca: 'clients-ca.pem', requestCert: true } }) // mTLS
 * await run({ port: 8443, tls: 'self-signed' }) // development only
 * await run({ port: 443, tls: { acme: { domains: ['a.example'], email, cache: '/var/lib/app/acme' } } })
 * ```
 */
export type TlsOptions =
  | 'self-signed'
  | CertificateOptions[]
  | ({ cert: PemSource; key: PemSource; acme?: AcmeOptions } & ClientAuthOptions)
  | ({ certificates: CertificateOptions[]; acme?: AcmeOptions } & ClientAuthOptions)
  | ({ acme: AcmeOptions } & ClientAuthOptions)

/** What a request knows of its TLS connection (`req.tls`). */
export interface TlsInfo {
  /** The name the client asked for in SNI (lower-case), or null. */
  servername: string | null
  /** The client's certificate, when it sent one (mTLS). */
  clientCertificate: ClientCertificate | null
}

export interface ClientCertificate {
  /** Distinguished name, e.g. `CN=alice, O=Example`. */
  subject: string
  /** SHA-256 of the certificate, `AB:CD:…` (as Node's `fingerprint256`). */
  fingerprint256: string
  /** It chains to `tls.ca` (always true unless `rejectUnauthorized: false`). */
  authorized: boolean
}

function invalid(message: string): HttpyTypeError {
  return new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', message)
}

function load(value: unknown, which: string): { data: Buffer; name: string } {
  if (Buffer.isBuffer(value)) return { data: value, name: `${which} (Buffer)` }
  if (value instanceof Uint8Array) {
    return { data: Buffer.from(value.buffer, value.byteOffset, value.byteLength), name: `${which} (Uint8Array)` }
  }
  if (typeof value !== 'string' || value.length === 0) {
    throw invalid(`option "${which}" must be PEM text, a Buffer or a file path`)
  }
  if (value.includes('-----BEGIN')) return { data: Buffer.from(value), name: `${which} (PEM text)` }
  try {
    return { data: readFileSync(value), name: value }
  } catch (e) {
    const cause = e as NodeJS.ErrnoException
    throw new HttpyError('ERR_HTTPY_TLS', `cannot read ${which} file ${value}: ${cause.code ?? cause.message}`, {
      cause: e,
    })
  }
}

function checkKeys(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) {
      throw invalid(`unknown option "${where}.${key}" (expected ${allowed.join(', ')})`)
    }
  }
}

function certificate(value: unknown, where: string): NativeCert {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(`option "${where}" must be {serverName?, cert, key}`)
  }
  const o = value as Record<string, unknown>
  checkKeys(o, ['serverName', 'cert', 'key'], where)
  if (o.serverName !== undefined && (typeof o.serverName !== 'string' || o.serverName.length === 0)) {
    throw invalid(`option "${where}.serverName" must be a non-empty DNS name such as 'a.example' or '*.b.example'`)
  }
  const cert = load(o.cert, `${where}.cert`)
  const key = load(o.key, `${where}.key`)
  return {
    ...(o.serverName !== undefined ? { serverName: o.serverName as string } : {}),
    cert: cert.data,
    key: key.data,
    certName: cert.name,
    keyName: key.name,
  }
}

function certificates(list: unknown[], where: string): NativeCert[] {
  if (list.length === 0) throw invalid(`option "${where}" must list at least one certificate`)
  return list.map((c, i) => certificate(c, `${where}[${i}]`))
}

const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i

function acmeOption(value: unknown): NativeAcme {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid('option "tls.acme" must be {domains, cache, email?, directory?, challenge?, ...}')
  }
  const o = value as Record<string, unknown>
  checkKeys(o, ['domains', 'email', 'directory', 'directoryCa', 'cache', 'challenge', 'httpPort', 'profile', 'renewAt', 'retryDelay'], 'tls.acme')
  if (!Array.isArray(o.domains) || o.domains.length === 0) throw invalid('option "tls.acme.domains" must list at least one DNS name')
  for (const d of o.domains) {
    if (typeof d !== 'string' || !DNS_NAME.test(d)) {
      throw invalid(`option "tls.acme.domains" holds ${JSON.stringify(d)}, not a DNS name (wildcards need DNS-01, which is not supported)`)
    }
  }
  if (typeof o.cache !== 'string' || o.cache.length === 0) throw invalid('option "tls.acme.cache" must be a directory path (it keeps the account key and certificates)')
  if (o.email !== undefined && (typeof o.email !== 'string' || !/^[^@\s]+@[^@\s]+$/.test(o.email))) {
    throw invalid('option "tls.acme.email" must be an e-mail address')
  }
  const directory = o.directory ?? LETS_ENCRYPT_DIRECTORY
  if (typeof directory !== 'string' || !directory.startsWith('https://')) {
    throw invalid('option "tls.acme.directory" must be an https:// URL (the ACME directory of the CA)')
  }
  let challenge: NativeAcme['challenge']
  if (o.challenge === undefined || o.challenge === 'tls-alpn-01') challenge = AcmeChallengeType.TlsAlpn01
  else if (o.challenge === 'http-01') challenge = AcmeChallengeType.Http01
  else throw invalid(`option "tls.acme.challenge" must be 'tls-alpn-01' or 'http-01' (got ${JSON.stringify(o.challenge)})`)
  const httpPort = o.httpPort ?? 80
  if (typeof httpPort !== 'number' || !Number.isInteger(httpPort) || httpPort < 0 || httpPort > 65535) {
    throw invalid('option "tls.acme.httpPort" must be a port number')
  }
  const renewAt = o.renewAt ?? 2 / 3
  if (typeof renewAt !== 'number' || !(renewAt > 0 && renewAt < 1)) throw invalid('option "tls.acme.renewAt" must be a fraction between 0 and 1')
  const retryDelay = o.retryDelay ?? 10
  if (typeof retryDelay !== 'number' || !(retryDelay > 0)) throw invalid('option "tls.acme.retryDelay" must be a positive number of seconds')
  if (o.profile !== undefined && (typeof o.profile !== 'string' || o.profile.length === 0)) throw invalid('option "tls.acme.profile" must be a non-empty string')
  // With run({ workers }) only the worker in slot 1 orders; the others
  // serve what it stores in the cache (docs/tls-http2.md).
  const worker = process.env.HTTPY_WORKER_ID
  const out: NativeAcme = {
    domains: (o.domains as string[]).map((d) => d.toLowerCase()),
    directory,
    cache: isAbsolute(o.cache) ? o.cache : `${process.cwd()}/${o.cache}`,
    challenge,
    httpPort,
    renewAt,
    retryDelay,
    order: worker === undefined || worker === '1',
  }
  if (o.email !== undefined) out.email = o.email as string
  if (o.profile !== undefined) out.profile = o.profile as string
  if (o.directoryCa !== undefined) out.directoryCa = load(o.directoryCa, 'tls.acme.directoryCa').data
  return out
}

/** Validates the `tls` option (or a `setTls` argument) and reads its files. */
export function resolveTls(value: unknown): NativeTls | undefined {
  if (value === undefined || value === null || value === false) return undefined
  if (value === 'self-signed') return { selfSigned: true }
  if (Array.isArray(value)) return { selfSigned: false, certs: certificates(value, 'tls') }
  if (typeof value !== 'object') {
    throw invalid(
      `option "tls" must be {cert, key}, a list of {serverName, cert, key} or 'self-signed' (got ${typeof value === 'string' ? JSON.stringify(value) : typeof value})`,
    )
  }
  const o = value as Record<string, unknown>
  const auth = ['ca', 'requestCert', 'rejectUnauthorized', 'acme']
  let certs: NativeCert[]
  if ('acme' in o && !('certificates' in o) && !('cert' in o) && !('key' in o)) {
    checkKeys(o, auth, 'tls')
    certs = []
  } else if ('certificates' in o) {
    checkKeys(o, ['certificates', ...auth], 'tls')
    if (!Array.isArray(o.certificates)) throw invalid('option "tls.certificates" must be a list of {serverName?, cert, key}')
    certs = certificates(o.certificates, 'tls.certificates')
  } else {
    checkKeys(o, ['cert', 'key', ...auth], 'tls')
    const cert = load(o.cert, 'tls.cert')
    const key = load(o.key, 'tls.key')
    certs = [{ cert: cert.data, key: key.data, certName: cert.name, keyName: key.name }]
  }
  for (const flag of ['requestCert', 'rejectUnauthorized'] as const) {
    if (o[flag] !== undefined && typeof o[flag] !== 'boolean') throw invalid(`option "tls.${flag}" must be a boolean`)
  }
  const out: NativeTls = { selfSigned: false, certs }
  if (o.acme !== undefined) out.acme = acmeOption(o.acme)
  if (o.requestCert === true) {
    if (o.ca === undefined) {
      throw invalid('option "tls.requestCert" needs "tls.ca" (the CA certificates client certificates must chain to)')
    }
    const ca = load(o.ca, 'tls.ca')
    out.ca = ca.data
    out.caName = ca.name
    out.requestCert = true
    out.rejectUnauthorized = o.rejectUnauthorized !== false
  }
  return out
}
