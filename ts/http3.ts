/**
 * HTTP/3 options: `http3Port` and the guide's `http3Config`, validated
 * here (a TypeError naming the key) and mapped onto the QUIC transport in
 * the core.
 */
import { HttpyTypeError } from './errors.js'
import { native, type NativeHttp3 } from './native.js'

/**
 * QUIC settings (the guide's `http3_config`); every key is optional.
 *
 * ```ts
 * await run({
 *   port: 443, tls, http3Port: 443,
 *   http3Config: { maxDatagramSize: 1350, quicMaxStreamData: 1 << 20, quicMaxData: 5 << 20, quicMaxStreamsBidi: 100, quicIdleTimeout: 30 },
 * })
 * ```
 */
export interface Http3Config {
  /** Largest UDP payload in bytes, sent and advertised (`max_udp_payload_size`); 1200–65527. Default 1350. */
  maxDatagramSize?: number
  /** Receive window per request stream in bytes (`initial_max_stream_data_bidi_*`). Default 1 MiB. */
  quicMaxStreamData?: number
  /** Receive window per connection in bytes (`initial_max_data`). Default 5 MiB. */
  quicMaxData?: number
  /** Concurrent request streams per connection (`initial_max_streams_bidi`). Default 100. */
  quicMaxStreamsBidi?: number
  /** Seconds of silence before a connection is closed (`max_idle_timeout`). Default 30. */
  quicIdleTimeout?: number
  /** Validate client addresses with a Retry round trip (against spoofed floods). Default false. */
  validateAddress?: boolean
}

/** True when this binary has HTTP/3 compiled in (the guide's `AIOQUIC_AVAILABLE`). */
export const HTTP3_AVAILABLE: boolean = native.http3Available()

const KEYS = new Set(['maxDatagramSize', 'quicMaxStreamData', 'quicMaxData', 'quicMaxStreamsBidi', 'quicIdleTimeout', 'validateAddress'])
const VARINT_MAX = 2 ** 53 - 1 // QUIC allows 2^62-1; JS integers stop here.

function bad(key: string, want: string, got: unknown): never {
  throw new HttpyTypeError(
    'ERR_HTTPY_INVALID_OPTION',
    `option "${key}" must be ${want} (got ${typeof got === 'string' ? JSON.stringify(got) : String(got)})`,
  )
}

function int(o: Record<string, unknown>, key: string, def: number, min: number, max: number): number {
  const v = o[key]
  if (v === undefined) return def
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    bad(`http3Config.${key}`, `an integer from ${min} to ${max}`, v)
  }
  return v
}

/** Validates `http3Port`/`http3Config`; `undefined` when HTTP/3 is off. */
export function resolveHttp3(port: unknown, config: unknown, hasTls: boolean): NativeHttp3 | undefined {
  if (port === undefined) {
    if (config !== undefined) bad('http3Config', 'used together with "http3Port"', 'no http3Port')
    return undefined
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    bad('http3Port', 'an integer from 0 to 65535', port)
  }
  if (!hasTls) {
    throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'option "http3Port" needs "tls": HTTP/3 always runs over TLS')
  }
  if (!HTTP3_AVAILABLE) {
    throw new HttpyTypeError('ERR_HTTPY_NOT_SUPPORTED', 'this build of httpy has no HTTP/3 (see HTTP3_AVAILABLE)')
  }
  if (config !== undefined && (typeof config !== 'object' || config === null || Array.isArray(config))) {
    bad('http3Config', 'an object', config)
  }
  const o = (config ?? {}) as Record<string, unknown>
  for (const key of Object.keys(o)) {
    if (!KEYS.has(key)) throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', `unknown option "http3Config.${key}"`)
  }
  const idle = o.quicIdleTimeout === undefined ? 30 : o.quicIdleTimeout
  if (typeof idle !== 'number' || !Number.isFinite(idle) || idle <= 0 || idle > 86_400) {
    bad('http3Config.quicIdleTimeout', 'a number of seconds above 0 and at most 86400', idle)
  }
  const validate = o.validateAddress === undefined ? false : o.validateAddress
  if (typeof validate !== 'boolean') bad('http3Config.validateAddress', 'a boolean', validate)
  const streamWindow = int(o, 'quicMaxStreamData', 1024 * 1024, 1024, VARINT_MAX)
  return {
    port,
    // QUIC's floor: every client must be able to send 1200-byte datagrams.
    maxDatagramSize: int(o, 'maxDatagramSize', 1350, 1200, 65527),
    streamWindow,
    connectionWindow: int(o, 'quicMaxData', 5 * 1024 * 1024, 1024, VARINT_MAX),
    maxStreamsBidi: int(o, 'quicMaxStreamsBidi', 100, 1, 2 ** 32),
    idleTimeoutMs: idle * 1000,
    validateAddress: validate,
  }
}
