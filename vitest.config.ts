import { defineConfig } from 'vitest/config'

// With HTTPY_TEST_REPORT=file, a JSON report is written beside the usual
// output: `.ci/run` reads it to name the failed tests at the end of its log.
const report = process.env.HTTPY_TEST_REPORT

export default defineConfig({
  test: {
    include: ['__test__/**/*.test.ts'],
    // Builds dist/ once and reports tests skipped for missing tools.
    globalSetup: ['__test__/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Suites start real servers and clients; one file at a time keeps the
    // 2-core CI machine from timing out under its own load.
    fileParallelism: false,
    pool: 'forks',
    reporters: report ? ['default', 'json'] : ['default'],
    ...(report ? { outputFile: { json: report } } : {}),
  },
})
