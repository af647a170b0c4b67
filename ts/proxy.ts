/**
 * `trustProxy`: which peers may tell us who the client is. Headers set by
 * proxies (`Forwarded`, `X-Forwarded-For/-Proto/-Host`, `X-Real-IP`) are
 * believed only when they arrive from a trusted address, and only for the
 * hops that trusted proxies added: a client can prepend anything it likes
 * to `X-Forwarded-For`, so the chain is read from the right and the first
 * untrusted address is the client.
 */
import { BlockList, isIP } from 'node:net'
import { HttpyTypeError } from './errors.js'
import type { ReadonlyHeaders } from './headers.js'

/**
 * `true` (every peer is a proxy), `false` (none), a hop count (the nearest
 * `n` addresses are proxies), or addresses/CIDRs (`'10.0.0.0/8'`, `'::1'`,
 * comma-separated or as an array) and the names `loopback`, `linklocal`,
 * `uniquelocal`.
 *
 * ```ts
 * await run({ trustProxy: ['loopback', '10.0.0.0/8'] })
 * ```
 */
export type TrustProxy = boolean | number | string | readonly string[]

/** Decides whether the address seen at `hop` (0 = the TCP peer) is a trusted proxy. */
export type TrustFn = (address: string, hop: number) => boolean

const NAMED: Record<string, readonly string[]> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
}

function invalid(what: string): never {
  throw new HttpyTypeError(
    'ERR_HTTPY_INVALID_OPTION',
    `option "trustProxy" must be a boolean, a hop count, or addresses/CIDRs (${what})`,
  )
}

/** The option, validated: every peer, the nearest `hops`, or `nets` (named ranges expanded). */
export type TrustSpec = { all: true } | { hops: number } | { nets: string[] }

/** Validates the option; `undefined` when nothing is trusted. */
export function trustSpec(value: unknown): TrustSpec | undefined {
  if (value === undefined || value === false || value === 0) return undefined
  if (value === true) return { all: true }
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) invalid(`got ${value}`)
    return { hops: value }
  }
  const list = typeof value === 'string' ? value.split(',') : value
  if (!Array.isArray(list)) invalid(`got ${typeof value}`)
  const nets: string[] = []
  for (const raw of list as unknown[]) {
    if (typeof raw !== 'string') invalid(`got a list entry of type ${typeof raw}`)
    const item = raw.trim()
    if (item === '') continue
    for (const entry of NAMED[item.toLowerCase()] ?? [item]) {
      const [addr = '', bits, extra] = entry.split('/')
      const family = isIP(addr)
      if (family === 0 || extra !== undefined) invalid(`${JSON.stringify(item)} is not an address or CIDR`)
      if (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128))) {
        invalid(`${JSON.stringify(item)} has a bad prefix`)
      }
      nets.push(entry)
    }
  }
  return nets.length === 0 ? undefined : { nets }
}

/** Compiles the option into a predicate; `undefined` when nothing is trusted. */
export function compileTrust(value: unknown): TrustFn | undefined {
  const spec = trustSpec(value)
  if (spec === undefined) return undefined
  if ('all' in spec) return () => true
  if ('hops' in spec) return (_addr, hop) => hop < spec.hops
  const blocks = new BlockList()
  for (const entry of spec.nets) {
    const [addr = '', bits] = entry.split('/')
    const type = isIP(addr) === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) blocks.addAddress(addr, type)
    else blocks.addSubnet(addr, Number(bits), type)
  }
  return (addr) => {
    const family = isIP(addr)
    return family !== 0 && blocks.check(addr, family === 4 ? 'ipv4' : 'ipv6')
  }
}

/**
 * An address as proxies write it (`1.2.3.4:567`, `"[::1]:80"`,
 * `::ffff:1.2.3.4`) reduced to a plain IP, or `null` when it is not one
 * (`unknown`, obfuscated `_identifiers`, garbage).
 */
