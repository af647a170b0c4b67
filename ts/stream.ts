/**
 * Streamed response bodies: pulls chunks from an async iterable (a Node
 * `Readable`, a web `ReadableStream`, an async generator) and writes them to
 * the core, waiting whenever the core's small per-stream buffer is full, so
 * a slow client slows the producer down instead of filling memory.
 */
import { HttpyTypeError } from './errors.js'
import { WriteResult, type NativeServer } from './native.js'
import type { StreamBody } from './response.js'

/** True for the body types sent as a stream. */
export function isStreamBody(body: unknown): body is StreamBody {
  return (
    body !== null &&
    typeof body === 'object' &&
    typeof (body as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function'
  )
}

function toChunk(c: unknown): Buffer | string {
  if (typeof c === 'string' || Buffer.isBuffer(c)) return c
  if (c instanceof Uint8Array) return Buffer.from(c.buffer, c.byteOffset, c.byteLength)
  throw new HttpyTypeError(
    'ERR_HTTPY_INVALID_RESPONSE',
    `a response stream yielded ${Object.prototype.toString.call(c)}; chunks must be strings or Uint8Arrays`,
  )
}

/**
 * Starts the streamed answer to request `id` (throws synchronously on an
 * invalid status or header) and pumps `body` into it in the background.
 * A body that throws aborts the connection and is reported via `onError`.
 */
export function pumpStream(
  n: NativeServer,
  id: number,
  status: number,
  headers: string,
  body: StreamBody,
  onError: (err: unknown) => void,
): void {
  let wake: (() => void) | undefined
  const stream = n.respondStream(id, status, headers, () => {
    const w = wake
    wake = undefined
    w?.()
  })
  const iterable = body as AsyncIterable<unknown>
  if (stream === null) {
    // The client left before the first byte: release the producer.
    const it = iterable[Symbol.asyncIterator]()
    void Promise.resolve(it.return?.()).catch(() => {})
    return
  }
  void (async () => {
    try {
      for await (const raw of iterable) {
        const chunk = toChunk(raw)
        const write = () => (typeof chunk === 'string' ? stream.writeText(chunk) : stream.write(chunk))
        let r = write()
        while (r === WriteResult.Full) {
          await new Promise<void>((resolve) => {
            wake = resolve
          })
          r = write()
        }
        // Client gone: leaving the loop closes the iterator (and the source).
        if (r === WriteResult.Closed) break
      }
      stream.end()
    } catch (err) {
      stream.abort(err instanceof Error ? err.message : String(err))
      onError(err)
    }
  })()
}
