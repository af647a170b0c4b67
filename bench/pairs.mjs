// The medians of `npm run bench -- --pairs N` (bench/run.mjs): each row is
// measured N times, HTTPy and its baseline taking turns, and reported as
// the medians of the pairs. Its own module so that the arithmetic is
// tested (__test__/bench-pairs.test.ts) without running a benchmark.

/** The median of the finite numbers in `values` (undefined when there are none). */
export function median(values) {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (v.length === 0) return undefined
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}

/**
 * One pair, or the medians of several: each number its own median (so the
 * row's µs and req/s need not come from the same pair), request errors and
 * totals summed; a side with a failed measurement reports its first
 * failure. `cpuRatio` is the median of the pairs' ratios (baseline CPU ÷
 * HTTPy CPU). With one pair, that pair unchanged.
 */
export function medianPair(pairs) {
  if (pairs.length === 1) return pairs[0]
  const side = (k) => {
    const all = pairs.map((p) => p[k])
    const failed = all.find((m) => m.error)
    if (failed) return { error: failed.error }
    const m = (f) => median(all.map(f))
    return {
      rps: m((x) => x.rps),
      p99: m((x) => x.p99),
      usPerReq: m((x) => x.usPerReq),
      syscallsPerReq: m((x) => x.syscallsPerReq),
      switchesPerReq: m((x) => x.switchesPerReq),
      errors: all.reduce((n, x) => n + (x.errors ?? 0), 0),
      total: all.reduce((n, x) => n + (x.total ?? 0), 0),
    }
  }
  const httpy = side('httpy')
  const base = side('base')
  // The median of the pairs' own ratios: each pair shared one stretch of time.
  const cpuRatio = median(pairs.map((p) => p.base.usPerReq / p.httpy.usPerReq))
  return { httpy, base, cpuRatio }
}

/**
 * Two measurements of one server joined into one: CPU per request over
 * both (each half's µs weighted by its requests), the mean rate, the worse
 * p99, errors and totals summed; a failed half fails the whole. The
 * handshake rows measure each pair as HTTPy, baseline, baseline, HTTPy
 * (half the duration each) and join the halves, so that a load that rises
 * or falls through the pair weighs on both sides alike.
 */
export function joinHalves(a, b) {
  if (a.error) return a
  if (b.error) return b
  const total = (a.total ?? 0) + (b.total ?? 0)
  const cpu = a.usPerReq * (a.total ?? 0) + b.usPerReq * (b.total ?? 0)
  return {
    ...a,
    rps: (a.rps + b.rps) / 2,
    p99: Math.max(a.p99 ?? 0, b.p99 ?? 0),
    usPerReq: total > 0 ? cpu / total : NaN,
    syscallsPerReq: median([a.syscallsPerReq, b.syscallsPerReq]),
    switchesPerReq: median([a.switchesPerReq, b.switchesPerReq]),
    errors: (a.errors ?? 0) + (b.errors ?? 0),
    total,
  }
}
