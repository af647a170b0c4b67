/**
 * Statements of the docs and examples that the code decides: they must say
 * what the code does.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { resolveOptions } from '../ts/options.js'

const root = join(__dirname, '..')
const read = (file: string) => readFileSync(join(root, file), 'utf8')

describe('socket buffer defaults', () => {
  it('unset buffers are left to the kernel, and the README and examples/buffer-sizes.ts say so', () => {
    const native = resolveOptions({}, false).native
    expect(native.readBufferSize).toBeUndefined()
    expect(native.writeBufferSize).toBeUndefined()
    expect(read('README.md')).toMatch(/\| `readBufferSize` \(bytes\) \| kernel autotuning \|/)
    const example = read('examples/buffer-sizes.ts')
    expect(example).not.toMatch(/16 KiB default|default: 16 KiB/)
    expect(example.match(/default: kernel autotuning/g)).toHaveLength(2)
  })
})
