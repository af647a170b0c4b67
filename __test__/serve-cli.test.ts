/**
 * `httpy serve <module>`: a Bun-style `export default { fetch }` module and
 * a TypeScript Hono app served by the CLI in their own processes, and the
 * errors for modules without a handler and bad arguments.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { fromModule, parseServeArgs } from '../ts/serve-module.js'

const CLI = join(__dirname, '..', 'ts', 'cli.ts')
const FIXTURES = join(__dirname, 'fixtures', 'fetch')

const children: ChildProcess[] = []
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGTERM')
})

/** Starts `httpy serve …` and resolves with the URL it prints. */
function start(args: string[]): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    const timer = setTimeout(() => reject(new Error(`no URL printed; stderr: ${err}`)), 20_000)
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /listening on (http\S+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(m[1] as string)
      }
    })
    child.stderr?.on('data', (c: Buffer) => (err += c.toString()))
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`exited with ${code}: ${err}`))
    })
  })
}

describe('httpy serve', () => {
  it('serves an export default { fetch } module with its own options', async () => {
    const url = await start([join(FIXTURES, 'module.mjs')])
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(await (await fetch(`${url}/a/b`)).json()).toEqual({ path: '/a/b', client: '127.0.0.1' })
  })

  it('serves a TypeScript Hono app, the port from the command line', async () => {
    const url = await start([join(FIXTURES, 'hono-app.ts'), '--port', '0'])
    expect(await (await fetch(`${url}/hello/ts`)).text()).toBe('hello ts')
  })

  it('serves with worker processes', async () => {
    const url = await start([join(FIXTURES, 'module.mjs'), '--workers', '2'])
    const answers = await Promise.all([1, 2, 3, 4].map(async (i) => (await fetch(`${url}/w${i}`)).json()))
    expect(answers).toEqual([1, 2, 3, 4].map((i) => ({ path: `/w${i}`, client: '127.0.0.1' })))
  })

  it('names what is missing', () => {
    expect(() => fromModule({ default: { port: 1 } }, 'x.mjs')).toThrow(/x\.mjs exports no fetch handler/)
    expect(() => parseServeArgs([])).toThrow(/missing <module>/)
    expect(() => parseServeArgs(['a.mjs', '--tls-cert', 'c.pem'])).toThrow(/go together/)
    expect(parseServeArgs(['a.mjs', '-p', '9', '--self-signed', '-w', '2'])).toEqual({
      file: 'a.mjs',
      overrides: { port: 9, tls: 'self-signed', workers: 2 },
    })
    const fn = () => new Response('')
    expect(fromModule({ fetch: fn }, 'm').fetch).toBe(fn)
    expect(fromModule({ default: fn }, 'm').fetch).toBe(fn)
  })
})
