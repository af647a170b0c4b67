/**
 * Packaging: the tarballs `npm publish` would upload install into an empty
 * project with no Rust toolchain and serve requests from ESM and CommonJS.
 * Uses dist/ as the global setup built it, stages the packages (scripts/stage-package.mjs), packs them
 * with `npm pack`, installs them offline and runs real scripts against them.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, accessSync, constants } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { platformTriple } from '../ts/native.js'

const exec = promisify(execFile)
const root = join(import.meta.dirname, '..')
const triple = platformTriple()
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
// The tarball of the platform package is made from the binary built on this
// machine, which the tests here can only load on linux-x64-gnu.
const canPack = triple === 'linux-x64-gnu'

/** PATH without any directory that holds cargo or rustc. */
function pathWithoutRust(): string {
  const isExe = (p: string) => {
    try {
      accessSync(p, constants.X_OK)
      return true
    } catch {
      return false
    }
  }
  return (process.env.PATH ?? '')
    .split(delimiter)
    .filter((d) => d && !isExe(join(d, 'cargo')) && !isExe(join(d, 'rustc')))
    .join(delimiter)
}

const ESM = `import { App, Response } from 'httpy'
const app = new App()
app.get('/hello/{name}', (req) => Response.text('hello ' + req.pathParams.name))
const server = await app.listen({ host: '127.0.0.1', port: 0 })
const res = await fetch('http://127.0.0.1:' + server.port + '/hello/esm')
console.log(JSON.stringify({ status: res.status, body: await res.text() }))
await server.close()
`
const CJS = `const { App, Response } = require('httpy')
;(async () => {
  const app = new App()
  app.get('/hello/{name}', (req) => Response.text('hello ' + req.pathParams.name))
  const server = await app.listen({ host: '127.0.0.1', port: 0 })
  const res = await fetch('http://127.0.0.1:' + server.port + '/hello/cjs')
  console.log(JSON.stringify({ status: res.status, body: await res.text() }))
  await server.close()
})().catch((e) => { console.error(e); process.exit(1) })
`
// The benchmark subpath from both module systems, and the `httpy` bin
// against a server of this process (run asynchronously: the server needs
// this thread to answer).
const BENCH_ESM = `import { App, Response } from 'httpy'
import { benchmarkRoute } from 'httpy/benchmark'
import { execFile } from 'node:child_process'
const app = new App()
app.get('/b', () => Response.text('b'))
const server = await app.listen({ host: '127.0.0.1', port: 0 })
const r = await benchmarkRoute({ app, route: '/b', numRequests: 200, concurrency: 4 })
const bin = await new Promise((resolve, reject) =>
  execFile('node_modules/.bin/httpy', ['bench', 'http://127.0.0.1:' + server.port + '/b', '-n', '100', '--json'],
    (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout)))))
console.log(JSON.stringify({ api: r.statusCounts, bin: bin.statusCounts }))
await server.close()
`
const BENCH_CJS = `const { benchmarkRoute } = require('httpy/benchmark')
const { profileRoute } = require('httpy/profile')
console.log(typeof benchmarkRoute, typeof profileRoute)
`
// Type-checks against the installed package's own .d.ts files, in both module systems.
const TYPES_MTS = `import { App, Response, type Server } from 'httpy'
const app: App = new App()
app.get('/x', (req) => Response.json({ p: req.path }))
export const started: Promise<Server> = app.listen({ port: 0 })
import { benchmarkRoute, type BenchmarkResults } from 'httpy/benchmark'
import { profileRoute } from 'httpy/profile'
export const prof = profileRoute
export const bench: Promise<BenchmarkResults> = benchmarkRoute({ app, route: '/x', numRequests: 10 })
`
const TYPES_CTS = `import httpy = require('httpy')
import benchmark = require('httpy/benchmark')
const app: httpy.App = new httpy.App()
app.get('/x', () => httpy.Response.text('x'))
const r: Promise<benchmark.BenchmarkResults> = benchmark.benchmarkRoute({ app })
export = { app, r }
`

