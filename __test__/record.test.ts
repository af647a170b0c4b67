/**
 * The request record contract, end to end: the core parses three known
 * requests from a socket and encodes them into one batch (`recordFixture`
 * in `src/testing.rs`, the same encoder `drain` uses), and the TypeScript
 * side decodes every field with `ts/record.ts` and `Request`. A layout
 * change on either side that the other does not follow fails here.
 */
import { describe, expect, it } from 'vitest'
import { native, NO_ROUTE, RecordAt } from '../ts/native.js'
import {
  EXTERNAL,
  FLAG_ALLOW,
  FLAG_TLS,
  FLAG_URL,
  RECORD_FLAGS,
  RECORD_ID,
  RECORD_ROUTE,
  recordLength,
  u16,
  u32,
} from '../ts/record.js'
import { Request } from '../ts/request.js'

// Routes of the fixture server (`FIXTURE_ROUTES` in src/testing.rs).
const USERS = 3
const BIG = 5
const paramNamesOf = (route: number): readonly string[] => (route === USERS ? ['id', 'name'] : [])

function decode(): { parts: Buffer[]; records: number[]; requests: Request[]; remotePort: number } {
  const { parts, remotePort } = native.recordFixture()
  const buf = parts[0] as Buffer
  const records: number[] = []
  const requests: Request[] = []
  for (let at = 0; at < buf.length; at += recordLength(buf, at)) {
    records.push(at)
    requests.push(new Request(buf, at, parts, paramNamesOf))
  }
  return { parts, records, requests, remotePort }
}

