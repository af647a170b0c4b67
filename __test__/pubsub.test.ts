/**
 * Pub/sub past one process (docs/scaling.md), with real processes, real
 * `ws` clients and a real `redis-server`:
 * - `workers: 2`: a publish in either worker reaches every subscriber of
 *   both, once and in order per publisher; `subscriberCount` is global;
 *   the links between workers leave nothing behind when the primary is
 *   killed with SIGKILL, and refuse a local process of another user both
 *   ways (it can neither inject a message nor be linked to);
 * - two servers sharing one Redis exchange messages, also from a server
 *   with no subscriber of its own; a topic's Redis subscription exists only
 *   while it has local subscribers (10,000 topics leave none behind);
 * - `/metrics` on any worker answers for the whole server;
 * - Redis down at start, and killed then restarted mid-run: the servers
 *   keep serving, report the outage, count the messages the other servers
 *   missed, and carry messages again once Redis is back; a Redis busy for
 *   1.5 s only delays them;
 * - the durable mode (Redis Streams): a Redis restarted from its
 *   append-only file, or a link killed mid-flow, loses nothing Redis has;
 *   `maxLen` caps each stream; a refused `XADD` is counted, not fatal;
 * - `rediss://`: a Redis speaking only TLS carries messages both ways, and a
 *   Redis certificate from a CA the server does not trust is refused with
 *   an error naming the cause, while the server keeps serving.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { App } from '../ts/index.js'
import { alive, freePort, getOnce, startApp, waitFor, type AppProcess } from './helpers/proc.js'
import { startRedis, type RedisOptions, type RedisServer } from './helpers/redis.js'
import { TestPki } from './pki.js'
import { requireTool } from './helpers/tools.js'
import { sleep } from './helpers/wait.js'

const procs: AppProcess[] = []
const sockets: WebSocket[] = []
const brokers: RedisServer[] = []

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate()
  await Promise.all(
    procs.splice(0).map(async (p) => {
      p.child.kill('SIGTERM')
      const timer = setTimeout(() => p.child.kill('SIGKILL'), 8000)
      await p.exited
      clearTimeout(timer)
    }),
  )
  await Promise.all(brokers.splice(0).map((b) => b.kill()))
})

async function app(opts: Record<string, unknown>, env: Record<string, string> = {}): Promise<AppProcess> {
  const p = await startApp('pubsub-app.ts', { ...env, HTTPY_TEST_OPTS: JSON.stringify({ port: 0, ...opts }) }, 30_000)
  procs.push(p)
  return p
}

interface Client {
  ws: WebSocket
  /** The worker that accepted it. */
  pid: number
  texts: string[]
  binaries: string[]
}

function connect(port: number, query = ''): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws${query}`)
    sockets.push(ws)
    const c: Client = { ws, pid: 0, texts: [], binaries: [] }
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const s = data.toString()
      if (c.pid === 0 && !isBinary && s.startsWith('hello ')) {
        c.pid = Number(s.slice(6))
        resolve(c)
      } else if (isBinary) c.binaries.push(s)
      else c.texts.push(s)
    })
    ws.on('error', reject)
    setTimeout(() => reject(new Error('no hello within 10 s')), 10_000).unref()
  })
}

/** `/count` answered by whichever worker takes each fresh connection. */
async function count(port: number, topic = 'room'): Promise<number> {
  return Number((await getOnce(port, `/count?topic=${topic}`)).body)
}

async function stats(port: number): Promise<{ pid: number; stats: Record<string, unknown> | null }> {
  return JSON.parse((await getOnce(port, '/pubsub')).body) as { pid: number; stats: Record<string, unknown> | null }
}

/** `from:0` … `from:(n-1)`. */
const sequence = (from: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${from}:${i}`)

/** Every message of every publisher, exactly once and in its publish order. */
function expectAll(clients: Client[], tags: string[], n: number, kind: 'texts' | 'binaries' = 'texts'): void {
  for (const c of clients) {
    for (const tag of tags) {
      const got = c[kind].filter((m) => m.startsWith(`${tag}:`))
      expect(got, `client on ${c.pid}, publisher ${tag}`).toEqual(sequence(tag, n))
    }
  }
}

const received = (clients: Client[], kind: 'texts' | 'binaries' = 'texts'): number =>
  clients.reduce((sum, c) => sum + c[kind].length, 0)

/** Where a worker's pub/sub links are: the place its primary gave it. */
function linkPlace(workerPid: number): string {
  const env = readFileSync(`/proc/${workerPid}/environ`, 'utf8').split('\0')
  const line = env.find((l) => l.startsWith('HTTPY_PUBSUB_DIR='))
  expect(line, `HTTPY_PUBSUB_DIR of worker ${workerPid}`).toBeDefined()
  return line!.slice('HTTPY_PUBSUB_DIR='.length)
}

