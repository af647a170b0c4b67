/**
 * The `accepts` route option: the media types a route takes as request
 * body. A request with a body of another type (or none declared) is
 * answered `415 Unsupported Media Type` before the handler runs.
 */
import { HttpyTypeError } from './errors.js'
import { HttpError } from './http-error.js'
import type { Request } from './request.js'
import type { Response } from './response.js'

const RANGE = /^(?:\*\/\*|[!#$%&'*+.^_`|~0-9a-z-]+\/(?:\*|[!#$%&'*+.^_`|~0-9a-z-]+))$/

/** Validates the option: one media type or a list; `type/*` and `*\/*` allowed. Returns them lower-cased. */
export function acceptsPolicy(v: unknown): readonly string[] {
  const list = typeof v === 'string' ? [v] : v
  if (!Array.isArray(list) || list.length === 0) {
    throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', 'route option "accepts" must be a media type or a non-empty array of them')
  }
  return list.map((t: unknown) => {
    const m = typeof t === 'string' ? t.trim().toLowerCase() : ''
    if (!RANGE.test(m)) {
      throw new HttpyTypeError(
        'ERR_HTTPY_INVALID_OPTION',
        `route option "accepts": ${JSON.stringify(t)} is not a media type such as "application/json" or "text/*"`,
      )
    }
    return m
  })
}

function matches(types: readonly string[], contentType: string | null): boolean {
  if (contentType === null) return false
  const semi = contentType.indexOf(';')
  const media = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
  const slash = media.indexOf('/')
  if (slash <= 0) return false
  for (const t of types) {
    if (t === media || t === '*/*') return true
    if (t.endsWith('/*') && media.startsWith(t.slice(0, -1))) return true
  }
  return false
}

/** `handler`, preceded by the check of the request body's media type. */
export function guardAccepts(
  handler: (req: Request) => Response | Promise<Response>,
  types: readonly string[],
): (req: Request) => Response | Promise<Response> {
  const list = types.join(', ')
  return (req) => {
    if ((req.streamed || req.body.length !== 0) && !matches(types, req.headers.get('content-type'))) {
      // RFC 5789 §3.1 and the Linked Data Platform's Accept-Post name what the route takes.
      const name = req.method === 'POST' ? 'accept-post' : req.method === 'PATCH' ? 'accept-patch' : undefined
      const headers: Record<string, string> | undefined = name === undefined ? undefined : { [name]: list }
      throw new HttpError(415, `unsupported media type; this route accepts ${list}`, { headers })
    }
    return handler(req)
  }
}