describe('request records (Rust encodes, TypeScript decodes)', () => {
  const { parts, records, requests, remotePort } = decode()
  const buf = parts[0] as Buffer
  const [routed, miss, big] = requests as [Request, Request, Request]

  it('walks the batch record by record to its exact end', () => {
    expect(records).toHaveLength(3)
    const last = records[2] as number
    expect(last + recordLength(buf, last)).toBe(buf.length)
    expect(parts).toHaveLength(2) // the records, and one external body
  })

  it('reads the fixed part at the offsets Rust exports', () => {
    expect(RecordAt.Length).toBe(0)
    const ids = requests.map((r) => r._id)
    expect(new Set(ids).size).toBe(3)
    for (const [i, at] of records.entries()) {
      const req = requests[i] as Request
      expect(u32(buf, at + RECORD_ID)).toBe(req._id)
      expect(u32(buf, at + RECORD_ROUTE)).toBe(req._route)
      expect((buf[at + RECORD_FLAGS] as number) & FLAG_TLS).toBe(0)
    }
    expect((buf[(records[1] as number) + RECORD_FLAGS] as number) & FLAG_ALLOW).toBe(FLAG_ALLOW)
    expect((buf[(records[0] as number) + RECORD_FLAGS] as number) & FLAG_ALLOW).toBe(0)
    expect(u16(buf, (records[0] as number) + RecordAt.Method)).toBe(4) // "POST"
  })

  it('decodes a routed request: method, path, query, params, peer, version, headers, body', () => {
    expect(routed._route).toBe(USERS)
    expect(routed.method).toBe('POST')
    expect(routed.path).toBe('/users/42/caf%C3%A9')
    expect(routed.queryString).toBe('x=1&y=%20z')
    expect(routed.url).toBe('/users/42/caf%C3%A9?x=1&y=%20z')
    expect(routed.query.get('y')).toBe(' z')
    expect(routed.pathParams).toEqual({ id: '42', name: 'café' })
    expect(routed.httpVersion).toBe('1.1')
    expect(routed.scheme).toBe('http')
    expect(routed.remoteAddress).toBe('127.0.0.1')
    expect(routed.remotePort).toBe(remotePort)
    expect(routed.ip).toBe('127.0.0.1')
    expect(routed.host).toBe('fixture.test')
    expect([...routed.headers.entries()]).toEqual([
      ['host', 'fixture.test'],
      ['x-dup', 'a'],
      ['x-dup', 'b'],
      ['content-type', 'text/plain'],
      ['content-length', '5'],
    ])
    expect(routed.headers.get('X-Dup')).toBe('a, b')
    expect(routed.headers.getAll('x-dup')).toEqual(['a', 'b'])
    expect(routed.body.toString()).toBe('hello')
    expect(routed._allow).toBeNull()
  })

  it('reads Host alone from the record (the fetch path), then the body after the headers', () => {
    const [fresh] = decode().requests as [Request]
    expect(fresh.host).toBe('fixture.test')
    expect(fresh.body.toString()).toBe('hello')
    expect(fresh.headers.get('x-dup')).toBe('a, b')
  })

  it('ends each record with its absolute URL (one Host, a usable one): request.url is one slice', () => {
    const urls = ['http://fixture.test/users/42/caf%C3%A9?x=1&y=%20z', 'http://fixture.test/users/7/x', 'http://fixture.test/big']
    for (const [i, at] of records.entries()) {
      expect((buf[at + RECORD_FLAGS] as number) & FLAG_URL).toBe(FLAG_URL)
      const end = at + recordLength(buf, at) - 4
      const want = urls[i] as string
      expect(u32(buf, end)).toBe(want.length)
      expect(buf.latin1Slice(end - want.length, end)).toBe(want)
      const fresh = decode().requests[i] as Request
      expect(fresh._absoluteUrl()).toBe(want)
      // `Host` is read from the trailer, not from a walk of the fields.
      expect(fresh.host).toBe('fixture.test')
      expect(fresh.headers.get('host')).toBe('fixture.test')
    }
  })

  it('without the URL trailer (a server without fetch handlers): the same records, shorter, read the same', () => {
    const bare = native.recordFixture(false)
    const b = bare.parts[0] as Buffer
    const urls = ['http://fixture.test/users/42/caf%C3%A9?x=1&y=%20z', 'http://fixture.test/users/7/x', 'http://fixture.test/big']
    let at = 0
    for (const [i, withAt] of records.entries()) {
      expect((b[at + RECORD_FLAGS] as number) & FLAG_URL).toBe(0)
      expect(recordLength(b, at)).toBe(recordLength(buf, withAt) - (urls[i] as string).length - 4)
      const req = new Request(b, at, bare.parts, paramNamesOf)
      const same = decode().requests[i] as Request
      expect(req._absoluteUrl()).toBeUndefined()
      expect(req.host).toBe('fixture.test')
      expect([req.method, req.url, req._route, req._allow]).toEqual([same.method, same.url, same._route, same._allow])
      expect([...req.headers.entries()]).toEqual([...same.headers.entries()])
      expect(Buffer.compare(req.body, same.body)).toBe(0)
      at += recordLength(b, at)
    }
    expect(at).toBe(b.length)
  })

  it('decodes a miss: no route, the allow list, no params, an empty body', () => {
    expect(miss._route).toBe(NO_ROUTE)
    expect(miss.method).toBe('DELETE')
    expect(miss.path).toBe('/users/7/x')
    expect(miss.queryString).toBe('')
    expect(miss.pathParams).toEqual({})
    expect(miss._allow).toBe('POST')
    expect([...miss.headers.entries()]).toEqual([['host', 'fixture.test']])
    expect(miss.body.length).toBe(0)
  })

  it('finds a large body in its own buffer, not copied into the batch', () => {
    expect(big._route).toBe(BIG)
    expect(big.method).toBe('PUT')
    expect(big.headers.get('content-length')).toBe('20000')
    const at = records[2] as number
    // The body's fields end 9 bytes before the URL trailer (the record's
    // last bytes): u32 len | u8 placement | u32 index.
    const end = at + recordLength(buf, at) - 4 - u32(buf, at + recordLength(buf, at) - 4)
    expect(u32(buf, end - 9)).toBe(20_000)
    expect(buf[end - 5]).toBe(EXTERNAL)
    expect(u32(buf, end - 4)).toBe(0)
    expect(big.body).toBe(parts[1])
    expect(big.body.length).toBe(20_000)
    for (let i = 0; i < big.body.length; i += 997) expect(big.body[i]).toBe(i % 251)
  })
})
