// Preloaded by `node bench/threads.mjs --gc` (`node --import`): counts the
// server's garbage collections and their pause times, and prints
// `GC <scavenges> <mark-compacts> <ms>` on stdout at each SIGUSR2, so the
// load's window can be told apart from start-up.
import { PerformanceObserver, constants } from 'node:perf_hooks'

let scavenges = 0
let marks = 0
let ms = 0
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = e.detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++
    else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) marks++
    ms += e.duration
  }
}).observe({ entryTypes: ['gc'] })
process.on('SIGUSR2', () => {
  process.stdout.write(`GC ${scavenges} ${marks} ${ms.toFixed(3)}\n`)
})
