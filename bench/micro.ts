/**
 * `npm run bench:micro`: tinybench micro-benchmarks of the TypeScript hot
 * path, each step a request pays on the JS side: decoding the request
 * record, building the response, the middleware chain, and the two N-API
 * crossings (JS -> Rust no-op call, Rust thread -> JS wake-up).
 *
 *   npm run bench:micro
 *   npm run bench:micro -- --time 2000   # ms per task
 */
import { Bench } from 'tinybench'
import { App } from '../ts/app.js'
import { native } from '../ts/native.js'
import { Request } from '../ts/request.js'
import { Response } from '../ts/response.js'

const timeArg = process.argv.indexOf('--time')
const time = timeArg > 0 ? Number(process.argv[timeArg + 1]) : 500

/**
 * One request record in the layout of `crates/core/src/record.rs`, as the
 * core would hand it over for `GET /users/42?x=1` with a few headers.
 */
function record(): Buffer {
  const parts: Buffer[] = []
  const u8 = (v: number) => parts.push(Buffer.from([v]))
  const u16 = (v: number) => {
    const b = Buffer.alloc(2)
    b.writeUInt16LE(v)
    parts.push(b)
  }
  const u32 = (v: number) => {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(v)
    parts.push(b)
  }
  const s16 = (s: string) => {
    u16(Buffer.byteLength(s))
    parts.push(Buffer.from(s))
  }
  const s32 = (s: string) => {
    u32(Buffer.byteLength(s))
    parts.push(Buffer.from(s))
  }
  const headers: Array<[string, string]> = [
    ['host', '127.0.0.1:8080'],
    ['user-agent', 'bench/1.0'],
    ['accept', '*/*'],
  ]
  u32(0) // length, patched below
  u32(7) // id
  u32(0) // route
  u8(1) // HTTP/1.1
  u8(0) // flags
  u16(1) // params
  u16(headers.length)
  s16('GET')
  s32('/users/42')
  s32('x=1')
  s16('127.0.0.1')
  u16(50000)
  s32('42')
  for (const [n, v] of headers) {
    s16(n)
    s32(v)
  }
  u32(0) // body length
  u8(0) // inline
  const buf = Buffer.concat(parts)
  buf.writeUInt32LE(buf.length, 0)
  return buf
}

const rec = record()
const names = () => ['id'] as const

const app = new App()
const passThrough = (req: Request, next: (r: Request) => Promise<Response>) => next(req)
app.use(passThrough).use(passThrough).use(async (req, next) => {
  const res = await next(req)
  res.headers.set('x-request-path', req.path)
  return res
})
app.get('/users/{id}', (req) => Response.json({ id: req.pathParams.id }))
const composed = app.table.entries[0]!.composed

const bench = new Bench({ time, warmupTime: Math.min(200, time) })
bench
  .add('Request from a record (method, path, param)', () => {
    const req = new Request(rec, 0, [], names)
    if (req.method.length + req.path.length + (req.pathParams.id as string).length === 0) throw new Error('unreachable')
  })
  .add('Request from a record + one header', () => {
    const req = new Request(rec, 0, [], names)
    if (req.headers.get('user-agent') === null) throw new Error('header missing')
  })
  .add('Response.json({message})', () => {
    Response.json({ message: 'Hello, World!' })
  })
  .add('Response.json + wire headers', () => {
    Response.json({ message: 'Hello, World!' }).headers.toWire()
  })
  .add('handler + 3 middleware (async chain)', async () => {
    await composed(new Request(rec, 0, [], names))
  })
  .add('native.noop() (JS -> Rust call)', () => {
    native.noop()
  })
  .add('native.wakeOnce round trip (Rust thread -> JS, includes a thread spawn)', async () => {
    await new Promise<void>((resolve) => native.wakeOnce(() => resolve()))
  })

await bench.run()
console.log(`tinybench, ${time} ms per task, node ${process.version}`)
console.table(
  bench.tasks.map((t) => {
    const r = t.result as { latency?: { mean?: number; p99?: number }; throughput?: { mean?: number } } | undefined
    return {
      task: t.name,
      'ns/op (mean)': r?.latency?.mean !== undefined ? Math.round(r.latency.mean * 1e6) : '-',
      'ns/op (p99)': r?.latency?.p99 !== undefined ? Math.round(r.latency.p99 * 1e6) : '-',
      'ops/s': r?.throughput?.mean !== undefined ? Math.round(r.throughput.mean).toLocaleString('en-US') : '-',
    }
  }),
)
