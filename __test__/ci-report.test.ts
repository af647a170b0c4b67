/**
 * `.ci/failed.mjs`, which names the failed tests at the end of the CI log
 * and picks the files CI runs a second time, read against vitest JSON
 * reports of the three shapes it meets: failed tests, a file that failed
 * outside its tests (a hook), and a report that is missing.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..')
const dir = mkdtempSync(join(tmpdir(), 'httpy-ci-report-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function run(mode: string, report: object | undefined): { code: number; out: string } {
  const file = join(dir, `${mode}-${Math.random().toString(36).slice(2)}.json`)
  if (report) writeFileSync(file, JSON.stringify(report))
  try {
    return { code: 0, out: execFileSync('node', [join(root, '.ci', 'failed.mjs'), mode, file], { cwd: root, encoding: 'utf8' }) }
  } catch (e) {
    const err = e as { status: number; stdout: string }
    return { code: err.status, out: err.stdout }
  }
}

const report = {
  testResults: [
    {
      name: join(root, '__test__', 'a.test.ts'),
      status: 'failed',
      message: '',
      assertionResults: [
        { status: 'passed', fullName: 'a works' },
        { status: 'failed', fullName: 'a breaks', failureMessages: ['AssertionError: expected 1 to be 2\n    at a.test.ts:9:3'] },
      ],
    },
    { name: join(root, '__test__', 'b.test.ts'), status: 'passed', message: '', assertionResults: [{ status: 'passed', fullName: 'b' }] },
    { name: join(root, '__test__', 'c.test.ts'), status: 'failed', message: '', assertionResults: [{ status: 'passed', fullName: 'c' }] },
  ],
}

describe('.ci/failed.mjs', () => {
  it('lists the files with a failed test or a failed hook, and only those', () => {
    const r = run('files', report)
    expect(r.code).toBe(0)
    expect(r.out.trim().split('\n')).toEqual(['__test__/a.test.ts', '__test__/c.test.ts'])
  })

  it('names each failed test with its error, and a file that failed outside its tests', () => {
    const r = run('summary', report)
    expect(r.out).toContain('__test__/a.test.ts > a breaks: AssertionError: expected 1 to be 2')
    expect(r.out).not.toContain('a works')
    expect(r.out).toContain('__test__/c.test.ts: failed outside its tests')
  })

  it('exits 2 when there is no report (a failure before or outside the tests)', () => {
    expect(run('files', undefined).code).toBe(2)
  })
})
