/**
 * Buffer sizes (guide: "Buffer Sizes"): fixed 64 KiB socket buffers
 * (SO_RCVBUF/SO_SNDBUF) for large request and response bodies. Unset, HTTPy
 * leaves both to the kernel's autotuning (the guide's default is a fixed
 * 16 KiB).
 *
 *   npx tsx examples/buffer-sizes.ts
 *   curl http://127.0.0.1:8080/
 */
import { Response, get, run } from 'httpy'

get('/', () => Response.text('Hello with 64 KiB buffers'))

const host = process.env.HOST ?? '127.0.0.1'
await run({
  host,
  port: Number(process.env.PORT ?? 8080),
  readBufferSize: 65536, // 64 KiB receive buffer (default: kernel autotuning)
  writeBufferSize: 65536, // 64 KiB send buffer (default: kernel autotuning)
})
