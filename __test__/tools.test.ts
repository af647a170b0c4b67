/**
 * The rule for external tools (helpers/tools.ts): which environments require every
 * tool, and the one summary line a run without some of them ends with.
 */
import { describe, expect, it } from 'vitest'
import { requireAll, skipSummary, TOOLS } from './helpers/tools.js'

describe('requireTool policy', () => {
  it('requires every tool under CI or HTTPY_REQUIRE_ALL, not otherwise', () => {
    expect(requireAll({ CI: 'true' })).toBe(true)
    expect(requireAll({ CI: '1' })).toBe(true)
    expect(requireAll({ HTTPY_REQUIRE_ALL: '1' })).toBe(true)
    expect(requireAll({})).toBe(false)
    expect(requireAll({ CI: 'false' })).toBe(false)
    expect(requireAll({ CI: '0', HTTPY_REQUIRE_ALL: '' })).toBe(false)
  })

  it('sums skips up in one line naming each tool, its files and its install command', () => {
    const line = skipSummary([
      JSON.stringify({ tool: 'nginx', what: 'nginx.test.ts' }),
      JSON.stringify({ tool: 'aioquic', what: 'http3.test.ts' }),
      JSON.stringify({ tool: 'aioquic', what: 'cache-safety.test.ts' }),
      JSON.stringify({ tool: 'aioquic', what: 'http3.test.ts' }),
      '',
    ])
    expect(line.split('\n')).toHaveLength(1)
    expect(line).toContain('nginx (nginx.test.ts)')
    expect(line).toContain('aioquic (cache-safety.test.ts, http3.test.ts)')
    expect(line).toContain(TOOLS.nginx.install)
    expect(line).toContain(TOOLS.aioquic.install)
    expect(skipSummary([])).toBe('')
  })
})
