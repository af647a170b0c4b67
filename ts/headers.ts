/**
 * Header containers. `Headers` is the mutable, validated map used by
 * responses; request headers are read lazily from the native record (see
 * `request.ts`) and exposed through the same read interface.
 */
import { HttpyTypeError } from './errors.js'

export type HeadersInit =
  | Record<string, string | number | readonly string[]>
  | Iterable<readonly [string, string]>
  | Headers

/** Read access shared by request and response headers. */
export interface ReadonlyHeaders extends Iterable<[string, string]> {
  get(name: string): string | null
  has(name: string): boolean
  entries(): IterableIterator<[string, string]>
  keys(): IterableIterator<string>
  forEach(fn: (value: string, name: string) => void): void
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// Field values: visible ASCII, obs-text, space and tab; never CR, LF or NUL.
const BAD_VALUE = /[\r\n\0]/

// Names already checked, with their lower-case form: responses set the same
// few names over and over, and a Map lookup costs less than the regular
// expression and the case conversion. Bounded: past the limit, names are
// checked every time.
const CHECKED_NAMES = new Map<string, string>()
const CHECKED_NAMES_MAX = 512

function checkName(name: string): string {
  const known = CHECKED_NAMES.get(name)
  if (known !== undefined) return known
  if (typeof name !== 'string' || !TOKEN.test(name)) {
    throw new HttpyTypeError('ERR_HTTPY_INVALID_HEADER', `invalid header name ${JSON.stringify(name)}`)
  }
  const lower = name.toLowerCase()
  if (CHECKED_NAMES.size < CHECKED_NAMES_MAX) CHECKED_NAMES.set(name, lower)
  return lower
}

function checkValue(name: string, value: string): string {
  if (BAD_VALUE.test(value)) {
    throw new HttpyTypeError(
      'ERR_HTTPY_INVALID_HEADER',
      `invalid value for header ${JSON.stringify(name)}: it contains CR, LF or NUL`,
    )
  }
  return value
}

/**
 * Case-insensitive, multi-valued header map with validation on write.
 *
 * ```ts
 * const h = new Headers({ 'Content-Type': 'text/plain' })
 * h.set('x-id', '7')
 * h.get('content-type') // 'text/plain'
 * ```
 */
export class Headers implements ReadonlyHeaders {
  /** Lower-cased name -> values. */
  #map: Map<string, string[]>
  /**
   * True while `#map` is shared with another Headers (the one this was
   * copied from, or a copy of this one).
   * Copies are copy-on-write: `Response.json()` and friends copy a template
   * per response, and most responses are never modified.
   */
  #shared = false
  /** Cached wire form (`name\nvalue\n…`), dropped on every write. */
  #block: string | undefined
  /**
   * The wire form's UTF-8 bytes, kept by templates (`_template()`) and
   * shared with their copies, dropped on every write: the server copies
   * them into the reply batch instead of encoding the string per response.
   */
  #bytes: Uint8Array | undefined

  constructor(init?: HeadersInit) {
    if (init instanceof Headers) {
      this.#map = init.#copyOf()
      this.#shared = true
      this.#block = init.#block
      this.#bytes = init.#bytes
      return
    }
    if (init && !(Symbol.iterator in init)) {
      // `{ 'content-type': 'text/plain' }`, written in the handler and so a
      // new object per response: a copy of the template made from the first
      // one (two Map lookups instead of a Map, a name check, a value check
      // and a header block per response).
      const name = onlyName(init)
      const t = name === undefined ? undefined : literalTemplate(name, (init as Record<string, string>)[name] as string)
      if (t !== undefined) {
        this.#map = t.#copyOf()
        this.#shared = true
        this.#block = t.#block
        this.#bytes = t.#bytes
        return
      }
    }
    this.#map = new Map()
    if (!init) return
    if (Symbol.iterator in init) {
      for (const [k, v] of init as Iterable<readonly [string, string]>) this.append(k, v)
      return
    }
    // for-in over an own-property object literal: no entries array per call.
    const obj = init as Record<string, string | number | readonly string[]>
    for (const k in obj) {
      if (!Object.prototype.hasOwnProperty.call(obj, k)) continue
      const v = obj[k] as string | number | readonly string[]
      if (Array.isArray(v)) for (const x of v) this.append(k, String(x))
      else this.append(k, typeof v === 'string' ? v : String(v))
    }
  }

