/**
 * Streamed bodies, both ways. Responses: pulls chunks from an async
 * iterable (a Node `Readable`, a web `ReadableStream`, an async generator)
 * and writes them to the core, waiting whenever the core's small
 * per-stream buffer is full, so a slow client slows the producer down
 * instead of filling memory. Requests (`uploadStream`): a `ReadableStream`
 * that takes a chunk from the core only when its consumer asks for one, so
 * a slow consumer slows the client down.
 */
import { HttpyError, HttpyTypeError, fromNative } from './errors.js'
import { AbortState, WriteResult, type NativeServer, type NativeUpload } from './native.js'
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
  onClientGone?: () => void,
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
    onClientGone?.()
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
        if (r === WriteResult.Closed) {
          onClientGone?.()
          break
        }
      }
      stream.end()
    } catch (err) {
      stream.abort(err instanceof Error ? err.message : String(err))
      onError(err)
    }
  })()
}

/** @internal What a request needs of its server: its streamed body, and word of the client leaving. */
export interface RequestLink {
  /** `parts`: take a `PartsOnAsk` body as multipart frames, parsed by the core. */
  takeUpload(id: number, onReadable: () => void, parts?: boolean): NativeUpload | null
  watchAbort(id: number, onAbort: () => void): AbortState
}

/** The link of a running server's requests (`native` is read per call: it is gone once the server closed). */
export function requestLink(native: () => NativeServer | undefined): RequestLink {
  return {
    takeUpload: (id, onReadable, parts) => native()?.takeUpload(id, onReadable, parts) ?? null,
    watchAbort: (id, onAbort) => native()?.watchAbort(id, onAbort) ?? AbortState.Answered,
  }
}

/**
 * The streamed body of request `id` (with `parts`: as multipart frames).
 * `highWaterMark: 0`: nothing is taken from the core before the consumer
 * reads, so the core's small buffer (and then the socket) holds what the
 * consumer has not asked for yet. `onBroken` runs before the stream errors
 * with what the core reported (the client left mid-body, or the core
 * answered in the handler's place): the request's `signal` is aborted by
 * the time the handler sees the error, rather than a turn of the event
 * loop later, when the core's notice arrives.
 */
export function uploadStream(
  link: RequestLink | undefined,
  id: number,
  parts = false,
  onBroken?: () => void,
): ReadableStream<Uint8Array> {
  let upload: NativeUpload | null | undefined
  let wake: (() => void) | undefined
  const onReadable = (): void => {
    const w = wake
    wake = undefined
    w?.()
  }
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        upload ??= link?.takeUpload(id, onReadable, parts) ?? null
        if (upload === null) {
          controller.error(new HttpyError('ERR_HTTPY_BODY_ABORTED', 'the request is over: its body can no longer be read'))
          return
        }
        for (;;) {
          let chunk: Buffer | null
          try {
            chunk = upload.read()
          } catch (e) {
            onBroken?.()
            controller.error(fromNative(e))
            return
          }
          if (chunk !== null) {
            controller.enqueue(chunk)
            return
          }
          if (upload.ended) {
            controller.close()
            return
          }
          // The call-back is queued on this thread by the core, so it cannot
          // run before `wake` is set.
          await new Promise<void>((resolve) => {
            wake = resolve
          })
        }
      },
      cancel() {
        upload?.cancel()
      },
    },
    { highWaterMark: 0 },
  )
}

/** Reads a stream of byte chunks to its end, into one buffer. */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  let total = 0
  for await (const c of stream) {
    chunks.push(c)
    total += c.byteLength
  }
  return Buffer.concat(chunks, total)
}
