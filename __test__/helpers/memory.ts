/**
 * Memory of the test process after two full garbage collections, in MB, so
 * that garbage is not mistaken for a leak: RSS, the JS heap in use, and what
 * V8 keeps committed for its heap (it may stay large after a collection; see
 * docs/testing.md, "RSS on Node.js 24").
 */
import v8 from 'node:v8'
import vm from 'node:vm'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

export function memory(): { rss: number; heap: number; heapTotal: number } {
  gc()
  gc()
  const m = process.memoryUsage()
  return { rss: m.rss / 1024 / 1024, heap: m.heapUsed / 1024 / 1024, heapTotal: m.heapTotal / 1024 / 1024 }
}