/** Abstract Unix sockets listening under `@prefix-…` now (without the `@`). */
function listeningAbstract(place: string): string[] {
  if (!place.startsWith('@')) return []
  const names = readFileSync('/proc/net/unix', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    // Flags 00010000: a listening socket (accepted ones repeat its name).
    .filter((f) => f[3] === '00010000' && f[7]?.startsWith(`${place}-`))
    .map((f) => f[7]!.slice(1))
  return [...new Set(names)]
}

/** Frames of the workers' links (crates/core/src/pubsub/wire.rs): length, tag, topic, body. */
const INTRUDER_PY = `
import socket, struct, sys, time
def frame(tag, topic, body=b''):
    t = topic.encode()
    return struct.pack('<IBH', 1 + 2 + len(t) + len(body), tag, len(t)) + t + body
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect('\\0' + sys.argv[1])
try:
    s.sendall(frame(0, 'intruder-1-0') + frame(1, 'room', sys.argv[2].encode()))
    time.sleep(0.3)
    print('sent')
except OSError as e:
    print('refused', e)
`

/** A listener on an abstract name, printing how many bytes each connection sent before it closed. */
const BAIT_PY = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind('\\0' + sys.argv[1])
s.listen(8)
print('listening', flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(2)
    n = 0
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            n += len(b)
    except OSError:
        pass
    print('connection sent', n, flush=True)
`

/** Connects to the abstract socket `name` as `uid` and sends a hello and a message for `room`. */
function intrude(name: string, message: string, uid: number): string {
  const r = spawnSync('python3', ['-c', INTRUDER_PY, name, message], { uid, gid: uid, encoding: 'utf8', timeout: 10_000 })
  return (r.stdout + r.stderr).trim()
}

describe('the pubsub option', () => {
  it('refuses what is not a Redis URL, naming the option, before serving', async () => {
    const cases: [unknown, RegExp][] = [
      [{ redis: 'http://127.0.0.1:6379' }, /pubsub\.redis.*redis:\/\/ or rediss:\/\//],
      [{ redis: 42 }, /pubsub\.redis/],
      [{ redis: 'redis://127.0.0.1:notaport/0' }, /pubsub\.redis: invalid Redis URL/],
      [{ broker: 'x' }, /unknown option "pubsub\.broker"/],
      ['redis://127.0.0.1', /option "pubsub" must be an object/],
    ]
    for (const [pubsub, message] of cases) {
      const err = await new App().listen({ port: 0, pubsub: pubsub as never }).catch((e: unknown) => e)
      expect((err as { code?: string }).code, String(err)).toBe('ERR_HTTPY_INVALID_OPTION')
      expect(String((err as Error).message)).toMatch(message)
    }
  })

  it('is null in pubsubStats() when nothing crosses processes, and counts stay local', async () => {
    // The handler stays until the client leaves (a returning handler closes the socket).
    const app = new App().websocket('/ws', async (ws) => {
      ws.subscribe('t')
      for await (const _ of ws) {
        // only listening
      }
    })
    const server = await app.listen({ port: 0 })
    try {
      expect(server.pubsubStats()).toBeNull()
      const c = await new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`)
        sockets.push(ws)
        ws.once('open', () => resolve(ws))
        ws.once('error', reject)
      })
      expect(await waitFor(() => app.subscriberCount('t') === 1, 5000, 10)).toBe(true)
      c.close()
      expect(await waitFor(() => app.subscriberCount('t') === 0, 5000, 10)).toBe(true)
    } finally {
      await server.close()
    }
  })
})

