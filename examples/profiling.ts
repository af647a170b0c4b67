/**
 * Profiling a route (guide: "Profiling with cProfile"): with PROFILE=1 the
 * handler of `/api/users/{id}` runs under the V8 CPU profiler (node:inspector)
 * and the 20 functions with the most self time are printed per request.
 *
 *   PROFILE=1 npx tsx examples/profiling.ts
 *   curl http://127.0.0.1:8080/api/users/7
 *
 * To profile a route under load, see `profileRoute` from 'httpy/profile'.
 * For a whole-process profile use `node --cpu-prof` (or
 * `npx tsx --cpu-prof examples/profiling.ts`) and open the .cpuprofile file
 * in Chrome DevTools.
 */
import { Session } from 'node:inspector/promises'
import { Response, get, run, type Handler, type Request } from 'httpy'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

const session = new Session()
session.connect()
let queue: Promise<unknown> = Promise.resolve()

/** Runs `handler(request)` under the CPU profiler and prints the top 20 functions. */
async function profileRoute(handler: Handler, request: Request): Promise<Response> {
  // One profile at a time: the inspector has a single profiler.
  const turn = queue.then(async () => {
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: 50 }) // microseconds
    await session.post('Profiler.start')
    try {
      return await handler(request)
    } finally {
      const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: Profile }
      console.log(formatProfile(profile, 20))
    }
  })
  queue = turn.catch(() => undefined)
  return turn
}

function formatProfile(profile: Profile, top: number): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const selfUs = new Map<string, number>()
  profile.samples.forEach((id, i) => {
    const f = byId.get(id)?.callFrame
    if (!f) return
    const name = `${f.functionName || '(anonymous)'} ${f.url ? `${f.url.split('/').pop()}:${f.lineNumber + 1}` : ''}`
    selfUs.set(name, (selfUs.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0))
  })
  const rows = [...selfUs].sort((a, b) => b[1] - a[1]).slice(0, top)
  return ['profile: self time (ms)  function', ...rows.map(([n, us]) => `${(us / 1000).toFixed(3).padStart(10)}  ${n}`)].join('\n')
}

const getUser: Handler = (req) => {
  // Some work worth profiling.
  const id = Number(req.pathParams.id)
  const history = Array.from({ length: 20000 }, (_, i) => Math.sqrt(i * id)).reduce((a, b) => a + b, 0)
  return Response.json({ id, name: `User ${id}`, score: Math.round(history) })
}

if (process.env.PROFILE === '1') {
  get('/api/users/{id}', (req) => profileRoute(getUser, req))
} else {
  get('/api/users/{id}', getUser)
}

const host = process.env.HOST ?? '127.0.0.1'
await run({ host, port: Number(process.env.PORT ?? 8080) })
