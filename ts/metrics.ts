/**
 * Merging a user's `prom-client` registry into HTTPy's metrics endpoint.
 * HTTPy's own metrics are counted and rendered in Rust; a registry's text
 * is appended, minus any family whose name HTTPy already exports (two
 * families with one name would make the whole scrape invalid).
 */
import { HttpyTypeError } from './errors.js'
import type { MetricsRegistry } from './options.js'

/** Route id the core uses for the metrics endpoint when JS serves it. */
export const METRICS_ROUTE = 0xfffffffe

/** Metric families HTTPy renders itself. */
export const NATIVE_FAMILIES: readonly string[] = [
  'http_requests_total',
  'http_request_duration_seconds',
  'http_open_connections',
  'websocket_messages_total',
]

/** Throws at start when `registry` already holds a family HTTPy exports natively. */
export function checkRegistry(registry: MetricsRegistry | undefined): void {
  if (!registry || typeof registry.getSingleMetric !== 'function') return
  for (const name of NATIVE_FAMILIES) {
    if (registry.getSingleMetric(name)) {
      throw new HttpyTypeError(
        'ERR_HTTPY_INVALID_OPTION',
        `metrics.registry already has a metric named ${name}, which httpy counts natively; ` +
          'rename yours or drop it (httpy also counts requests answered without JS)',
      )
    }
  }
}

/** HTTPy's text followed by the registry's, colliding families dropped with a comment saying so. */
export async function mergeMetrics(own: string, registry: MetricsRegistry | undefined): Promise<string> {
  if (!registry) return own
  const theirs = await registry.metrics()
  const out: string[] = []
  let skipping = false
  const skipped = new Set<string>()
  for (const line of theirs.split('\n')) {
    const meta = /^# (?:HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line)
    if (meta) {
      const name = meta[1] as string
      skipping = NATIVE_FAMILIES.includes(name)
      if (skipping) skipped.add(name)
    }
    if (!skipping && line !== '') out.push(line)
  }
  const note = [...skipped].map((n) => `# httpy: skipped the registry's ${n}, a name httpy exports itself`)
  const sep = own === '' || own.endsWith('\n') ? '' : '\n'
  return `${own}${sep}${[...note, ...out].join('\n')}\n`
}
