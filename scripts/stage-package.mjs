// Stages the packages exactly as they are published, without publishing:
//   node scripts/stage-package.mjs <outDir>
// - <outDir>/httpy: the main package with `optionalDependencies` naming one
//   platform package per `napi.targets` entry (what `napi pre-publish` adds;
//   the repository's package.json leaves them out so that `npm ci` works
//   before those packages exist on the registry);
// - <outDir>/npm/<triple>: each platform package, with its `.node` copied
//   from native/ when this machine built one.
// Run `npm run build:ts` first. Prints the staged directories as JSON.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = process.argv[2]
if (!out) {
  console.error('usage: node scripts/stage-package.mjs <outDir>')
  process.exit(2)
}
if (!existsSync(join(root, 'dist', 'index.js')) || !existsSync(join(root, 'dist', 'cjs', 'index.js'))) {
  console.error('dist/ is missing: run `npm run build:ts` first')
  process.exit(1)
}

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const main = join(out, 'httpy')
mkdirSync(join(main, 'native'), { recursive: true })
cpSync(join(root, 'dist'), join(main, 'dist'), { recursive: true })
for (const f of ['index.cjs', 'index.d.cts']) cpSync(join(root, 'native', f), join(main, 'native', f))
cpSync(join(root, 'README.md'), join(main, 'README.md'))

const triples = readdirSync(join(root, 'npm'), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort()
pkg.optionalDependencies = Object.fromEntries(triples.map((t) => [`${pkg.name}-${t}`, pkg.version]))
// `prepare` builds the core from source in a clone; a published package
// ships its binary in the platform packages instead.
delete pkg.scripts.prepare
writeFileSync(join(main, 'package.json'), JSON.stringify(pkg, null, 2) + '\n')

const platforms = {}
for (const t of triples) {
  const dir = join(out, 'npm', t)
  cpSync(join(root, 'npm', t), dir, { recursive: true })
  const node = `${pkg.napi.binaryName}.${t}.node`
  const built = join(root, 'native', node)
  if (existsSync(built)) {
    cpSync(built, join(dir, node))
    platforms[t] = dir
  }
}
console.log(JSON.stringify({ main, platforms }))
