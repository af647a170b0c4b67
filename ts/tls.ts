/**
 * The `tls` option: certificate and key as PEM text, Buffers or file paths,
 * or `'self-signed'` for development. Files are read here so that errors
 * can name them; parsing and checking happen in the core.
 */
import { readFileSync } from 'node:fs'
import { HttpyError, HttpyTypeError } from './errors.js'
import type { NativeTls } from './native.js'

/** PEM text, a Buffer holding PEM, or a path to a PEM file. */
export type PemSource = string | Buffer | Uint8Array

/**
 * TLS settings.
 *
 * ```ts
 * await run({ port: 8443, tls: { cert: 'cert.pem', key: 'key.pem' } })
 * await run({ port: 8443, tls: 'self-signed' }) // development only
 * ```
 */
export type TlsOptions = { cert: PemSource; key: PemSource } | 'self-signed'

function load(value: unknown, which: 'cert' | 'key'): { data: Buffer; name: string } {
  if (Buffer.isBuffer(value)) return { data: value, name: `tls.${which} (Buffer)` }
  if (value instanceof Uint8Array) {
    return { data: Buffer.from(value.buffer, value.byteOffset, value.byteLength), name: `tls.${which} (Uint8Array)` }
  }
  if (typeof value !== 'string' || value.length === 0) {
    throw new HttpyTypeError(
      'ERR_HTTPY_INVALID_OPTION',
      `option "tls.${which}" must be PEM text, a Buffer or a file path`,
    )
  }
  if (value.includes('-----BEGIN')) return { data: Buffer.from(value), name: `tls.${which} (PEM text)` }
  try {
    return { data: readFileSync(value), name: value }
  } catch (e) {
    const cause = e as NodeJS.ErrnoException
    throw new HttpyError('ERR_HTTPY_TLS', `cannot read tls.${which} file ${value}: ${cause.code ?? cause.message}`, {
      cause: e,
    })
  }
}

/** Validates the `tls` option and reads its files. */
export function resolveTls(value: unknown): NativeTls | undefined {
  if (value === undefined || value === null || value === false) return undefined
  if (value === 'self-signed') return { selfSigned: true }
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new HttpyTypeError(
      'ERR_HTTPY_INVALID_OPTION',
      `option "tls" must be {cert, key} or 'self-signed' (got ${typeof value === 'string' ? JSON.stringify(value) : typeof value})`,
    )
  }
  const o = value as Record<string, unknown>
  for (const key of Object.keys(o)) {
    if (key !== 'cert' && key !== 'key') {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', `unknown option "tls.${key}" (expected cert and key)`)
    }
  }
  const cert = load(o.cert, 'cert')
  const key = load(o.key, 'key')
  return { selfSigned: false, cert: cert.data, key: key.data, certName: cert.name, keyName: key.name }
}
