/**
 * `httpy --help`, `httpy help`, and `--help` / `-h` after any subcommand:
 * the usage on stdout and exit 0, whatever else is on the line.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const CLI = join(__dirname, '..', 'ts', 'cli.ts')

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err && typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 0
      resolve({ code, stdout, stderr })
    })
  })
}

describe('httpy --help', () => {
  for (const args of [['--help'], ['-h'], ['help'], ['bench', '--help'], ['bench', '-h'], ['bench', 'http://127.0.0.1:1/', '--help'], ['bench', '-c', '4', '-h', '--json'], ['help', 'bench']]) {
    it(`httpy ${args.join(' ')}: usage on stdout, exit 0`, async () => {
      const r = await cli(args)
      expect(r.code).toBe(0)
      expect(r.stdout).toMatch(/^Usage: httpy bench <url>/)
      expect(r.stdout).toContain('--concurrency')
      expect(r.stderr).toBe('')
    })
  }

  it('a value that happens to be "-h" is still a value: --header -h is a usage error, not help', async () => {
    const r = await cli(['bench', 'http://127.0.0.1:1/', '--header', '-h'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--header needs "Name: value"/)
  })

  it('no command still prints the usage and exits 2', async () => {
    const r = await cli([])
    expect(r.code).toBe(2)
    expect(r.stdout).toMatch(/^Usage:/)
  })
})
