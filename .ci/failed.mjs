// Reads a vitest JSON report (HTTPY_TEST_REPORT) and prints what failed:
//   node .ci/failed.mjs files REPORT   -> the failed test files, one per line
//   node .ci/failed.mjs summary REPORT -> each failed test with the first
//                                         lines of its error, for the log's end
// Exits 2 when the report is missing or unreadable (the run failed before
// or outside the tests: lint, build, a crashed worker).
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'

const [mode, file] = process.argv.slice(2)
let report
try {
  report = JSON.parse(readFileSync(file, 'utf8'))
} catch {
  process.exit(2)
}
const failedFiles = []
const lines = []
for (const result of report.testResults ?? []) {
  const name = relative(process.cwd(), result.name)
  const failed = (result.assertionResults ?? []).filter((a) => a.status === 'failed')
  if (result.status === 'failed' || failed.length > 0) failedFiles.push(name)
  if (failed.length === 0 && result.status === 'failed') {
    const why = String(result.message ?? '').split('\n')[0]
    lines.push(`${name}: ${why || 'failed outside its tests (a hook or the file itself: see the log)'}`)
  }
  for (const a of failed) {
    const message = (a.failureMessages ?? []).join('\n').split('\n').slice(0, 4).join(' | ')
    lines.push(`${name} > ${a.fullName}: ${message}`)
  }
}
if (mode === 'files') console.log(failedFiles.join('\n'))
else console.log(lines.join('\n'))
