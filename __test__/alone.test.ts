/**
 * The lock that lets some files run alone while the others run two at a
 * time (helpers/alone.ts): shared turns overlap, an exclusive turn waits
 * for every shared one to end, and a shared turn waits for an exclusive one.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { ALONE, isAlone, takeTurn } from './helpers/alone.js'
import { sleep } from './helpers/wait.js'

const dir = mkdtempSync(join(tmpdir(), 'httpy-alone-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

it('names test files that exist, by their base name', () => {
  // A renamed file would otherwise drop out of the list unnoticed.
  for (const file of Object.keys(ALONE)) expect(existsSync(join(import.meta.dirname, file)), file).toBe(true)
  expect(isAlone('/x/__test__/soak.test.ts')).toBe(true)
  expect(isAlone('/x/__test__/smoke.test.ts')).toBe(false)
})

it('shared turns overlap; an exclusive turn waits for them, and a shared one for it', async () => {
  const lock = join(dir, 'files.lock')
  const order: string[] = []
  // Notes when a turn starts.
  const noted = <T>(turn: Promise<T>, what: string) =>
    turn.then((release) => {
      order.push(what)
      return release
    })
  // Two ordinary files hold the lock together.
  const a = await takeTurn('smoke.test.ts', lock)
  const b = await takeTurn('layout.test.ts', lock)
  const alone = noted(takeTurn('soak.test.ts', lock), 'alone starts')
  await sleep(300)
  order.push('shared end')
  await a()
  await b()
  const release = await alone
  // An ordinary file now waits until the alone one is done.
  const next = noted(takeTurn('smoke.test.ts', lock), 'next shared starts')
  await sleep(300)
  order.push('alone ends')
  await release()
  await (await next)()
  expect(order).toEqual(['shared end', 'alone starts', 'alone ends', 'next shared starts'])
})
