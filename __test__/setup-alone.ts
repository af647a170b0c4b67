/**
 * Runs in each test worker before a file (vitest.config.ts, setupFiles):
 * takes the run's lock before the file's first test, shared or exclusive as
 * helpers/alone.ts decides, and gives it back after the file's own afterAll
 * hooks (setup hooks run first and finish last).
 */
import { afterAll, beforeAll } from 'vitest'
import { takeTurn } from './helpers/alone.js'

let release: (() => Promise<void>) | undefined

// Waiting for a file in ALONE to finish can take as long as that file.
beforeAll(async (suite) => {
  release = await takeTurn(suite.file.filepath)
}, 600_000)

afterAll(async () => {
  await release?.()
})
