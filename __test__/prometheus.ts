/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for
 * checking that an endpoint's output is valid, not just that it contains
 * some words: every line must parse, samples must belong to a declared
 * family, families must not repeat, histograms must be cumulative and end
 * in `+Inf` equal to `_count`.
 */

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Family {
  name: string
  type: string
  help: string
  samples: Sample[]
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`)
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y

function parseLabels(s: string, line: string): Record<string, string> {
  const out: Record<string, string> = {}
  LABEL.lastIndex = 0
  while (LABEL.lastIndex < s.length) {
    const at = LABEL.lastIndex
    const m = LABEL.exec(s)
    if (!m || m.index !== at) throw new Error(`bad labels in: ${line}`)
    const name = m[1] as string
    if (name in out) throw new Error(`label ${name} repeated in: ${line}`)
    out[name] = (m[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
  }
  return out
}

function value(v: string, line: string): number {
  if (v === '+Inf') return Infinity
  if (v === '-Inf') return -Infinity
  if (v === 'NaN') return NaN
  const n = Number(v)
  if (v.trim() === '' || Number.isNaN(n)) throw new Error(`bad value in: ${line}`)
  return n
}

/** Parses and validates; throws with the offending line on any error. */
export function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  let current: Family | undefined
  const closed = new Set<string>()
  const familyOf = (sample: string): Family | undefined => {
    for (const suffix of ['', '_bucket', '_sum', '_count', '_total', '_created']) {
      if (!sample.endsWith(suffix)) continue
      const f = families.get(sample.slice(0, sample.length - suffix.length))
      if (f) return f
    }
    return undefined
  }
  for (const line of text.split('\n')) {
    if (line === '') continue
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line)
    if (meta) {
      const [, kind, name = '', rest = ''] = meta
      if (!new RegExp(`^${NAME}$`).test(name)) throw new Error(`bad metric name in: ${line}`)
      if (closed.has(name)) throw new Error(`family ${name} appears twice`)
      if (current && current.name !== name) closed.add(current.name)
      let f = families.get(name)
      if (!f) {
        f = { name, type: 'untyped', help: '', samples: [] }
        families.set(name, f)
      }
      if (kind === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`bad type in: ${line}`)
        f.type = rest
      } else {
        f.help = rest
      }
      current = f
      continue
    }
    if (line.startsWith('#')) continue
    const m = SAMPLE.exec(line)
    if (!m) throw new Error(`unparseable line: ${line}`)
    const f = familyOf(m[1] as string)
    if (!f || f !== current) throw new Error(`sample outside its family's block: ${line}`)
    f.samples.push({ name: m[1] as string, labels: parseLabels(m[2] ?? '', line), value: value(m[3] as string, line) })
  }
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f)
  return families
}

function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: [number, number][]; count?: number }>()
  for (const s of f.samples) {
    const { le, ...rest } = s.labels
    const key = JSON.stringify(Object.entries(rest).sort())
    const e = series.get(key) ?? { buckets: [] }
    series.set(key, e)
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}: bucket without le`)
      e.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value])
    } else if (s.name === `${f.name}_count`) {
      e.count = s.value
    }
  }
  for (const [key, e] of series) {
    for (let i = 1; i < e.buckets.length; i++) {
      const [prevLe, prevN] = e.buckets[i - 1] as [number, number]
      const [le, n] = e.buckets[i] as [number, number]
      if (!(le > prevLe) || n < prevN) throw new Error(`${f.name}${key}: buckets not cumulative`)
    }
    const last = e.buckets[e.buckets.length - 1]
    if (!last || last[0] !== Infinity || last[1] !== e.count) throw new Error(`${f.name}${key}: +Inf bucket != count`)
  }
}

/** The value of the one sample of `family` (exact `name`) whose labels include `labels`; undefined if none. */
export function sampleValue(
  families: Map<string, Family>,
  family: string,
  name: string,
  labels: Record<string, string>,
): number | undefined {
  const f = families.get(family)
  const hit = f?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  return hit?.value
}
