/**
 * Response compression (guide: "Response Compression"): the guide's gzip
 * middleware, written with node:zlib. One change from the guide: it only
 * compresses when the client sent `Accept-Encoding: gzip`, because a client
 * that did not ask for gzip cannot read it.
 *
 *   npx tsx examples/compression.ts
 *   curl --compressed -i http://127.0.0.1:8080/api/report
 */
import { gzipSync } from 'node:zlib'
import { Response, addMiddleware, get, run, type Middleware } from 'httpy'

/** Compresses the body if it is compressible and large enough. */
function compressResponse(response: Response, minSize = 1024): Response {
  // Already compressed?
  if (response.headers.has('Content-Encoding')) return response

  const contentType = response.headers.get('Content-Type') ?? ''
  const compressible =
    contentType.startsWith('text/') ||
    contentType === 'application/json' ||
    contentType === 'application/xml' ||
    contentType === 'application/javascript'

  const body = response.body
  // Files and streams (Response.file, async iterables) are not bytes in hand.
  const bytes = typeof body === 'string' ? Buffer.from(body) : body instanceof Uint8Array ? Buffer.from(body) : null
  if (compressible && bytes && bytes.length >= minSize) {
    const compressedBody = gzipSync(bytes)
    response.headers.set('Content-Encoding', 'gzip')
    response.headers.set('Content-Length', String(compressedBody.length))
    response.headers.set('Vary', 'Accept-Encoding')
    response.body = compressedBody
  }
  return response
}

// Middleware to apply compression.
const compressionMiddleware: Middleware = async (request, next) => {
  const response = await next(request)
  const accepts = /\bgzip\b/i.test(request.headers.get('Accept-Encoding') ?? '')
  return accepts ? compressResponse(response) : response
}

addMiddleware(compressionMiddleware)

get('/api/report', () =>
  Response.json({ rows: Array.from({ length: 500 }, (_, i) => ({ row: i, status: 'ok', detail: 'all systems nominal' })) }),
)
get('/api/tiny', () => Response.json({ ok: true })) // below minSize: sent as is

const host = process.env.HOST ?? '127.0.0.1'
await run({ host, port: Number(process.env.PORT ?? 8080) })
