import { describe, expect, it } from 'vitest'
import { Headers, Response } from '../ts/index.js'

describe('Headers', () => {
  it('is case-insensitive and multi-valued', () => {
    const h = new Headers({ 'Content-Type': 'text/plain', 'Set-Cookie': ['a=1', 'b=2'] })
    expect(h.get('content-type')).toBe('text/plain')
    expect(h.getSetCookie()).toEqual(['a=1', 'b=2'])
    h.append('x-a', '1').append('X-A', '2')
    expect(h.get('x-a')).toBe('1, 2')
    expect(h.delete('X-A')).toBe(true)
    expect(h.has('x-a')).toBe(false)
  })

  it('rejects invalid names and values with a stable code', () => {
    const h = new Headers()
    expect(() => h.set('bad name', 'x')).toThrow(expect.objectContaining({ code: 'ERR_HTTPY_INVALID_HEADER' }))
    expect(() => h.set('x', 'a\r\nb: c')).toThrow(expect.objectContaining({ code: 'ERR_HTTPY_INVALID_HEADER' }))
  })

  it('copies are independent (copy-on-write)', () => {
    const a = new Headers({ 'x-a': '1' })
    const b = new Headers(a)
    b.set('x-a', '2')
    a.append('x-b', '3')
    expect(a.get('x-a')).toBe('1')
    expect(b.get('x-a')).toBe('2')
    expect(b.has('x-b')).toBe(false)
    expect(a.toWire()).toBe('x-a\n1\nx-b\n3')
  })

  it('responses built from shared templates do not leak into each other', () => {
    const r1 = Response.json({ a: 1 })
    r1.headers.set('content-type', 'application/vnd.test+json')
    const r2 = Response.json({ b: 2 })
    expect(r2.headers.get('content-type')).toBe('application/json')
    const r3 = Response.text('x', { status: 201, headers: { 'x-id': '7' } })
    expect(r3.status).toBe(201)
    expect(r3.headers.get('x-id')).toBe('7')
    expect(Response.text('y').headers.has('x-id')).toBe(false)
  })
})
