import { BaseSequencer, type TestSpecification } from 'vitest/node'
import { defineConfig } from 'vitest/config'
import { isAlone } from './__test__/helpers/alone.js'

// With HTTPY_TEST_REPORT=file, a JSON report is written beside the usual
// output: `.ci/run` reads it to name the failed tests at the end of its log.
const report = process.env.HTTPY_TEST_REPORT

/**
 * The files that must run alone (helpers/alone.ts) go first, longest first
 * as vitest orders them; then the rest, two at a time. While a file runs
 * alone the second worker waits for the lock, so the alone files are put
 * together rather than each one stalling a pair of ordinary files.
 */
class AloneFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files)
    return [...sorted.filter((f) => isAlone(f.moduleId)), ...sorted.filter((f) => !isAlone(f.moduleId))]
  }
}

export default defineConfig({
  test: {
    include: ['__test__/**/*.test.ts'],
    // Builds dist/ once, creates the run's lock file (helpers/alone.ts) and
    // reports tests skipped for missing tools.
    globalSetup: ['__test__/global-setup.ts'],
    // Takes the lock before each file: shared, or exclusive for the files
    // that must run alone.
    setupFiles: ['__test__/setup-alone.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two files at a time on the 2-core CI machine: most files spend their
    // time waiting on sockets, child processes and timers, not on a core.
    // The files that measure time or resources, or load both cores
    // themselves, run alone (helpers/alone.ts); `--no-file-parallelism`
    // runs every file alone, one after the other.
    maxWorkers: 2,
    minWorkers: 1,
    pool: 'forks',
    sequence: { sequencer: AloneFirst },
    reporters: report ? ['default', 'json'] : ['default'],
    ...(report ? { outputFile: { json: report } } : {}),
  },
})
