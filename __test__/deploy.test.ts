/**
 * The deployment recipes, checked without a Docker engine or a cluster:
 * every file `deploy/Dockerfile` copies exists, its runtime stage is not
 * root, the same build command produces `dist/`, and `deploy/app.mjs` runs
 * with the image's and the manifest's environment as an unprivileged user;
 * `deploy/k8s.yaml` parses and its probes hit routes that answer as the
 * manifest expects, through a shutdown. dist/ is built once by the global
 * setup (`npm run build:ts`, the TypeScript half of `prepare`).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadAll } from 'js-yaml'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { freePort, getOnce, waitFor } from './helpers/proc.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const dockerfile = readFileSync(join(root, 'deploy/Dockerfile'), 'utf8')

interface Instruction {
  op: string
  args: string
}

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions(text: string): Instruction[] {
  const joined = text.replace(/\\\n/g, ' ')
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const sp = l.indexOf(' ')
      return { op: l.slice(0, sp).toUpperCase(), args: l.slice(sp + 1).trim() }
    })
}

function stages(list: Instruction[]): Instruction[][] {
  const out: Instruction[][] = []
  for (const i of list) {
    if (i.op === 'FROM') out.push([])
    out[out.length - 1]?.push(i)
  }
  return out
}

/** ENV instructions of a stage as a map (`ENV A=1 B=2` form). */
function envOf(stage: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {}
  for (const i of stage.filter((x) => x.op === 'ENV')) {
    for (const m of i.args.matchAll(/(\w+)=(\S+)/g)) env[m[1] as string] = m[2] as string
  }
  return env
}

const children: ChildProcess[] = []
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL')
})

/** `node deploy/app.mjs` as the image's CMD runs it; resolves once it answers. */
async function startDeployApp(
  env: Record<string, string>,
  opts: { uid?: number; cwd?: string } = {},
): Promise<{ child: ChildProcess; port: number; exited: Promise<number | null>; err: () => string }> {
  const { uid, cwd = root } = opts
  const port = await freePort()
  const child = spawn(process.execPath, ['deploy/app.mjs'], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(uid === undefined ? {} : { uid, gid: uid }),
  })
  children.push(child)
  let err = ''
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()))
  child.stdout?.resume()
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  const up = await waitFor(async () => {
    if (child.exitCode !== null) return true
    return getOnce(port, '/livez', 1000).then(() => true, () => false)
  }, 15_000, 100)
  if (!up || child.exitCode !== null) throw new Error(`deploy/app.mjs did not start: ${err}`)
  return { child, port, exited, err: () => err }
}

