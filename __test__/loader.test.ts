import { execFile } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { checkVersion, native, packageVersion, platformTriple } from '../ts/native.js'

const run = promisify(execFile)
const root = join(import.meta.dirname, '..')
const tsx = join(root, 'node_modules', '.bin', 'tsx')

async function loadInChild(env: Record<string, string>): Promise<{ ok: boolean; code?: string; message?: string }> {
  const { stdout } = await run(tsx, [join(root, '__test__', 'fixtures', 'load-core.ts')], {
    cwd: root,
    env: { ...process.env, ...env },
    timeout: 30_000,
  })
  return JSON.parse(stdout.trim().split('\n').pop() as string)
}

describe('native loader', () => {
  it('loads the local build and its version matches package.json', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
    expect(native.version?.()).toBe(pkg.version)
    expect(packageVersion).toBe(pkg.version)
  })

  it('names this platform the way napi-rs names packages', () => {
    const t = platformTriple()
    expect(t.startsWith(`${process.platform}-${process.arch}`)).toBe(true)
    if (process.platform === 'linux') expect(t).toMatch(/-(gnu|musl)$/)
  })

  it('with no matching binary, throws one error naming the triple, the package and the fix', async () => {
    const r = await loadInChild({ HTTPY_SIMULATE_NO_BINARY: '1' })
    const t = platformTriple()
    expect(r.ok).toBe(false)
    expect(r.code).toBe('ERR_HTTPY_NO_BINARY')
    expect(r.message).toContain(`(${t})`)
    expect(r.message).toContain(`httpy-${t}`)
    expect(r.message).toContain(`native/httpy.${t}.node`)
    expect(r.message).toContain('npm run build:native')
    expect(r.message).toContain('--include=optional')
  })

  it('without the override the same child loads fine (the override is what fails it)', async () => {
    const r = await loadInChild({})
    expect(r).toMatchObject({ ok: true })
  })

  it('refuses a binary of another version with a message naming both', () => {
    expect(() => checkVersion({ version: () => '0.0.9' }, '0.1.0')).toThrow(
      expect.objectContaining({
        code: 'ERR_HTTPY_BINARY_VERSION',
        message: expect.stringMatching(/binary is version 0\.0\.9 but the JavaScript package is 0\.1\.0/),
      }),
    )
    expect(() => checkVersion({}, '0.1.0')).toThrow(expect.objectContaining({ code: 'ERR_HTTPY_BINARY_VERSION' }))
    expect(() => checkVersion({ version: () => '0.1.0' }, '0.1.0')).not.toThrow()
  })

  it('keeps every version in step: package.json, Cargo workspace, platform packages', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
    const cargo = readFileSync(join(root, 'Cargo.toml'), 'utf8')
    const ws = /\[workspace\.package\][^[]*?version\s*=\s*"([^"]+)"/.exec(cargo)
    expect(ws?.[1]).toBe(pkg.version)
    const dirs = readdirSync(join(root, 'npm'))
    expect(dirs.length).toBeGreaterThanOrEqual(6)
    for (const d of dirs) {
      const p = JSON.parse(readFileSync(join(root, 'npm', d, 'package.json'), 'utf8'))
      expect(p.name).toBe(`httpy-${d}`)
      expect(p.version).toBe(pkg.version)
    }
  })
})
