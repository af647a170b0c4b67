// Builds the CommonJS flavour of the package into dist/cjs: every ts/ module
// transformed one-to-one (same file names, so the .d.ts files tsc wrote for
// the ESM build apply as they are, but for imports that leave dist/: one
// level deeper here, they get one more `../`), with `import.meta.url`
// rewritten to the CommonJS equivalent. Run after `tsc -p tsconfig.build.json`.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = fileURLToPath(new URL('..', import.meta.url))
const src = join(root, 'ts')
const esm = join(root, 'dist')
const out = join(root, 'dist', 'cjs')

const entries = readdirSync(src)
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
  .map((f) => join(src, f))

mkdirSync(out, { recursive: true })
await build({
  entryPoints: entries,
  outdir: out,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  bundle: false,
  logLevel: 'warning',
  define: { 'import.meta.url': '__httpyModuleUrl' },
  banner: { js: "'use strict';\nconst __httpyModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
})
writeFileSync(join(out, 'package.json'), '{ "type": "commonjs" }\n')
for (const f of readdirSync(esm)) {
  if (!f.endsWith('.d.ts')) continue
  const types = readFileSync(join(esm, f), 'utf8').replace(/(from |import\()(['"])\.\.\//g, '$1$2../../')
  writeFileSync(join(out, f), types)
}