  /** This map, shared copy-on-write with a new copy. */
  #copyOf(): Map<string, string[]> {
    this.#shared = true
    return this.#map
  }

  get(name: string): string | null {
    const v = this.#map.get(name.toLowerCase())
    if (!v) return null
    return v.length === 1 ? (v[0] as string) : v.join(', ')
  }

  /** Every `Set-Cookie` value, unjoined. */
  getSetCookie(): string[] {
    return (this.#map.get('set-cookie') ?? []).slice()
  }

  getAll(name: string): string[] {
    return (this.#map.get(name.toLowerCase()) ?? []).slice()
  }

  has(name: string): boolean {
    return this.#map.has(name.toLowerCase())
  }

  #own(): void {
    if (!this.#shared) return
    const m = new Map<string, string[]>()
    for (const [k, v] of this.#map) m.set(k, v.slice())
    this.#map = m
    this.#shared = false
  }

  set(name: string, value: string | number): this {
    const key = checkName(name)
    this.#own()
    this.#map.set(key, [checkValue(name, String(value))])
    this.#block = undefined
    this.#bytes = undefined
    return this
  }

  append(name: string, value: string | number): this {
    const key = checkName(name)
    const v = checkValue(name, String(value))
    this.#own()
    const cur = this.#map.get(key)
    if (cur) cur.push(v)
    else this.#map.set(key, [v])
    this.#block = undefined
    this.#bytes = undefined
    return this
  }

  delete(name: string): boolean {
    this.#own()
    this.#block = undefined
    this.#bytes = undefined
    return this.#map.delete(name.toLowerCase())
  }

  get size(): number {
    return this.#map.size
  }

  *entries(): IterableIterator<[string, string]> {
    for (const [k, vs] of this.#map) {
      if (k === 'set-cookie') for (const v of vs) yield [k, v]
      else yield [k, vs.length === 1 ? (vs[0] as string) : vs.join(', ')]
    }
  }

  keys(): IterableIterator<string> {
    return this.#map.keys()
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries()
  }

  forEach(fn: (value: string, name: string) => void): void {
    for (const [k, v] of this.entries()) fn(v, k)
  }

  toJSON(): Record<string, string> {
    return Object.fromEntries(this.entries())
  }

  /** @internal The form the native layer takes: `name\nvalue\n…`. */
  toWire(): string {
    if (this.#block !== undefined) return this.#block
    let s = ''
    for (const [k, vs] of this.#map) {
      for (const v of vs) s += s.length === 0 ? `${k}\n${v}` : `\n${k}\n${v}`
    }
    this.#block = s
    return s
  }

  /**
   * @internal The wire form's bytes when cached (a template or a copy of
   * one not written to since), else `undefined`.
   */
  _wireBytes(): Uint8Array | undefined {
    return this.#bytes
  }

  /**
   * @internal Makes this Headers a template: encodes its wire form once,
   * for every copy to share. Templates are never handed out nor written to.
   */
  _template(): this {
    this.#bytes = Buffer.from(this.toWire(), 'utf8')
    return this
  }
}

/**
 * The name of the only field of a plain object with one string-valued own
 * property (`{ 'content-type': 'text/plain' }`), else `undefined`.
 */
export function onlyName(init: object): string | undefined {
  if (Object.getPrototypeOf(init) !== Object.prototype) return undefined
  let only: string | undefined
  const record = init as Record<string, unknown>
  for (const name in record) {
    if (only !== undefined || typeof record[name] !== 'string' || !Object.prototype.hasOwnProperty.call(record, name)) return undefined
    only = name
  }
  return only
}

/** Templates of one-field header literals, by name then value; bounded. */
const LITERALS = new Map<string, Map<string, Headers>>()
let literalCount = 0
const LITERALS_MAX = 256

/**
 * The template for the headers `{ [name]: value }`, made (and checked, so a
 * bad name or value throws as it would otherwise) on first use; `undefined`
 * once LITERALS_MAX templates exist and this one is not among them.
 */
function literalTemplate(name: string, value: string): Headers | undefined {
  let byValue = LITERALS.get(name)
  const t = byValue?.get(value)
  if (t !== undefined || literalCount >= LITERALS_MAX) return t
  const made = new Headers()
  made.append(name, value)
  made._template()
  if (byValue === undefined) LITERALS.set(name, (byValue = new Map()))
  byValue.set(value, made)
  literalCount++
  return made
}
