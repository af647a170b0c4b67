/**
 * `npm run bench:micro`: tinybench micro-benchmarks of the TypeScript hot
 * path, run on the compiled package as users run it: `bench/micro-run.mjs`
 * builds `dist/`, compiles this file alone with its `../ts/` imports
 * pointed at `dist/`, and runs it with plain `node` (under `tsx` the
 * TypeScript is compiled by the loader and the figures are not the
 * package's; see docs/fetch.md). It times each step a JS-handled request pays on the JS side: decoding the
 * request record, the handler call, building the Response and its header
 * block, writing the reply into the outgoing batch buffer (what the
 * server's private `#queue` does), the fetch path (a plain fetch handler
 * and a Hono app, from the record to HTTPy's Response), and the N-API
 * crossings (a JS -> Rust no-op call, a Rust thread -> JS wake-up).
 *
 *   npm run bench:micro
 *   npm run bench:micro -- --time 2000   # ms per task
 *   npm run bench:micro -- --only fetch  # the tasks whose name has the word
 */
import { Hono } from 'hono'
import { Bench } from 'tinybench'
import { App } from '../ts/app.js'
import { fromFetch } from '../ts/fetch.js'
import { native } from '../ts/native.js'
import { recordLength, replyRoom, writeReply } from '../ts/record.js'
import { Request } from '../ts/request.js'
import { Response } from '../ts/response.js'

const timeArg = process.argv.indexOf('--time')
const time = timeArg > 0 ? Number(process.argv[timeArg + 1]) : 500

/**
 * A real record: the core parses known requests from a socket and encodes
 * them (`recordFixture`, the encoder `drainInto` uses). The first one is
 * `POST /users/42/café?x=1&y=%20z` with 4 headers and a 5-byte body, on a
 * route with two parameters.
 */
const { parts } = native.recordFixture()
const rec = parts[0] as Buffer
const names = (): readonly string[] => ['id', 'name']

/**
 * The reply batch, written as the server's `#queue` writes it (`writeReply`):
 * a header block given as a string, or as the bytes a template's copy
 * carries (`_wireBytes()`), and a string body.
 */
const out = Buffer.allocUnsafeSlow(64 * 1024)
let outLen = 0
function queueReply(id: number, status: number, headers: string | Uint8Array, body: string): void {
  if (outLen + replyRoom(headers, body) > out.length) outLen = 0
  outLen = writeReply(out, outLen, id, status, headers, body)
}
/** The header block as the server takes it from a response. */
function wireOf(res: Response): string | Uint8Array {
  return res.headers._wireBytes() ?? res.headers.toWire()
}

const HELLO = 'Hello, World!'
const plaintext = (_req: Request): Response => new Response(HELLO, { headers: { 'content-type': 'text/plain' } })
const plainReq = new Request(rec, 0, parts, names)
const plainRes = plaintext(plainReq)
const plainWire = wireOf(plainRes)

const app = new App()
const passThrough = (req: Request, next: (r: Request) => Promise<Response>) => next(req)
app.use(passThrough).use(passThrough).use(async (req, next) => {
  const res = await next(req)
  res.headers.set('x-request-path', req.path)
  return res
})
app.post('/users/{id}/{name}', (req) => Response.json({ id: req.pathParams.id }))
const composed = app.table.entries[0]!.composed

/**
 * The fetch path (`serve({ fetch })`): the lazy standard Request over the
 * record, the handler, and the Response turned into HTTPy's; a plain fetch
 * handler (as bench/servers/peer-fetch.mjs) and the peers kit's Hono app
 * (as bench/servers/peer-hono.mjs). The first `fromFetch` installs the
 * lightweight global `Response`, as `serve()` does.
 */
const plainFetch = fromFetch((request: globalThis.Request) => {
  const url = request.url
  const path = url.slice(url.indexOf('/', 8))
  if (path.startsWith('/users/')) return globalThis.Response.json({ id: path.slice(7) })
  return new globalThis.Response(HELLO, { headers: { 'content-type': 'text/plain' } })
}, () => undefined)
const hono = new Hono()
hono.get('/plaintext', (c) => c.text('Hello, World!'))
hono.post('/users/:id/:name', (c) => c.json({ id: c.req.param('id') }))
const honoFetch = fromFetch(hono.fetch, () => undefined)
/** The same route reading one request header, as middleware and handlers do (`c.req.header`). */
const honoHeader = new Hono()
honoHeader.post('/users/:id/:name', (c) => c.json({ id: c.req.param('id'), type: c.req.header('content-type') }))
const honoHeaderFetch = fromFetch(honoHeader.fetch, () => undefined)
/** The same reading two headers, as an app with a middleware that checks one (each name's last value is kept apart). */
const honoTwo = new Hono()
honoTwo.post('/users/:id/:name', (c) => c.json({ id: c.req.param('id'), type: c.req.header('content-type'), dup: c.req.header('x-dup') }))
const honoTwoFetch = fromFetch(honoTwo.fetch, () => undefined)
/**
 * The same kind of app on the fixture's second record, `DELETE /users/7/x`
 * (a path without percent-escapes, as most are: Hono's `getPath` then
 * skips `decodeURI`), answering with `c.text`.
 */
