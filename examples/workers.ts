/**
 * Worker processes (guide: "Worker Configuration"): one process per CPU
 * core. `run({ workers })` forks the processes itself (node:cluster); each
 * worker runs this same file and listens on the shared port with
 * SO_REUSEPORT, so the kernel spreads connections between them. The primary
 * only supervises (restarts a crashed worker, drains all on SIGTERM).
 *
 *   npx tsx examples/workers.ts
 *   curl http://127.0.0.1:8080/     # "hello from worker <pid>"
 *
 * WORKERS overrides the count.
 */
import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import { Response, get, run } from 'httpy'

get('/', () => Response.text(`hello from worker ${process.pid}`))

// Use one worker per CPU core.
const numWorkers = Number(process.env.WORKERS ?? availableParallelism())

const host = process.env.HOST ?? '127.0.0.1'
// The primary only supervises; run() prints the URL once every worker listens.
if (cluster.isPrimary) console.log(`primary ${process.pid} starts ${numWorkers} workers`)
await run({ host, port: Number(process.env.PORT ?? 8080), workers: numWorkers })
