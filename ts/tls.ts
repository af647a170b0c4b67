/**
 * The `tls` option: one certificate, several chosen by SNI, or
 * `'self-signed'` for development, optionally with client certificates
 * (mTLS). Certificates, keys and CAs are PEM text, Buffers or file paths;
 * files are read here so that errors can name them; parsing and checking
 * (names, validity, key match) happen in the core.
 */
import { readFileSync } from 'node:fs'
import { HttpyError, HttpyTypeError } from './errors.js'
import type { NativeCert, NativeTls } from './native.js'

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
 * ```
 */
export type TlsOptions =
  | 'self-signed'
  | CertificateOptions[]
  | ({ cert: PemSource; key: PemSource } & ClientAuthOptions)
  | ({ certificates: CertificateOptions[] } & ClientAuthOptions)

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
  const auth = ['ca', 'requestCert', 'rejectUnauthorized']
  let certs: NativeCert[]
  if ('certificates' in o) {
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