describe('across workers (nothing to install)', () => {
  it('2 workers x 50 clients: every client gets every message once, in order per publisher', async () => {
    const p = await app({ workers: 2 })
    const clients = await Promise.all(Array.from({ length: 100 }, () => connect(p.port)))
    // SO_REUSEPORT spreads 100 connections over both workers.
    const pids = new Set(clients.map((c) => c.pid))
    expect([...pids].sort()).toEqual([...p.workers].sort())
    // Counts are global: either worker reports all 100 (as soon as each
    // sibling's change has crossed the local socket).
    expect(await waitFor(async () => (await count(p.port)) === 100, 5000, 20)).toBe(true)
    const answers = await Promise.all([count(p.port), count(p.port), count(p.port), count(p.port)])
    expect(answers).toEqual([100, 100, 100, 100])

    // Publishers in both workers, 200 messages each, sent as fast as the
    // handler can loop.
    const tags: string[] = []
    const publishers = new Set<number>()
    for (let k = 0; k < 30 && (publishers.size < 2 || tags.length < 4); k++) {
      const tag = `p${k}`
      tags.push(tag)
      publishers.add(Number((await getOnce(p.port, `/publish?from=${tag}&n=200`)).body))
    }
    expect([...publishers].sort()).toEqual([...p.workers].sort())
    const want = tags.length * 200
    await waitFor(() => received(clients) >= want * 100, 10_000, 20)
    expectAll(clients, tags, 200)
    for (const c of clients) expect(c.texts).toHaveLength(want)

    // Binary stays binary across the process boundary.
    await getOnce(p.port, '/publish?from=bin&n=20&binary=1')
    await waitFor(() => received(clients, 'binaries') >= 100 * 20, 10_000, 20)
    expectAll(clients, ['bin'], 20, 'binaries')

    // A message a client sends is published by its worker to everyone.
    clients[0]?.ws.send('chat:0')
    await waitFor(() => clients.every((c) => c.texts.includes('chat:0')), 10_000, 20)
    for (const c of clients) expect(c.texts.filter((m) => m === 'chat:0')).toHaveLength(1)

    // Leaving is counted everywhere too.
    for (const c of clients.slice(0, 40)) c.ws.close()
    expect(await waitFor(async () => (await count(p.port)) === 60, 5000, 20)).toBe(true)
    const s = await stats(p.port)
    expect(s.stats).toMatchObject({ peers: 1, dropped: 0, broker: false })
  }, 60_000)

  it('a primary killed with SIGKILL leaves no socket or directory behind', async () => {
    const p = await app({ workers: 2 })
    const place = linkPlace(p.workers[0]!)
    // On Linux the links are abstract sockets: no file, nothing to clean up.
    if (process.platform === 'linux') expect(place).toMatch(new RegExp(`^@httpy-pubsub-${p.pid}-[0-9a-f]{8}$`))
    const names = (): string[] => listeningAbstract(place)
    if (place.startsWith('@')) expect(names()).toHaveLength(2)
    else expect(existsSync(place)).toBe(true)

    p.child.kill('SIGKILL')
    await p.exited
    procs.splice(procs.indexOf(p), 1)
    // The workers end when their channel to the primary closes.
    expect(await waitFor(() => p.workers.every((w) => !alive(w)), 10_000, 20)).toBe(true)
    if (place.startsWith('@')) expect(names()).toEqual([])
    else expect(existsSync(place)).toBe(false)
  }, 30_000)

  it('a process of another user can neither inject messages nor receive any through the links', async (ctx) => {
    // Running a client as another user (nobody) needs root.
    if (process.platform !== 'linux' || process.getuid?.() !== 0) return ctx.skip()
    const p = await app({ workers: 2 })
    const place = linkPlace(p.workers[0]!)
    const names = listeningAbstract(place)
    expect(names).toHaveLength(2)
    const clients = await Promise.all(Array.from({ length: 8 }, () => connect(p.port)))
    // Into each worker's socket: a hello and one message for `room`, first
    // as nobody, then (the control, proving the frames are right) as us.
    for (const n of names) expect(intrude(n, 'forged-by-nobody', 65534)).toMatch(/^(sent|refused)/)
    for (const n of names) expect(intrude(n, 'forged-by-us', 0)).toBe('sent')
    expect(await waitFor(() => clients.every((c) => c.texts.includes('forged-by-us')), 5000, 20)).toBe(true)
    for (const c of clients) expect(c.texts).toEqual(['forged-by-us'])
    // Nor is nobody's listener, named like a worker's socket, linked to:
    // a worker started after it (the supervisor replaces a killed one)
    // finds it and leaves it alone.
    const bait = spawn('python3', ['-c', BAIT_PY, `${place.slice(1)}-4194304-0`], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'ignore'] })
    let heard = ''
    bait.stdout.on('data', (c: Buffer) => (heard += c))
    try {
      expect(await waitFor(() => heard.includes('listening'), 5000, 20)).toBe(true)
      process.kill(p.workers[1]!, 'SIGKILL')
      // The replacement's socket (and the surviving worker's, and the bait).
      expect(await waitFor(() => listeningAbstract(place).filter((n) => !names.includes(n)).length === 2, 15_000, 50)).toBe(true)
      for (let i = 0; i < 6; i++) await getOnce(p.port, `/publish?from=s${i}&n=3`)
      // The new worker found it and connected (that is how it learns who
      // listens), saw another user, and closed without a byte: no hello,
      // no count table, none of the messages.
      expect(await waitFor(() => heard.includes('connection sent'), 5000, 20)).toBe(true)
      await sleep(300)
      expect(heard.split('\n').filter((l) => l !== '')).toEqual(['listening', 'connection sent 0'])
    } finally {
      bait.kill('SIGKILL')
    }
  }, 30_000)
})