describe.skipIf(!canPack)('npm packages [runs on linux-x64-gnu only, where the platform package is built]', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'httpy-pack-'))
  const env = { ...process.env, PATH: pathWithoutRust(), npm_config_update_notifier: 'false' }
  let mainTgz = ''
  let platformTgz = ''
  let project = ''

  const node = (file: string, extra: Record<string, string> = {}) =>
    exec(process.execPath, [file], { cwd: project, env: { ...env, ...extra }, timeout: 20_000 })

  async function install(dir: string, tarballs: string[]): Promise<void> {
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
    await exec('npm', ['install', '--offline', '--no-audit', '--no-fund', ...tarballs], {
      cwd: dir,
      env,
      timeout: 120_000,
    })
  }

  beforeAll(async () => {
    const { stdout } = await exec(process.execPath, [join(root, 'scripts', 'stage-package.mjs'), join(tmp, 'stage')], {
      cwd: root,
    })
    const staged = JSON.parse(stdout) as { main: string; platforms: Record<string, string> }
    const pack = async (dir: string) => {
      const { stdout } = await exec('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], {
        cwd: dir,
        env,
        timeout: 120_000,
      })
      return JSON.parse(stdout)[0] as { filename: string; files: { path: string }[]; size: number }
    }
    const mainInfo = await pack(staged.main)
    mainTgz = join(tmp, mainInfo.filename)
    writeFileSync(join(tmp, 'main-files.json'), JSON.stringify(mainInfo))
    const platformInfo = await pack(staged.platforms[triple] as string)
    platformTgz = join(tmp, platformInfo.filename)
    writeFileSync(join(tmp, 'platform-files.json'), JSON.stringify(platformInfo))
    project = join(tmp, 'project')
    await exec('mkdir', ['-p', project])
    await install(project, [mainTgz, platformTgz])
    writeFileSync(join(project, 'esm.mjs'), ESM)
    writeFileSync(join(project, 'cjs.cjs'), CJS)
  }, 300_000)

  afterAll(() => rmSync(tmp, { recursive: true, force: true }))

  it('keeps the main tarball small: JS, types and the loader, no Rust, no tests, no binary', () => {
    const info = JSON.parse(readFileSync(join(tmp, 'main-files.json'), 'utf8')) as {
      files: { path: string }[]
      size: number
    }
    const paths = info.files.map((f) => f.path)
    for (const want of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/cjs/index.js',
      'dist/cjs/index.d.ts', 'dist/cjs/package.json', 'native/index.cjs', 'native/index.d.cts']) {
      expect(paths).toContain(want)
    }
    expect(paths.filter((p) => /\.(rs|node|map|toml)$|^(src|crates|__test__|ts|bench|examples)\//.test(p))).toEqual([])
    expect(paths).toContain('dist/benchmark.js')
    expect(paths).toContain('dist/cli.js')
    expect(info.size).toBeLessThan(300_000)
  })

  it('the platform package holds only its binary and declares os/cpu/libc', () => {
    const info = JSON.parse(readFileSync(join(tmp, 'platform-files.json'), 'utf8')) as { files: { path: string }[] }
    expect(info.files.map((f) => f.path).sort()).toEqual(['README.md', `httpy.${triple}.node`, 'package.json'])
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules', `httpy-${triple}`, 'package.json'), 'utf8'))
    expect(manifest).toMatchObject({ os: ['linux'], cpu: ['x64'], libc: ['glibc'], version: pkg.version })
  })

  it('names every platform package as an optional dependency of the published main package', () => {
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules', 'httpy', 'package.json'), 'utf8'))
    expect(Object.keys(manifest.optionalDependencies).sort()).toEqual(
      ['darwin-arm64', 'darwin-x64', 'linux-arm64-gnu', 'linux-x64-gnu', 'linux-x64-musl', 'win32-x64-msvc'].map(
        (t) => `httpy-${t}`,
      ),
    )
    expect(manifest.optionalDependencies[`httpy-${triple}`]).toBe(pkg.version)
  })

  it('installed with no Rust toolchain on PATH, an ESM script starts a server and gets a 200', async () => {
    expect(env.PATH.split(delimiter).some((d) => existsSync(join(d, 'cargo')))).toBe(false)
    const { stdout } = await node('esm.mjs')
    expect(JSON.parse(stdout)).toEqual({ status: 200, body: 'hello esm' })
  })

  it('a CommonJS script does the same through require()', async () => {
    const { stdout } = await node('cjs.cjs')
    expect(JSON.parse(stdout)).toEqual({ status: 200, body: 'hello cjs' })
  })

  it(
    'httpy/benchmark and httpy/profile load from ESM and CommonJS, and the httpy bin benchmarks a URL',
    async () => {
      writeFileSync(join(project, 'bench.mjs'), BENCH_ESM)
      writeFileSync(join(project, 'bench.cjs'), BENCH_CJS)
      const { stdout } = await node('bench.mjs')
      expect(JSON.parse(stdout)).toEqual({ api: { 200: 200 }, bin: { 200: 100 } })
      expect((await node('bench.cjs')).stdout.trim()).toBe('function function')
    },
  )

  it('the shipped .d.ts types check from ESM and CommonJS consumers', async () => {
    writeFileSync(join(project, 'check.mts'), TYPES_MTS)
    writeFileSync(join(project, 'check.cts'), TYPES_CTS)
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    const args = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext',
      '--target', 'es2022', '--types', 'node', '--typeRoots', join(root, 'node_modules', '@types'),
      'check.mts', 'check.cts']
    const r = await exec(process.execPath, [tsc, ...args], { cwd: project, env, timeout: 60_000 }).catch(
      (e: { stdout: string; stderr: string }) => {
        throw new Error(`tsc failed:\n${e.stdout}${e.stderr}`)
      },
    )
    expect(r.stdout).toBe('')
  })

  it('a binary of another version is refused with a message naming both versions', async () => {
    const manifestPath = join(project, 'node_modules', 'httpy', 'package.json')
    const original = readFileSync(manifestPath, 'utf8')
    writeFileSync(manifestPath, original.replace(`"version": "${pkg.version}"`, '"version": "9.9.9"'))
    try {
      const err = await node('esm.mjs').then(
        () => null,
        (e: { stderr: string }) => e.stderr,
      )
      expect(err).toContain('ERR_HTTPY_BINARY_VERSION')
      expect(err).toContain(`native binary is version ${pkg.version} but the JavaScript package is 9.9.9`)
    } finally {
      writeFileSync(manifestPath, original)
    }
  })

  it('installed without the platform package, loading fails with one error naming the triple and the fix', async () => {
    const bare = join(tmp, 'bare')
    await exec('mkdir', ['-p', bare])
    await install(bare, [mainTgz])
    expect(existsSync(join(bare, 'node_modules', `httpy-${triple}`))).toBe(false)
    writeFileSync(join(bare, 'esm.mjs'), ESM)
    const stderr = await exec(process.execPath, ['esm.mjs'], { cwd: bare, env, timeout: 20_000 }).then(
      () => '',
      (e: { stderr: string }) => e.stderr,
    )
    expect(stderr).toContain('ERR_HTTPY_NO_BINARY')
    expect(stderr).toContain(`no native binary for this platform (${triple})`)
    expect(stderr).toContain(`package httpy-${triple}`)
    expect(stderr).toContain('npm run build:native')
  }, 120_000)
})
