// Upload throughput: one multipart/form-data body with a 100 MB file (and a
// small field), posted over HTTP/1.1 to a handler that reads every part and
// counts the file's bytes, a few runs per server.
//
//   node bench/uploads.mjs                      # HTTPy only
//   FASTIFY_DIR=/path/with/node_modules node bench/uploads.mjs
//       # also fastify + @fastify/multipart, resolved from that directory
//       # (npm install fastify @fastify/multipart there; not a dependency
//       # of this package)
//   UPLOAD_MB=100 RUNS=5 node bench/uploads.mjs
//
// Each server runs in its own process. The client builds the body once in
// memory and writes it with backpressure, so its own cost is the same for
// every server. Per run: wall time from the first byte sent to the end of
// the answer (MB/s), and the server process's CPU time during the request
// (user + system, all threads, from process.cpuUsage() in the handler).
import { spawn } from 'node:child_process'
import http from 'node:http'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const MB = Number(process.env.UPLOAD_MB ?? 100)
const RUNS = Number(process.env.RUNS ?? 3)
const LIMIT = 4 * 1024 ** 3

async function serveHttpy() {
  const { App, Response } = await import(join(here, '../dist/index.js'))
  const app = new App().post(
    '/upload',
    async (req) => {
      const cpu = process.cpuUsage()
      let bytes = 0
      for await (const part of req.parts()) {
        if (part.filename === undefined) await part.text()
        else for await (const c of part.stream()) bytes += c.length
      }
      return Response.json({ bytes, cpu: process.cpuUsage(cpu) })
    },
    { multipart: { maxFileSize: LIMIT } },
  )
  const s = await app.listen({ host: '127.0.0.1', port: 0, quiet: true, maxBodySize: LIMIT })
  return s.port
}

async function serveFastify() {
  const require = createRequire(join(process.env.FASTIFY_DIR, 'package.json'))
  const fastify = require('fastify')({ bodyLimit: LIMIT })
  await fastify.register(require('@fastify/multipart'), { limits: { fileSize: LIMIT } })
  fastify.post('/upload', async (req) => {
    const cpu = process.cpuUsage()
    let bytes = 0
    for await (const part of req.parts()) {
      if (part.type === 'file') for await (const c of part.file) bytes += c.length
    }
    return { bytes, cpu: process.cpuUsage(cpu) }
  })
  await fastify.listen({ host: '127.0.0.1', port: 0 })
  return fastify.server.address().port
}

if (process.argv[2] === 'serve') {
  const port = await (process.argv[3] === 'fastify' ? serveFastify() : serveHttpy())
  process.stdout.write(`${port}\n`)
} else {
  const boundary = '----httpybench' + Date.now()
  const file = Buffer.alloc(MB * 1024 * 1024)
  for (let i = 0; i < file.length; i += 4096) file.fill(i & 255, i, Math.min(i + 4096, file.length))
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="title"\r\n\r\nbench\r\n`),
    Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`),
    file,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ])

  const post = (port) =>
    new Promise((resolve, reject) => {
      const t0 = process.hrtime.bigint()
      const req = http.request(
        { host: '127.0.0.1', port, path: '/upload', method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': body.length } },
        (res) => {
          let text = ''
          res.on('data', (c) => (text += c))
          res.on('end', () => resolve({ status: res.statusCode, ms: Number(process.hrtime.bigint() - t0) / 1e6, out: JSON.parse(text) }))
        },
      )
      req.on('error', reject)
      let at = 0
      const pump = () => {
        while (at < body.length) {
          const piece = body.subarray(at, at + 1024 * 1024)
          at += piece.length
          if (!req.write(piece)) return void req.once('drain', pump)
        }
        req.end()
      }
      pump()
    })

  const servers = ['httpy', ...(process.env.FASTIFY_DIR ? ['fastify'] : [])]
  console.log(`${MB} MB multipart file, ${RUNS} runs per server (MB/s wall; server CPU s)`)
  for (const name of servers) {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'serve', name], { stdio: ['ignore', 'pipe', 'inherit'] })
    const port = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(Number(String(d).trim()))))
    const rows = []
    for (let i = 0; i < RUNS + 1; i++) {
      const r = await post(port)
      if (r.status !== 200 || r.out.bytes !== file.length) throw new Error(`${name}: ${r.status} ${JSON.stringify(r.out)}`)
      const cpu = (r.out.cpu.user + r.out.cpu.system) / 1e6
      if (i > 0) rows.push({ mbps: MB / (r.ms / 1000), cpu }) // the first run warms up
    }
    child.kill()
    const fmt = (xs) => xs.map((x) => x.toFixed(2)).join(', ')
    console.log(`${name.padEnd(8)} MB/s: ${fmt(rows.map((r) => r.mbps))}   CPU s: ${fmt(rows.map((r) => r.cpu))}`)
  }
}
