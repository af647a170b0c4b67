/**
 * Static files (guide: "Static File Serving"): the guide's handler with a
 * content type, an ETag, `If-None-Match` → 304 and a one-day Cache-Control.
 * One addition: the resolved path must stay inside STATIC_DIR, so
 * `/static/../secret` cannot read other files.
 *
 *   npx tsx examples/static-files.ts
 *   curl -i http://127.0.0.1:8080/static/style.css
 *
 * For production, `serveStatic('/static', dir, { maxAge, etag })` serves the
 * same from the Rust core without entering JavaScript.
 */
import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Response, get, run } from 'httpy'

const STATIC_DIR = process.env.STATIC_DIR ?? fileURLToPath(new URL('./static', import.meta.url))

const CONTENT_TYPES: Record<string, string> = {
  '.css': 'text/css',
  '.js': 'application/javascript',
  '.html': 'text/html; charset=utf-8',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
}

get('/static/{path:path}', async (req) => {
  const path = req.pathParams.path ?? ''
  const root = resolve(STATIC_DIR)
  const filePath = resolve(join(root, path))
  const notFound = () => Response.json({ error: 'File not found' }, 404)
  if (!filePath.startsWith(root + sep)) return notFound()
  const info = await stat(filePath).catch(() => null)
  if (!info?.isFile()) return notFound()

  // Read the file.
  const content = await readFile(filePath)

  // Determine the content type.
  const ext = /\.[^./]+$/.exec(path)?.[0] ?? ''
  const contentType = CONTENT_TYPES[ext] ?? 'application/octet-stream'

  // Calculate the ETag.
  const etag = `"${createHash('sha1').update(content).digest('base64url')}"`

  // Check If-None-Match.
  if (req.headers.get('If-None-Match') === etag) {
    return new Response(null, { status: 304, headers: { ETag: etag } }) // Not Modified
  }

  // Set caching headers.
  return new Response(content, {
    headers: {
      'Content-Type': contentType,
      ETag: etag,
      'Cache-Control': 'max-age=86400', // 1 day
    },
  })
})

const host = process.env.HOST ?? '127.0.0.1'
await run({ host, port: Number(process.env.PORT ?? 8080) })