describe('metrics across workers', () => {
  it('one scrape of /metrics on any worker answers for the whole server, with a worker label on pub/sub lines', async () => {
    const p = await app({ workers: 2, metrics: true })
    // 30 requests on fresh connections: both workers answer some.
    const answered = new Set<number>()
    for (let i = 0; i < 30; i++) answered.add(Number(JSON.parse((await getOnce(p.port, '/pubsub')).body).pid))
    expect([...answered].sort()).toEqual([...p.workers].sort())
    const line = 'http_requests_total{method="GET",route="/pubsub",status="200"} 30'
    // Each worker sends its text to its sibling every second, so a scrape
    // may be up to about a second behind: wait until four scrapes in a row
    // (landing on either worker) hold the whole server's count and both
    // workers' pub/sub lines.
    const peers = p.workers.map((pid) => `httpy_pubsub_peers{worker="${pid}"} 1`)
    let text = ''
    let one = ''
    const whole = await waitFor(async () => {
      const scrapes = await Promise.all([1, 2, 3, 4].map(() => getOnce(p.port, '/metrics')))
      text = scrapes.map((r) => r.body).join('\n----\n')
      one = scrapes[0]?.body ?? ''
      return scrapes.every((r) => {
        const lines = r.body.split('\n')
        return lines.includes(line) && peers.every((l) => lines.includes(l))
      })
    }, 10_000, 100)
    expect(whole, text).toBe(true)
    // Each family once: its HELP and TYPE lines appear a single time.
    expect(one.match(/^# TYPE http_requests_total counter$/gm)).toHaveLength(1)
    expect(one.match(/^# TYPE http_request_duration_seconds histogram$/gm)).toHaveLength(1)
    expect(one).toMatch(/^http_request_duration_seconds_count\{method="GET",route="\/pubsub"\} 30$/m)
  }, 60_000)
})

describe('access log across workers', () => {
  it('the workers append whole lines to one file: none interleaved, none lost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'httpy-access-'))
    const file = join(dir, 'access.log')
    try {
      const p = await app({ workers: 2, accessLog: { path: file, format: 'json' } })
      const pids = new Set<number>()
      for (let batch = 0; batch < 30; batch++) {
        const answers = await Promise.all(
          Array.from({ length: 10 }, (_, i) => getOnce(p.port, `/publish?topic=log&n=0&from=r${batch * 10 + i}`)),
        )
        for (const a of answers) pids.add(Number(a.body))
      }
      expect([...pids].sort()).toEqual([...p.workers].sort())
      // Each worker's writer flushes on its own schedule.
      const lines = (): string[] => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '')
      await waitFor(() => lines().length >= 300, 10_000, 50)
      const all = lines()
      expect(all).toHaveLength(300)
      const seen = new Set<string>()
      for (const line of all) {
        const entry = JSON.parse(line) as Record<string, unknown>
        const m = /from=(r\d+)/.exec(JSON.stringify(entry))
        expect(m, line).not.toBeNull()
        seen.add(m![1]!)
      }
      expect(seen.size).toBe(300)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})

describe.skipIf(!requireTool('redis'))('Redis as the broker', () => {
  async function broker(port?: number, opts?: RedisOptions): Promise<RedisServer> {
    const b = await startRedis(port ?? (await freePort()), opts)
    brokers.push(b)
    return b
  }

  /** Until each app's Redis link is up (or the time is out). */
  const brokerUp = (apps: AppProcess[], timeoutMs = 10_000): Promise<boolean> =>
    waitFor(async () => {
      const all = await Promise.all(apps.map((a) => stats(a.port)))
      return all.every((s) => s.stats?.brokerUp === true)
    }, timeoutMs, 50)

  /** Until `n` processes subscribe to the topic's channel on Redis. */
  const subscribers = (b: RedisServer, topic: string, n: number): Promise<boolean> =>
    waitFor(() => b.cli('PUBSUB', 'NUMSUB', `httpy:${topic}`)[1] === String(n), 5000, 20)

  it('two servers exchange messages, in order, also from a server without subscribers', async () => {
    const b = await broker()
    const [a, c, quiet] = await Promise.all([1, 2, 3].map(() => app({ pubsub: { redis: b.url } })))
    const apps = [a, c, quiet] as AppProcess[]
    expect(await brokerUp(apps)).toBe(true)
    const onA = await Promise.all(Array.from({ length: 20 }, () => connect(a!.port)))
    const onC = await Promise.all(Array.from({ length: 20 }, () => connect(c!.port)))
    // One Redis subscription per process, however many clients.
    expect(await subscribers(b, 'room', 2)).toBe(true)
    await getOnce(a!.port, '/publish?from=a&n=300')
    await getOnce(c!.port, '/publish?from=c&n=300')
    await getOnce(quiet!.port, '/publish?from=q&n=300')
    await getOnce(quiet!.port, '/publish?from=qb&n=10&binary=1')
    const all = [...onA, ...onC]
    await waitFor(() => received(all) >= 40 * 900 && received(all, 'binaries') >= 40 * 10, 10_000, 20)
    expectAll(all, ['a', 'c', 'q'], 300)
    expectAll(all, ['qb'], 10, 'binaries')
    for (const cl of all) expect(cl.texts).toHaveLength(900)
    // Clients gone: the subscription goes too.
    for (const cl of onA) cl.ws.close()
    expect(await subscribers(b, 'room', 1)).toBe(true)
  }, 60_000)

  it('10,000 topics subscribed and released leave no Redis subscription behind', async () => {
    const b = await broker()
    const a = await app({ pubsub: { redis: b.url } })
    expect(await brokerUp([a])).toBe(true)
    const cl = await connect(a.port, '?topic=x&topics=10000')
    const channels = (): number => Number(b.cli('EVAL', "return #redis.call('PUBSUB','CHANNELS','httpy:*')", '0')[0])
    expect(await waitFor(() => channels() === 10_001, 10_000, 50)).toBe(true)
    cl.ws.close()
    expect(await waitFor(() => channels() === 0, 10_000, 50)).toBe(true)
    expect(b.cli('PUBSUB', 'CHANNELS', 'httpy:*')).toEqual([])
  }, 60_000)

  it('Redis down at start: serves locally, reports it, links up once Redis comes', async () => {
    const port = await freePort()
    const a = await app({ pubsub: { redis: `redis://127.0.0.1:${port}/0` } })
    const local = await connect(a.port)
    await getOnce(a.port, '/publish?from=early&n=5')
    await waitFor(() => local.texts.length >= 5, 5000, 20)
    expect(local.texts).toEqual(sequence('early', 5))
    const s = await stats(a.port)
    expect(s.stats).toMatchObject({ broker: true, brokerUp: false, dropped: 5 })
    expect(Number(s.stats?.brokerErrors)).toBeGreaterThan(0)
    expect(String(s.stats?.lastError)).toMatch(/connect/i)
    await waitFor(() => a.stdout().includes('ERR_HTTPY_PUBSUB'), 5000, 20)
    expect(a.stdout()).toMatch(/"code":"ERR_HTTPY_PUBSUB","message":"pubsub: Redis unavailable/)
    expect((await getOnce(a.port, '/count')).status).toBe(200)

    // Redis arrives: the back-off (at most 5 s) reconnects and subscribes.
    const b = await broker(port)
    expect(await brokerUp([a], 15_000)).toBe(true)
    expect(await subscribers(b, 'room', 1)).toBe(true)
    const other = await app({ pubsub: { redis: b.url } })
    expect(await brokerUp([other])).toBe(true)
    await getOnce(other.port, '/publish?from=late&n=50')
    await waitFor(() => local.texts.length >= 55, 10_000, 20)
    expect(local.texts.slice(5)).toEqual(sequence('late', 50))
  }, 60_000)

  it('Redis killed and restarted mid-run: no crash, outage counted, topics resubscribed', async () => {
    const port = await freePort()
    let b = await broker(port)
    const [a, c] = await Promise.all([1, 2].map(() => app({ pubsub: { redis: b.url } })))
    expect(await brokerUp([a!, c!])).toBe(true)
    const onA = await connect(a!.port)
    const onC = await connect(c!.port)
    expect(await subscribers(b, 'room', 2)).toBe(true)
    await getOnce(a!.port, '/publish?from=before&n=100')
    await waitFor(() => onC.texts.length >= 100, 10_000, 20)
    expect(onC.texts).toEqual(sequence('before', 100))

    await b.kill()
    brokers.splice(brokers.indexOf(b), 1)
    // Wait until A has noticed, then publish during the outage: A's own
    // client still gets it, C's cannot, A counts it dropped.
    expect(await waitFor(async () => (await stats(a!.port)).stats?.brokerUp === false, 10_000, 20)).toBe(true)
    await getOnce(a!.port, '/publish?from=during&n=20')
    await waitFor(() => onA.texts.filter((m) => m.startsWith('during:')).length >= 20, 5000, 20)
    const down = await stats(a!.port)
    expect(Number(down.stats?.dropped)).toBeGreaterThanOrEqual(20)
    await waitFor(() => a!.stdout().includes('ERR_HTTPY_PUBSUB'), 5000, 20)

    b = await broker(port)
    expect(await brokerUp([a!, c!], 15_000)).toBe(true)
    // Live topics were subscribed again on the new Redis.
    expect(await subscribers(b, 'room', 2)).toBe(true)
    await getOnce(a!.port, '/publish?from=after&n=100')
    await waitFor(() => onC.texts.filter((m) => m.startsWith('after:')).length >= 100, 10_000, 20)
    expect(onC.texts.filter((m) => m.startsWith('after:'))).toEqual(sequence('after', 100))
    expect(onC.texts.filter((m) => m.startsWith('during:'))).toEqual([])
    expect(onA.texts.filter((m) => m.startsWith('during:'))).toEqual(sequence('during', 20))
    const up = await stats(a!.port)
    expect(Number(up.stats?.brokerReconnects)).toBeGreaterThanOrEqual(1)
    expect(alive(a!.pid) && alive(c!.pid)).toBe(true)
  }, 60_000)

  it('rediss://: messages cross both ways over TLS; a Redis certificate from an unknown CA is refused, naming the cause', async () => {
    const pki = new TestPki('redis')
    const stranger = new TestPki('stranger')
    try {
      const leaf = pki.leaf('redis', ['127.0.0.1'])
      // TLS only: Redis has no plain port, so every link that works is TLS.
      const b = await broker(undefined, { tls: { cert: leaf.cert, key: leaf.key, ca: pki.caFile } })
      expect(b.url).toMatch(/^rediss:\/\//)
      // The servers verify Redis against the roots SSL_CERT_FILE names.
      const trusting = { SSL_CERT_FILE: pki.caFile }
      const [a, c] = await Promise.all([1, 2].map(() => app({ pubsub: { redis: b.url } }, trusting)))
      expect(await brokerUp([a!, c!])).toBe(true)
      const onA = await connect(a!.port)
      const onC = await connect(c!.port)
      expect(await subscribers(b, 'room', 2)).toBe(true)
      await getOnce(a!.port, '/publish?from=a&n=100')
      await getOnce(c!.port, '/publish?from=c&n=100')
      await waitFor(() => received([onA, onC]) >= 400, 10_000, 20)
      expectAll([onA, onC], ['a', 'c'], 100)

      // Trusting another CA: the handshake fails, the cause is reported, and
      // the server still serves its own subscribers.
      const wary = await app({ pubsub: { redis: b.url } }, { SSL_CERT_FILE: stranger.caFile })
      expect(await waitFor(() => wary.stdout().includes('ERR_HTTPY_PUBSUB'), 10_000, 20)).toBe(true)
      expect(wary.stdout()).toContain(
        '"message":"pubsub: Redis unavailable, publishing locally only (cannot connect to Redis: invalid peer certificate: UnknownIssuer)"',
      )
      const s = await stats(wary.port)
      expect(s.stats).toMatchObject({ broker: true, brokerUp: false })
      expect(String(s.stats?.lastError)).toMatch(/invalid peer certificate: UnknownIssuer/)
      const local = await connect(wary.port)
      await getOnce(wary.port, '/publish?from=w&n=5')
      await waitFor(() => local.texts.length >= 5, 5000, 20)
      expect(local.texts).toEqual(sequence('w', 5))
      // Nothing of it reached the others.
      expect(onA.texts.filter((m) => m.startsWith('w:'))).toEqual([])
    } finally {
      pki.cleanup()
      stranger.cleanup()
    }
  }, 60_000)

  it('a Redis busy for 1.5 s delays publishes, without dropping them or the link', async () => {
    const b = await broker()
    const [a, c] = await Promise.all([1, 2].map(() => app({ pubsub: { redis: b.url } })))
    expect(await brokerUp([a!, c!])).toBe(true)
    const onC = await connect(c!.port)
    expect(await subscribers(b, 'room', 1)).toBe(true)
    // Every client's commands wait 1.5 s: the PUBLISH pipeline is answered late.
    expect(b.cli('CLIENT', 'PAUSE', '1500', 'ALL')).toEqual(['OK'])
    await getOnce(a!.port, '/publish?from=slow&n=50')
    await waitFor(() => onC.texts.length >= 50, 10_000, 20)
    expect(onC.texts).toEqual(sequence('slow', 50))
    expect((await stats(a!.port)).stats).toMatchObject({ dropped: 0, brokerReconnects: 0, brokerErrors: 0 })
  }, 60_000)

  describe('durable mode (Redis Streams)', () => {
    const durable = (url: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
      pubsub: { redis: url, durable: true, ...extra },
    })

    /** The `CLIENT LIST` line of a server's connection (`read` or `write`), or undefined. */
    const link = (b: RedisServer, pid: number, which: 'read' | 'write'): string | undefined =>
      b.cli('CLIENT', 'LIST').find((l) => l.includes(` name=httpy-${pid}-${which} `))

    /** Closes a server's Redis connections (both, or the named one) from the Redis side. */
    const cut = (b: RedisServer, app: AppProcess, links: ('read' | 'write')[] = ['read', 'write']): void => {
      for (const which of links) {
        const id = /^id=(\d+) /.exec(link(b, app.pid, which) ?? '')?.[1]
        expect(id, `${which} link of ${app.pid}`).toBeDefined()
        expect(b.cli('CLIENT', 'KILL', 'ID', id!)).toEqual(['1'])
      }
    }

    /** Until each server's reading connection is blocked in an XREAD (it reads its topics). */
    const reading = (b: RedisServer, apps: AppProcess[]): Promise<boolean> =>
      waitFor(() => apps.every((a) => / cmd=xread /.test(link(b, a.pid, 'read') ?? '')), 10_000, 20)

    it('refuses bad options, naming them', async () => {
      const cases: [unknown, RegExp][] = [
        [{ durable: true }, /"pubsub\.durable" needs "pubsub\.redis"/],
        [{ redis: 'redis://127.0.0.1:1/0', durable: 'yes' }, /"pubsub\.durable" must be a boolean/],
        [{ redis: 'redis://127.0.0.1:1/0', durable: true, maxLen: 0 }, /"pubsub\.maxLen" must be an integer from 1/],
        [{ redis: 'redis://127.0.0.1:1/0', durable: true, maxLen: 2.5 }, /"pubsub\.maxLen" must be an integer/],
        [{ redis: 'redis://127.0.0.1:1/0', maxLen: 100 }, /"pubsub\.maxLen" applies to the durable mode only/],
      ]
      for (const [pubsub, message] of cases) {
        const err = await new App().listen({ port: 0, pubsub: pubsub as never }).catch((e: unknown) => e)
        expect((err as { code?: string }).code, String(err)).toBe('ERR_HTTPY_INVALID_OPTION')
        expect(String((err as Error).message)).toMatch(message)
      }
    })

    it('Redis SIGKILLed and restarted from its AOF: every message it had arrives, in order, once', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'httpy-redis-'))
      try {
        const port = await freePort()
        let b = await broker(port, { aof: dir })
        const [a, c] = await Promise.all([1, 2].map(() => app(durable(b.url))))
        expect(await brokerUp([a!, c!])).toBe(true)
        const onA = await Promise.all([1, 2].map(() => connect(a!.port)))
        const onC = await Promise.all([1, 2, 3].map(() => connect(c!.port)))
        expect(await reading(b, [a!, c!])).toBe(true)
        await getOnce(a!.port, '/publish?from=before&n=100')
        await waitFor(() => onC.every((cl) => cl.texts.length >= 100), 10_000, 20)

        // C is frozen and its links cut (so no reply can wait in its socket
        // buffers) while A publishes 100 more: they exist only in Redis and
        // its AOF when Redis is killed.
        c!.child.kill('SIGSTOP')
        let frozen = true
        try {
          cut(b, c!)
          await getOnce(a!.port, '/publish?from=held&n=100')
          expect(await waitFor(() => b.cli('XLEN', 'httpy:room')[0] === '200', 10_000, 20)).toBe(true)
          await b.kill()
          brokers.splice(brokers.indexOf(b), 1)
          // A notices; what it publishes now reaches its own clients only.
          expect(await waitFor(async () => (await stats(a!.port)).stats?.brokerUp === false, 10_000, 20)).toBe(true)
          await getOnce(a!.port, '/publish?from=during&n=20')
          b = await broker(port, { aof: dir })
          expect(b.cli('XLEN', 'httpy:room')).toEqual(['200'])
          c!.child.kill('SIGCONT')
          frozen = false
        } finally {
          if (frozen) c!.child.kill('SIGCONT')
        }

        expect(await brokerUp([a!, c!], 15_000)).toBe(true)
        expect(await reading(b, [a!, c!])).toBe(true)
        await getOnce(a!.port, '/publish?from=after&n=100')
        await waitFor(() => onC.every((cl) => cl.texts.length >= 300), 10_000, 20)
        await waitFor(() => onA.every((cl) => cl.texts.length >= 320), 10_000, 20)
        const want = [...sequence('before', 100), ...sequence('held', 100), ...sequence('after', 100)]
        for (const cl of onC) expect(cl.texts).toEqual(want)
        for (const cl of onA) {
          expect(cl.texts).toEqual([...sequence('before', 100), ...sequence('held', 100), ...sequence('during', 20), ...sequence('after', 100)])
        }
        expect(Number((await stats(c!.port)).stats?.brokerReconnects)).toBeGreaterThanOrEqual(1)
        expect(Number((await stats(a!.port)).stats?.dropped)).toBe(20)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }, 60_000)

    it('a link killed mid-flow (CLIENT KILL) loses nothing: the reader resumes from its last id', async () => {
      const b = await broker()
      const [a, c] = await Promise.all([1, 2].map(() => app(durable(b.url))))
      expect(await brokerUp([a!, c!])).toBe(true)
      const onC = await Promise.all([1, 2, 3, 4].map(() => connect(c!.port)))
      expect(await reading(b, [c!])).toBe(true)
      // 400 messages, one every 2 ms or so: a steady flow of about a second.
      const flow = getOnce(a!.port, '/publish?from=flow&n=400&pace=2')
      const killAt = async (n: number): Promise<number> => {
        expect(await waitFor(() => onC[0]!.texts.length >= n, 10_000, 5)).toBe(true)
        // C only reads; its reading link is the one whose loss could lose
        // messages (a publisher's lost link drops what it publishes meanwhile,
        // as documented).
        cut(b, c!, ['read'])
        return onC[0]!.texts.length
      }
      const atFirst = await killAt(50)
      const atSecond = await killAt(atFirst + 100)
      await flow
      // Both kills happened while messages were still coming.
      expect(atSecond).toBeLessThan(400)
      await waitFor(() => onC.every((cl) => cl.texts.length >= 400), 10_000, 20)
      for (const cl of onC) expect(cl.texts).toEqual(sequence('flow', 400))
      const s = await stats(c!.port)
      expect(Number(s.stats?.brokerReconnects)).toBeGreaterThanOrEqual(2)
      expect(String(s.stats?.lastError)).toMatch(/XREAD|connection|closed|Redis/i)
    }, 60_000)

    it('a key of another type under httpy: is refused, counted and reported; the link and the server stay up', async () => {
      const b = await broker()
      const [a, c] = await Promise.all([1, 2].map(() => app(durable(b.url))))
      expect(await brokerUp([a!, c!])).toBe(true)
      const onC = await connect(c!.port)
      expect(await reading(b, [c!])).toBe(true)
      b.cli('SET', 'httpy:taken', 'not a stream')
      await getOnce(a!.port, '/publish?topic=taken&from=x&n=5')
      expect(await waitFor(async () => (await stats(a!.port)).stats?.dropped === 5, 5000, 20), JSON.stringify((await stats(a!.port)).stats)).toBe(true)
      const s = (await stats(a!.port)).stats
      // The five publishes may reach Redis in one pipelined batch or two:
      // the error names the last refused batch (all five are counted above).
      expect(String(s?.lastError)).toMatch(/refused [1-5] XADD: .*(WRONGTYPE|WrongType)/)
      expect(s).toMatchObject({ brokerUp: true, brokerReconnects: 0 })
      expect(b.cli('GET', 'httpy:taken')).toEqual(['not a stream'])
      // The same pipeline link carries the next publishes.
      await getOnce(a!.port, '/publish?from=ok&n=5')
      await waitFor(() => onC.texts.length >= 5, 5000, 20)
      expect(onC.texts).toEqual(sequence('ok', 5))
    }, 60_000)

    it('maxLen caps each stream; a new subscriber starts at the end, not the history', async () => {
      // Small stream nodes, so the approximate trim lands close to maxLen.
      const b = await broker(undefined, { extra: ['--stream-node-max-entries', '10'] })
      const [a, c] = await Promise.all([1, 2].map(() => app(durable(b.url, { maxLen: 100 }))))
      expect(await brokerUp([a!, c!])).toBe(true)
      await getOnce(a!.port, '/publish?from=burst&n=1000')
      const added = (): number => {
        const info = b.cli('XINFO', 'STREAM', 'httpy:room')
        return Number(info[info.indexOf('entries-added') + 1])
      }
      expect(await waitFor(() => added() === 1000, 10_000, 20)).toBe(true)
      const len = Number(b.cli('XLEN', 'httpy:room')[0])
      expect(len).toBeGreaterThanOrEqual(100)
      expect(len).toBeLessThanOrEqual(110)
      const late = await connect(c!.port)
      expect(await reading(b, [c!])).toBe(true)
      await getOnce(a!.port, '/publish?from=fresh&n=5')
      await waitFor(() => late.texts.length >= 5, 10_000, 20)
      expect(late.texts).toEqual(sequence('fresh', 5))
      expect(alive(a!.pid) && alive(c!.pid)).toBe(true)
    }, 60_000)
  })
})
