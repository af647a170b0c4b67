/**
 * HTTP/3 tuning (guide: "HTTP/3 Specific Optimizations"): QUIC parameters
 * for typical MTUs and generous flow-control windows.
 *
 *   npx tsx examples/http3-config.ts
 *   curl -k --http3-only https://127.0.0.1:8443/    # with a curl built with HTTP/3
 *   curl -k https://127.0.0.1:8443/                 # HTTP/2 over TCP on the same port number
 */
import { HTTP3_AVAILABLE, Response, get, run } from 'httpy'

get('/', (req) => Response.json({ protocol: `HTTP/${req.httpVersion}` }))

const http3Config = {
  maxDatagramSize: 1350, // optimise for typical MTU
  quicMaxStreamData: 1024 * 1024, // 1 MB per stream
  quicMaxData: 5 * 1024 * 1024, // 5 MB total
  quicMaxStreamsBidi: 100, // max concurrent streams
  quicIdleTimeout: 30.0, // 30 seconds
}

if (!HTTP3_AVAILABLE) {
  console.error('this build of httpy has no HTTP/3 (HTTP3_AVAILABLE is false)')
  process.exit(1)
}

const host = process.env.HOST ?? '127.0.0.1'
const port = Number(process.env.PORT ?? 8443)
await run({ host, port, tls: 'self-signed', http3Port: port, http3Config })
