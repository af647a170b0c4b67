// Types of bench/pairs.mjs, for the TypeScript test that checks it.

/** One side of one measurement, as bench/run.mjs's `measure` returns it. */
export interface Measured {
  error?: string
  rps?: number
  p99?: number
  usPerReq?: number
  syscallsPerReq?: number
  switchesPerReq?: number
  errors?: number
  total?: number
}

export interface Pair {
  httpy: Measured
  base: Measured
}

export function median(values: readonly (number | undefined)[]): number | undefined

export function medianPair(pairs: readonly Pair[]): Pair & { cpuRatio?: number }

export function joinHalves(a: Measured, b: Measured): Measured
