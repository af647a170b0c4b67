// `npm run bench:micro`: runs bench/micro.ts on the compiled package, as
// users run it. Builds dist/ (`npm run build:ts`), compiles micro.ts alone
// with esbuild, its `../ts/*.js` imports pointed at the built `../dist/*.js`
// and packages left as imports, into bench/.micro.mjs (ignored by git),
// and runs that with plain `node`, passing the arguments on
// (`npm run bench:micro -- --time 2000 --only fetch`). `--no-build` skips
// the build (dist/ as it is).
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const noBuild = args.includes('--no-build')
const run = (cmd, argv) => {
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status ?? 1)
}
if (!noBuild) run('npm', ['run', '--silent', 'build:ts'])
const outfile = join(root, 'bench', '.micro.mjs')
await build({
  entryPoints: [join(root, 'bench', 'micro.ts')],
  outfile,
  bundle: true,
  packages: 'external',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
  plugins: [
    {
      name: 'dist',
      setup(b) {
        b.onResolve({ filter: /^\.\.\/ts\// }, (a) => ({ path: a.path.replace(/^\.\.\/ts\//, '../dist/'), external: true }))
      },
    },
  ],
})
run(process.execPath, [outfile, ...args.filter((a) => a !== '--no-build')])
