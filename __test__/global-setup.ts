/**
 * Runs once before any test file: builds dist/ from ts/ (`npm run build:ts`,
 * the TypeScript half of `npm run build`), so that every file that runs the
 * built package (leak check, deployment, packaging) sees the same, current
 * build whatever the file order. Afterwards, prints one line naming the
 * tests skipped because an external tool is missing (see helpers/tools.ts).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LOCK_ENV } from './helpers/alone.js'
import { SKIP_LOG_ENV, skipSummary } from './helpers/tools.js'

const root = fileURLToPath(new URL('..', import.meta.url))

export default function setup(): () => void {
  execFileSync('npm', ['run', '-s', 'build:ts'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  if (!existsSync(join(root, 'dist', 'index.js'))) throw new Error('npm run build:ts did not produce dist/index.js')
  const dir = mkdtempSync(join(tmpdir(), 'httpy-test-run-'))
  const log = join(dir, 'skipped.jsonl')
  process.env[SKIP_LOG_ENV] = log
  // The lock that lets some files run alone (helpers/alone.ts).
  process.env[LOCK_ENV] = join(dir, 'files.lock')
  return () => {
    const line = existsSync(log) ? skipSummary(readFileSync(log, 'utf8').split('\n')) : ''
    if (line) console.log(`\n${line}\n`)
    rmSync(dir, { recursive: true, force: true })
  }
}