const plainAt = recordLength(rec, 0)
const honoPlain = new Hono()
honoPlain.delete('/users/:id/:name', (c) => c.text('Hello, World!'))
const honoPlainFetch = fromFetch(honoPlain.fetch, () => undefined)
/** The reply the server would queue, from whatever the adapted handler gave. */
async function settle(out: Response | Promise<Response>): Promise<Response> {
  const res = await out
  if (res.status !== 200) throw new Error(`status ${res.status}`)
  return res
}

/**
 * The fetch cases run this many requests per timed call, and the table
 * divides by it: tinybench reads the clock around every call, and for an
 * async call of about a microsecond that (and the promise it awaits) was a
 * large part of the figure; see the floor task.
 */
const BATCH = 100

const bench = new Bench({ time, warmupTime: Math.min(200, time) })
bench
  .add('decode: Request from a record (method, path, param)', () => {
    const req = new Request(rec, 0, parts, names)
    if (req.method.length + req.path.length + (req.pathParams.id as string).length === 0) throw new Error('unreachable')
  })
  .add('decode: Request from a record + one header', () => {
    const req = new Request(rec, 0, parts, names)
    if (req.headers.get('content-type') === null) throw new Error('header missing')
  })
  .add('handler call: plaintext handler (new Response, headers object)', () => {
    if (plaintext(plainReq).status !== 200) throw new Error('unreachable')
  })
  .add('Response: header block of a plaintext response (toWire)', () => {
    plaintext(plainReq).headers.toWire()
  })
  .add('Response.json({message})', () => {
    Response.json({ message: 'Hello, World!' })
  })
  .add('Response.json + wire headers', () => {
    Response.json({ message: 'Hello, World!' }).headers.toWire()
  })
  .add('handler + 3 middleware (async chain)', async () => {
    await composed(new Request(rec, 0, parts, names))
  })
  .add('batch write: one reply into the outgoing buffer (as #queue)', () => {
    queueReply(7, 200, plainWire, HELLO)
  })
  .add('one request, JS side: decode + handler + header block + batch write', () => {
    const req = new Request(rec, 0, parts, names)
    const res = plaintext(req)
    queueReply(req._id, res.status, wireOf(res), res.body as string)
  })
  .add(`fetch: lazy Request + url + handler + Response.json -> HTTPy Response (x${BATCH})`, async () => {
    for (let i = 0; i < BATCH; i++) (await settle(plainFetch(new Request(rec, 0, parts, names)))).headers.toWire()
  })
  .add(`fetch: Hono app (router, context, c.json) on the same path (x${BATCH})`, async () => {
    for (let i = 0; i < BATCH; i++) (await settle(honoFetch(new Request(rec, 0, parts, names)))).headers.toWire()
  })
  .add(`fetch: Hono app reading one header (c.req.header) of the 5 (x${BATCH})`, async () => {
    for (let i = 0; i < BATCH; i++) {
      const res = await settle(honoHeaderFetch(new Request(rec, 0, parts, names)))
      if (res.body !== '{"id":"42","type":"text/plain"}') throw new Error(`body ${String(res.body)}`)
      res.headers.toWire()
    }
  })
  .add(`fetch: Hono app reading two headers of the 5 (x${BATCH})`, async () => {
    for (let i = 0; i < BATCH; i++) {
      const res = await settle(honoTwoFetch(new Request(rec, 0, parts, names)))
      if (res.body !== '{"id":"42","type":"text/plain","dup":"a, b"}') throw new Error(`body ${String(res.body)}`)
      res.headers.toWire()
    }
  })
  .add(`fetch: Hono app, c.text, on a plain path (x${BATCH})`, async () => {
    for (let i = 0; i < BATCH; i++) (await settle(honoPlainFetch(new Request(rec, plainAt, parts, names)))).headers.toWire()
  })
  .add('floor: an empty async task (what tinybench adds to each timed call)', async () => {})
  .add('native.noop() (JS -> Rust call)', () => {
    native.noop()
  })
  .add('native.wakeOnce round trip (Rust thread -> JS, includes a thread spawn)', async () => {
    await new Promise<void>((resolve) => native.wakeOnce(() => resolve()))
  })

const only = process.argv.indexOf('--only')
if (only > 0) {
  // `--only fetch` keeps the tasks whose name contains the word.
  const word = process.argv[only + 1] ?? ''
  for (const t of [...bench.tasks]) if (!t.name.includes(word)) bench.remove(t.name)
}
await bench.run()
const compiled = import.meta.url.endsWith('.mjs') ? 'compiled dist/' : 'TypeScript sources through a loader: not the figures of the package'
console.log(`tinybench, ${time} ms per task, node ${process.version}, ${compiled} (the median is the steadier figure on a busy machine)`)
console.table(
  bench.tasks.map((t) => {
    const r = t.result as { latency?: { mean?: number; p50?: number; p99?: number }; throughput?: { mean?: number } } | undefined
    // Per request: a batched task's figures divided by its batch.
    const per = t.name.endsWith(`(x${BATCH})`) ? BATCH : 1
    const ns = (ms: number | undefined): number | string => (ms !== undefined ? Math.round((ms * 1e6) / per) : '-')
    return {
      task: t.name,
      'ns/op (median)': ns(r?.latency?.p50),
      'ns/op (mean)': ns(r?.latency?.mean),
      'ns/op (p99)': ns(r?.latency?.p99),
      'ops/s': r?.throughput?.mean !== undefined ? Math.round(r.throughput.mean * per).toLocaleString('en-US') : '-',
    }
  }),
)
