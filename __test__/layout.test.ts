/**
 * The layout rules of the README that a reader cannot see at a glance:
 * no import circle between the modules of `ts/` (type-only imports
 * included) nor between those of `src/`, none between the modules or the
 * folders of `crates/core/src` (scripts/core-cycles.py), and `src/lib.rs`
 * declaring modules only.
 */
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..')

/** Module name → the modules of the same folder it refers to. */
function graph(dir: string, ext: string, refs: (src: string) => string[]): Map<string, Set<string>> {
  const names = readdirSync(join(root, dir))
    .filter((f) => f.endsWith(ext))
    .map((f) => f.slice(0, -ext.length))
  const g = new Map<string, Set<string>>()
  for (const name of names) {
    const src = readFileSync(join(root, dir, name + ext), 'utf8')
    g.set(name, new Set(refs(src).filter((r) => r !== name && names.includes(r))))
  }
  return g
}

/** Every cycle, as the path that closes it (empty when there is none). */
function cycles(g: Map<string, Set<string>>): string[][] {
  const found: string[][] = []
  const done = new Set<string>()
  const visit = (node: string, path: string[]): void => {
    const at = path.indexOf(node)
    if (at >= 0) {
      found.push([...path.slice(at), node])
      return
    }
    if (done.has(node)) return
    for (const next of g.get(node) ?? []) visit(next, [...path, node])
    done.add(node)
  }
  for (const node of g.keys()) visit(node, [])
  return found
}

const tsRefs = (src: string): string[] =>
  [...src.matchAll(/(?:from|import\()\s*['"]\.\/([\w-]+)\.js['"]/g)].map((m) => m[1] as string)
const rsRefs = (src: string): string[] => {
  const out = [...src.matchAll(/crate::(\w+)/g)].map((m) => m[1] as string)
  for (const group of src.matchAll(/use crate::\{([^}]*)\}/g)) out.push(...((group[1] as string).match(/\w+/g) ?? []))
  return out
}

describe('layout', () => {
  it('ts/ has no import circle', () => {
    const g = graph('ts', '.ts', tsRefs)
    expect(g.get('server')?.has('routes')).toBe(true) // the graph is really read
    expect(cycles(g)).toEqual([])
  })

  it('src/ has no module circle', () => {
    const g = graph('src', '.rs', rsRefs)
    expect(g.get('server')?.has('contract')).toBe(true)
    expect(cycles(g)).toEqual([])
  })

  it('src/lib.rs only declares modules', () => {
    const code = readFileSync(join(root, 'src', 'lib.rs'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('//'))
    expect(code.every((l) => /^pub mod \w+;$/.test(l))).toBe(true)
  })

  it('crates/core has no module or folder circle', () => {
    // The script exits 1 and names the circle when there is one.
    const out = execFileSync('python3', [join(root, 'scripts', 'core-cycles.py')], { encoding: 'utf8' })
    expect(out).toMatch(/^no circles among \d+ modules and \d+ top-level modules/)
  })
})
