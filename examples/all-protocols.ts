/**
 * All protocols (guide: "HTTP/1.1 vs HTTP/2 vs HTTP/3"): HTTPS with HTTP/1.1
 * and HTTP/2 chosen by ALPN, plus HTTP/3 on the same port number over UDP
 * when the binary has it built in (`HTTP3_AVAILABLE`, the guide's
 * `AIOQUIC_AVAILABLE`).
 *
 *   npx tsx examples/all-protocols.ts
 *   curl -k https://127.0.0.1:8443/            # HTTP/2 (ALPN)
 *   curl -k --http1.1 https://127.0.0.1:8443/
 *
 * Uses cert.pem/key.pem from the working directory when present (TLS_CERT
 * and TLS_KEY override the paths), otherwise a self-signed certificate for
 * development. The guide uses port 443; 8443 needs no privileges.
 */
import { existsSync } from 'node:fs'
import { HTTP3_AVAILABLE, Response, get, run, type ServerOptions } from 'httpy'

get('/', (req) => Response.json({ protocol: `HTTP/${req.httpVersion}`, scheme: req.scheme }))

const cert = process.env.TLS_CERT ?? 'cert.pem'
const key = process.env.TLS_KEY ?? 'key.pem'
const tls: ServerOptions['tls'] = existsSync(cert) && existsSync(key) ? { cert, key } : 'self-signed'

const host = process.env.HOST ?? '127.0.0.1'
const port = Number(process.env.PORT ?? 8443)

// Run with all protocols when HTTP/3 is available, otherwise HTTP/1.1 and HTTP/2.
if (HTTP3_AVAILABLE) await run({ host, port, tls, http3Port: port })
else await run({ host, port, tls })

// run() prints the URL (and the HTTP/3 port); say when HTTP/3 is missing.
if (!HTTP3_AVAILABLE) console.log('HTTP/3 not built in: serving HTTP/1.1 and HTTP/2 only')
