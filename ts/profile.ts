/**
 * The guide's cProfile recipe for Node.js: record a V8 CPU profile of this
 * process (where the handlers run) while `benchmarkRoute` loads a route,
 * then list the functions that spent the most time on the CPU themselves.
 */
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import type { Profiler } from 'node:inspector'
import { resolve } from 'node:path'
import { benchmarkRoute, type BenchmarkOptions, type BenchmarkResults } from './benchmark.js'
import { HttpyTypeError } from './errors.js'

export interface ProfileOptions extends BenchmarkOptions {
  /** Entries in the returned (and printed) top list. Default 20. */
  top?: number
  /** Where to save the `.cpuprofile` (open it in Chrome DevTools). Default `httpy-<time>.cpuprofile` in the working directory; `false` saves nothing. */
  outFile?: string | false
  /** Print the top list to stdout. Default true. */
  print?: boolean
  /** Sampling interval in microseconds. Default 100. */
  samplingInterval?: number
}

export interface ProfileEntry {
  functionName: string
  /** `file:line` (1-based), or '' for native/internal frames. */
  location: string
  /** Milliseconds spent in the function itself. */
  selfTime: number
  /** Share of all sampled time, 0-1. */
  selfShare: number
}

export interface ProfileResult {
  results: BenchmarkResults
  top: ProfileEntry[]
  /** Absolute path of the saved profile, if saved. */
  profilePath: string | undefined
  profile: Profiler.Profile
}

/** Adds up self time per function (by name and location) from the samples. */
export function topFunctions(profile: Profiler.Profile, n = 20): ProfileEntry[] {
  const byId = new Map<number, Profiler.ProfileNode>()
  for (const node of profile.nodes) byId.set(node.id, node)
  const selfUs = new Map<number, number>()
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  // A sample's time is the gap to the next sample.
  for (let i = 0; i < samples.length; i++) {
    const next = deltas[i + 1] ?? 0
    const id = samples[i] as number
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, next))
  }
  let total = 0
  const agg = new Map<string, ProfileEntry>()
  for (const [id, us] of selfUs) {
    const node = byId.get(id)
    if (!node) continue
    total += us
    const f = node.callFrame
    const name = f.functionName || '(anonymous)'
    const location = f.url ? `${f.url.replace(/^file:\/\//, '')}:${f.lineNumber + 1}` : ''
    const key = `${name}\u0000${location}`
    const e = agg.get(key)
    if (e) e.selfTime += us / 1000
    else agg.set(key, { functionName: name, location, selfTime: us / 1000, selfShare: 0 })
  }
  const list = [...agg.values()].sort((a, b) => b.selfTime - a.selfTime).slice(0, n)
  for (const e of list) e.selfShare = total > 0 ? (e.selfTime * 1000) / total : 0
  return list
}

/** The top list as an aligned text table. */
export function formatTop(top: ProfileEntry[]): string {
  const lines = ['  self ms   share  function (location)']
  for (const e of top) {
    lines.push(
      `${e.selfTime.toFixed(1).padStart(8)}  ${(e.selfShare * 100).toFixed(1).padStart(5)}%  ${e.functionName}${e.location ? ` (${e.location})` : ''}`,
    )
  }
  return lines.join('\n')
}

/**
 * Profiles the handlers of this process under load.
 *
 * ```ts
 * import { profileRoute } from 'httpy/profile'
 * if (process.env.PROFILE === '1') {
 *   const { top, profilePath } = await profileRoute({ route: '/api/users/42', duration: 5, concurrency: 32 })
 *   // prints the top 20 functions by self time; open profilePath in DevTools
 * }
 * ```
 */
export async function profileRoute(options: ProfileOptions = {}): Promise<ProfileResult> {
  const { top: n = 20, outFile, print = true, samplingInterval = 100, ...bench } = options
  if (!Number.isInteger(n) || n < 1) throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'profileRoute: "top" must be a positive integer')
  if (!Number.isInteger(samplingInterval) || samplingInterval < 1) {
    throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'profileRoute: "samplingInterval" must be a positive integer (µs)')
  }
  const session = new Session()
  session.connect()
  let profile: Profiler.Profile
  let results: BenchmarkResults
  try {
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: samplingInterval })
    await session.post('Profiler.start')
    try {
      results = await benchmarkRoute(bench)
    } finally {
      profile = (await session.post('Profiler.stop')).profile
    }
    await session.post('Profiler.disable')
  } finally {
    session.disconnect()
  }
  const top = topFunctions(profile, n)
  let profilePath: string | undefined
  if (outFile !== false) {
    profilePath = resolve(outFile ?? `httpy-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`)
    await writeFile(profilePath, JSON.stringify(profile))
  }
  if (print) {
    console.log(`Top ${top.length} functions by self time (${results.totalRequests} requests, ${results.requestsPerSecond.toFixed(0)} req/s):`)
    console.log(formatTop(top))
    if (profilePath) console.log(`Profile saved to ${profilePath}`)
  }
  return { results, top, profilePath, profile }
}