export function plainAddress(raw: string): string | null {
  let a = raw.trim()
  if (a.startsWith('"') && a.endsWith('"') && a.length >= 2) a = a.slice(1, -1)
  if (a.startsWith('[')) {
    const end = a.indexOf(']')
    if (end < 0) return null
    a = a.slice(1, end)
  } else if (a.indexOf(':') > 0 && a.indexOf(':') === a.lastIndexOf(':')) {
    a = a.slice(0, a.indexOf(':')) // IPv4 with a port
  }
  a = a.toLowerCase()
  if (a.startsWith('::ffff:') && isIP(a.slice(7)) === 4) a = a.slice(7)
  return isIP(a) === 0 ? null : a
}

interface Hop {
  for?: string
  proto?: string
  host?: string
}

/** Splits on `sep` outside double quotes. */
function splitQuoted(s: string, sep: string): string[] {
  const out: string[] = []
  let cur = ''
  let quoted = false
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string
    if (c === '\\' && quoted && i + 1 < s.length) {
      cur += s[++i]
    } else if (c === '"') {
      quoted = !quoted
      cur += c
    } else if (c === sep && !quoted) {
      out.push(cur)
      cur = ''
    } else {
      cur += c
    }
  }
  out.push(cur)
  return out
}

/** RFC 7239 `Forwarded: for=1.2.3.4;proto=https, for="[::1]"` into hops, left to right. */
function parseForwarded(value: string): Hop[] {
  return splitQuoted(value, ',').map((element) => {
    const hop: Hop = {}
    for (const pair of splitQuoted(element, ';')) {
      const eq = pair.indexOf('=')
      if (eq < 0) continue
      const key = pair.slice(0, eq).trim().toLowerCase()
      let v = pair.slice(eq + 1).trim()
      if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1)
      if (key === 'for' || key === 'proto' || key === 'host') hop[key] = v
    }
    return hop
  })
}

function list(h: ReadonlyHeaders, name: string): string[] {
  const v = h.get(name)
  if (v === null) return []
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
}

const HOST = /^[A-Za-z0-9.\-_~]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/

/** What the request looks like from the client's side of the proxies. */
export interface ClientView {
  ip: string
  scheme: 'http' | 'https'
  host: string | null
}

/**
 * Resolves the client's address, scheme and host. `remote` is the TCP
 * peer; headers count only while every hop between it and us is trusted.
 */
export function resolveClient(
  trust: TrustFn,
  remote: string,
  ownScheme: 'http' | 'https',
  ownHost: string | null,
  headers: ReadonlyHeaders,
): ClientView {
  const peer = plainAddress(remote) ?? remote
  if (!trust(peer, 0)) return { ip: peer, scheme: ownScheme, host: ownHost }

  let hops: Hop[]
  let protos: string[] = []
  let hosts: string[] = []
  const forwarded = headers.get('forwarded')
  if (forwarded !== null) {
    hops = parseForwarded(forwarded)
  } else {
    hops = list(headers, 'x-forwarded-for').map((f) => ({ for: f }))
    if (hops.length === 0) {
      const real = headers.get('x-real-ip')
      if (real !== null) hops = [{ for: real }]
    }
    protos = list(headers, 'x-forwarded-proto')
    hosts = list(headers, 'x-forwarded-host')
  }

  // Walk right to left: each trusted hop vouches for the one before it.
  let ip = peer
  let used = 0
  for (let i = hops.length - 1; i >= 0; i--) {
    const addr = plainAddress(hops[i]?.for ?? '')
    if (addr === null) break // a hop we cannot check ends the chain at the last proxy
    ip = addr
    used++
    if (!trust(addr, used)) break
  }

  // Scheme and host come from the outermost trusted proxy's record.
  let proto: string | undefined
  let host: string | undefined
  if (forwarded !== null) {
    const hop = hops[hops.length - Math.max(used, 1)]
    proto = hop?.proto
    host = hop?.host
  } else {
    proto = protos[protos.length - Math.min(Math.max(used, 1), protos.length)]
    host = hosts[hosts.length - Math.min(Math.max(used, 1), hosts.length)]
  }
  const p = proto?.toLowerCase()
  return {
    ip,
    scheme: p === 'https' || p === 'http' ? p : ownScheme,
    host: host !== undefined && HOST.test(host) ? host : ownHost,
  }
}