describe('deploy/Dockerfile', () => {
  const list = instructions(dockerfile)
  const [build, runtime] = stages(list) as [Instruction[], Instruction[]]

  it('is a multi-stage build whose runtime stage runs as a non-root user', () => {
    expect(stages(list)).toHaveLength(2)
    expect(build[0]?.args).toMatch(/ AS build$/)
    const user = runtime.filter((i) => i.op === 'USER').pop()?.args
    expect(user).toBeDefined()
    expect(['root', '0', '0:0']).not.toContain(user)
    // No compiler in the runtime stage: it only copies what the build stage made.
    expect(runtime.some((i) => i.op === 'RUN')).toBe(false)
  })

  it('copies only files that exist in the repository', () => {
    const copies = list.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
    expect(copies.length).toBeGreaterThan(3)
    for (const c of copies) {
      const parts = c.args.split(/\s+/).filter((p) => !p.startsWith('--'))
      for (const src of parts.slice(0, -1)) expect(existsSync(join(root, src)), src).toBe(true)
    }
  })

  it('the build stage runs the package build that makes what the runtime stage copies', () => {
    expect(build.some((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args))).toBe(true)
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
    expect(pkg.scripts.prepare).toContain('npm run build')
    const fromBuild = runtime
      .filter((i) => i.op === 'COPY' && i.args.startsWith('--from=build'))
      .map((i) => (i.args.split(/\s+/)[1] as string).replace(/^\/src\//, ''))
    expect(fromBuild.sort()).toEqual(['dist', 'native', 'node_modules', 'package.json'])
  })

  describe('the same commands outside Docker', () => {
    // The runtime stage's /app, laid out from what the build stage made
    // (dist/ from the global setup's `npm run build:ts`, native/ from the
    // binary the suite runs on; production has no node_modules to copy),
    // in a directory any user can read, wherever the checkout is.
    let image: string
    beforeAll(() => {
      image = mkdtempSync(join(tmpdir(), 'httpy-image-'))
      for (const from of ['package.json', 'dist', 'native']) cpSync(join(root, from), join(image, from), { recursive: true })
      mkdirSync(join(image, 'deploy'))
      cpSync(join(root, 'deploy/app.mjs'), join(image, 'deploy/app.mjs'))
      const open = (p: string): void => {
        chmodSync(p, 0o755)
        for (const e of readdirSync(p, { withFileTypes: true })) {
          if (e.isDirectory()) open(join(p, e.name))
          else chmodSync(join(p, e.name), 0o644)
        }
      }
      open(image)
    })
    afterAll(() => rmSync(image, { recursive: true, force: true }))

    it("runs the image's CMD with its environment, as an unprivileged user", async () => {
      const cmd = runtime.filter((i) => i.op === 'CMD').pop()?.args
      expect(JSON.parse(cmd as string)).toEqual(['node', 'deploy/app.mjs'])
      // As root, drop to `nobody` (the image's USER is not root either); a
      // failure to do so fails the test rather than running as root.
      const uid = process.getuid?.() === 0 ? 65534 : undefined
      const app = await startDeployApp(envOf(runtime), { uid, cwd: image })
      const status = readFileSync(`/proc/${app.child.pid}/status`, 'utf8')
      const [, real, effective] = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status) ?? []
      expect(Number(real), 'real uid of the app').not.toBe(0)
      expect(Number(effective), 'effective uid of the app').not.toBe(0)
      expect(await getOnce(app.port, '/')).toEqual({ status: 200, body: 'Hello from HTTPy\n' })
      expect((await getOnce(app.port, '/metrics')).body).toContain('http_requests_total{method="GET",route="/",status="200"} 1')
      app.child.kill('SIGTERM')
      expect(await app.exited).toBe(0)
    })
  })
})

describe('deploy/k8s.yaml', () => {
  const docs = loadAll(readFileSync(join(root, 'deploy/k8s.yaml'), 'utf8')) as Array<Record<string, any>>
  const deployment = docs.find((d) => d.kind === 'Deployment') as Record<string, any>
  const pod = deployment?.spec?.template?.spec
  const container = pod?.containers?.[0]
  const env = Object.fromEntries((container?.env ?? []).map((e: { name: string; value: string }) => [e.name, e.value])) as Record<string, string>

  it('parses, with resource limits, probes on the container port and a grace period longer than the drain', () => {
    expect(deployment.apiVersion).toBe('apps/v1')
    expect(deployment.spec.selector.matchLabels).toEqual(deployment.spec.template.metadata.labels)
    expect(container.resources).toEqual({ limits: { cpu: '1', memory: '512Mi' }, requests: { cpu: '0.5', memory: '256Mi' } })
    const port = container.ports[0].containerPort
    expect(Number(env.PORT)).toBe(port)
    expect(container.readinessProbe.httpGet.port).toBe(port)
    expect(container.livenessProbe.httpGet.port).toBe(port)
    expect(pod.securityContext.runAsNonRoot).toBe(true)
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(Number(env.SHUTDOWN_DELAY) + Number(env.SHUTDOWN_TIMEOUT))
    const service = docs.find((d) => d.kind === 'Service') as Record<string, any>
    expect(service.spec.selector).toEqual(deployment.spec.template.metadata.labels)
  })

  it('the probes answer on the app the image runs, and readiness fails first on SIGTERM', async () => {
    // The manifest's timing, shortened only so the test is quick.
    const app = await startDeployApp({ ...env, SHUTDOWN_DELAY: '1', SHUTDOWN_TIMEOUT: '3' })
    const ready = container.readinessProbe.httpGet.path as string
    const live = container.livenessProbe.httpGet.path as string
    expect((await getOnce(app.port, ready)).status).toBe(200)
    expect((await getOnce(app.port, live)).status).toBe(200)
    const t0 = Date.now()
    app.child.kill('SIGTERM')
    // Readiness turns 503 as soon as the shutdown begins, within SHUTDOWN_DELAY.
    expect(await waitFor(() => getOnce(app.port, ready, 500).then((r) => r.status === 503, () => false), 900, 20)).toBe(true)
    expect((await getOnce(app.port, live)).status).toBe(200)
    expect(await app.exited).toBe(0)
    expect(Date.now() - t0).toBeLessThan(pod.terminationGracePeriodSeconds * 1000)
  })
})
