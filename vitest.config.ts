import { defineConfig } from 'vitest/config'

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
  },
})
