/**
 * Buffer sizes (guide: "Buffer Sizes"): 64 KiB socket buffers instead of
 * the 16 KiB default, for large request and response bodies.
 *
 *   npx tsx examples/buffer-sizes.ts
 *   curl http://127.0.0.1:8080/
 */
import { Response, get, run } from 'httpy'

get('/', () => Response.text('Hello with 64 KiB buffers'))

const host = process.env.HOST ?? '127.0.0.1'
const server = await run({
  host,
  port: Number(process.env.PORT ?? 8080),
  readBufferSize: 65536, // 64 KiB read buffer (default: 16 KiB)
  writeBufferSize: 65536, // 64 KiB write buffer (default: 16 KiB)
})
console.log(`listening on http://${host}:${server.port}`)
