/**
 * External tools the suite drives as independent peers (nginx, curl, the
 * aioquic HTTP/3 client, valgrind, zstd, openssl, Python's websockets
 * client, the kosoku Autobahn runner, headless Chromium). `requireTool` is the one
 * place that decides what happens when one is missing:
 *
 * - under CI (`CI` set and not "false"/"0") or with `HTTPY_REQUIRE_ALL=1`,
 *   a missing tool throws, so the file fails and the run fails;
 * - otherwise it returns false, the caller skips its tests
 *   (`describe.skipIf(!requireTool('nginx'))`), and the global setup
 *   prints one line at the end of the run naming what was skipped and the
 *   command that installs it.
 *
 * `HTTPY_TEST_HIDE_TOOLS=nginx,zstd` makes tools count as missing, to see
 * both behaviours on a machine that has them.
 */
import { spawnSync } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import { basename } from 'node:path'

export type Tool = 'nginx' | 'curl' | 'aioquic' | 'requests' | 'valgrind' | 'zstd' | 'openssl' | 'redis' | 'pywebsockets' | 'kosoku' | 'chromium' | 'pebble' | 'python3'

interface ToolInfo {
  /** Whether the tool runs here. */
  probe: () => boolean
  /** What installs it (Debian/Ubuntu, as `.ci/run` does). */
  install: string
}

const runs = (cmd: string, args: string[]): boolean => {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 20_000 })
  return r.error === undefined && r.status === 0
}

/** nginx is in /usr/sbin, which is not on every user's PATH. */
export const nginxBin: string | undefined = ['nginx', '/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => runs(p, ['-v']))

/** Debian names it `chromium`, other systems `chromium-browser`. */
export const chromiumBin: string | undefined = ['chromium', 'chromium-browser'].find((p) => runs(p, ['--version']))

/** Pebble (Let's Encrypt's test CA) is where `go install` puts it, which is rarely on PATH. */
export const pebbleBin: string | undefined = [
  'pebble',
  `${process.env.GOPATH ?? `${process.env.HOME ?? ''}/go`}/bin/pebble`,
].find((p) => runs(p, ['-version']))

export const TOOLS: Record<Tool, ToolInfo> = {
  nginx: { probe: () => nginxBin !== undefined, install: 'apt-get install nginx-light' },
  curl: { probe: () => runs('curl', ['--version']), install: 'apt-get install curl' },
  aioquic: {
    probe: () => runs('python3', ['-c', 'import aioquic']),
    install: 'apt-get install python3-pip && python3 -m pip install aioquic',
  },
  requests: {
    probe: () => runs('python3', ['-c', 'import requests']),
    install: 'apt-get install python3-pip && python3 -m pip install requests',
  },
  valgrind: { probe: () => runs('valgrind', ['--version']), install: 'apt-get install valgrind' },
  // Python's ssl module: a TLS client that tells a close_notify from a bare FIN.
  python3: { probe: () => runs('python3', ['-c', 'import ssl']), install: 'apt-get install python3' },
  zstd: { probe: () => runs('zstd', ['--version']), install: 'apt-get install zstd' },
  openssl: { probe: () => runs('openssl', ['version']), install: 'apt-get install openssl' },
  // The ACME CA of the automatic-certificate tests.
  pebble: {
    probe: () => pebbleBin !== undefined,
    install: 'go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3',
  },
  // The broker of the cross-server pub/sub tests (redis-cli comes with it).
  redis: {
    probe: () => runs('redis-server', ['--version']) && runs('redis-cli', ['--version']),
    install: 'apt-get install redis-server',
  },
  pywebsockets: {
    probe: () => runs('python3', ['-c', 'import websockets.asyncio.client']),
    install: 'apt-get install python3-pip && python3 -m pip install websockets',
  },
  kosoku: {
    probe: () => runs('kosoku', ['--help']),
    install: 'apt-get install python3-pip && python3 -m pip install kosoku',
  },
  // A real browser as a WebSocket client (websocket-browser.test.ts).
  chromium: { probe: () => chromiumBin !== undefined, install: 'apt-get install chromium' },
}

/** True when a missing tool must fail the run instead of skipping tests. */
export function requireAll(env: NodeJS.ProcessEnv = process.env): boolean {
  const on = (v: string | undefined) => v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false'
  return on(env.CI) || on(env.HTTPY_REQUIRE_ALL)
}

const known = new Map<Tool, boolean>()

/** Where skips are recorded for the end-of-run summary (set by the global setup). */
export const SKIP_LOG_ENV = 'HTTPY_TEST_SKIP_LOG'

/**
 * Whether `name` is usable here. Missing: throws under CI or
 * HTTPY_REQUIRE_ALL=1; otherwise records the skip (with `what`, by default
 * the calling test file) for the summary and returns false.
 */
export function requireTool(name: Tool, what?: string): boolean {
  let ok = known.get(name)
  if (ok === undefined) {
    const hidden = (process.env.HTTPY_TEST_HIDE_TOOLS ?? '').split(',').map((t) => t.trim())
    ok = !hidden.includes(name) && TOOLS[name].probe()
    known.set(name, ok)
  }
  if (ok) return true
  if (requireAll()) {
    throw new Error(
      `${name} is required (CI or HTTPY_REQUIRE_ALL=1) but missing here; install it: ${TOOLS[name].install} (or run bash .ci/run)`,
    )
  }
  const log = process.env[SKIP_LOG_ENV]
  if (log) appendFileSync(log, JSON.stringify({ tool: name, what: what ?? callerFile() }) + '\n')
  return false
}

/** The test file that called requireTool, from the stack. */
function callerFile(): string {
  const lines = (new Error().stack ?? '').split('\n').slice(1)
  for (const l of lines) {
    const m = /([^\s(]+\.test\.ts)/.exec(l)
    if (m) return basename(m[1] as string)
  }
  return 'a test'
}

/** The one summary line for recorded skips (empty when none). */
export function skipSummary(lines: string[]): string {
  const byTool = new Map<Tool, Set<string>>()
  for (const l of lines) {
    if (!l.trim()) continue
    const { tool, what } = JSON.parse(l) as { tool: Tool; what: string }
    if (!byTool.has(tool)) byTool.set(tool, new Set())
    byTool.get(tool)?.add(what)
  }
  if (byTool.size === 0) return ''
  const parts = [...byTool].map(([t, w]) => `${t} (${[...w].sort().join(', ')})`)
  const install = [...byTool.keys()].map((t) => TOOLS[t].install)
  return (
    `SKIPPED for missing tools: ${parts.join('; ')}. Install: ${install.join('; ')} ` +
    `(or run bash .ci/run). With CI=1 or HTTPY_REQUIRE_ALL=1 these fail instead.`
  )
}
