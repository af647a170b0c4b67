/**
 * `npm run bench -- --pairs N` reports the medians of N alternated pairs
 * (bench/pairs.mjs): the arithmetic the published medians rest on.
 */
import { describe, expect, it } from 'vitest'
import { joinHalves, median, medianPair } from '../bench/pairs.mjs'

const side = (usPerReq: number, rps: number, errors = 0) => ({ usPerReq, rps, p99: 0.005, errors, total: rps * 5 })

describe('bench --pairs medians', () => {
  it('median of odd and even counts, ignoring what was not measured', () => {
    expect(median([9, 7, 8])).toBe(8)
    expect(median([8.5, 7.5, 9.5, 8.1])).toBeCloseTo(8.3, 10)
    expect(median([NaN, undefined, 4])).toBe(4)
    expect(median([undefined, NaN])).toBeUndefined()
  })

  it('each column is its own median and the ratio is the median of the pairs’ ratios', () => {
    const r = medianPair([
      { httpy: side(8.0, 100_000), base: side(16.0, 60_000) }, // 2.0
      { httpy: side(10.0, 90_000, 1), base: side(15.0, 61_000) }, // 1.5
      { httpy: side(8.5, 95_000), base: side(15.3, 59_000, 2) }, // 1.8
    ])
    expect(r.httpy.usPerReq).toBe(8.5)
    expect(r.base.usPerReq).toBe(15.3)
    expect(r.httpy.rps).toBe(95_000)
    expect(r.cpuRatio).toBeCloseTo(1.8, 10)
    expect(r.httpy.errors).toBe(1)
    expect(r.base.errors).toBe(2)
    expect(r.httpy.total).toBe((100_000 + 90_000 + 95_000) * 5)
  })

  it('a failed measurement makes its side a failure, and one pair passes through unchanged', () => {
    const failed = medianPair([
      { httpy: side(8, 1), base: side(16, 1) },
      { httpy: { error: 'load process printed no result' }, base: side(15, 1) },
    ])
    expect(failed.httpy).toEqual({ error: 'load process printed no result' })
    expect(failed.base.usPerReq).toBe(15.5)
    const one = { httpy: side(8, 1), base: side(16, 1) }
    expect(medianPair([one])).toBe(one)
  })

  it('two halves of a handshake pair join into CPU per request over both', () => {
    // 1,000 requests at 500 µs and 3,000 at 700 µs: 2.6 s of CPU over 4,000.
    const j = joinHalves(
      { usPerReq: 500, rps: 1000, p99: 0.02, errors: 1, total: 1000 },
      { usPerReq: 700, rps: 3000, p99: 0.05, errors: 0, total: 3000 },
    )
    expect(j.usPerReq).toBeCloseTo(650, 10)
    expect(j.rps).toBe(2000)
    expect(j.p99).toBe(0.05)
    expect(j.errors).toBe(1)
    expect(j.total).toBe(4000)
    expect(joinHalves({ error: 'refused' }, side(1, 1)).error).toBe('refused')
    expect(joinHalves(side(1, 1), { error: 'timeout' }).error).toBe('timeout')
  })
})
