/**
 * Multipart uploads as the core parsed them (routes with the `multipart`
 * option): the request's stream carries frames (`PartFrame`, layout in
 * `src/contract.rs`) instead of raw bytes, read here into `Part`s, one
 * after another, each with its bytes as a stream. Backpressure is the
 * upload stream's: nothing is taken from the core before a part's reader
 * (or the next `parts()` step) asks.
 */
import { HttpyError, HttpyTypeError } from './errors.js'
import { PartFrame } from './native.js'
import { u16, u32 } from './record.js'
import { readAll } from './stream.js'

/** The limits of the `multipart` route option, with their defaults. */
export interface MultipartOptions {
  /** Parts (fields and files) in one body; beyond it, 413. Default 1000. */
  maxParts?: number
  /** Bytes of one plain field (a part without a file name); beyond it, 413. Default 1 MiB. */
  maxFieldSize?: number
  /** Bytes of one file; beyond it, 413. Default: no limit but `maxBodySize`. */
  maxFileSize?: number
  /** Bytes of one part's header lines; beyond it, 413. Default 16 KiB. */
  maxHeaderSize?: number
}

interface Frame {
  kind: number
  payload: Buffer
}

/** Splits the upload's chunks (each holds whole frames) into frames. */
class Frames {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>
  #chunk: Buffer | undefined
  #at = 0

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader()
  }

  async next(): Promise<Frame | undefined> {
    while (this.#chunk === undefined || this.#at >= this.#chunk.length) {
      const { value, done } = await this.#reader.read()
      if (done) return undefined
      this.#chunk = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
      this.#at = 0
    }
    const b = this.#chunk
    const kind = b[this.#at] as number
    const len = u32(b, this.#at + 1)
    const payload = b.subarray(this.#at + 5, this.#at + 5 + len)
    this.#at += 5 + len
    return { kind, payload }
  }

  cancel(): void {
    void this.#reader.cancel().catch(() => {})
  }
}

/** One part of a multipart body: a form field, or a file when `filename` is set. */
export class Part {
  /** The field name (`name=` of its `Content-Disposition`). */
  readonly name: string
  /** The file name, for a file; `undefined` for a plain field. */
  readonly filename: string | undefined
  /** The part's `Content-Type` (empty when it has none). */
  readonly type: string
  readonly #frames: Frames
  #done = false
  #taken = false

  /** @internal */
  constructor(head: Buffer, frames: Frames) {
    let o = 0
    const str = (): string => {
      const n = u16(head, o)
      const s = head.toString('utf8', o + 2, o + 2 + n)
      o += 2 + n
      return s
    }
    this.name = str()
    const hasFile = head[o++] === 1
    const filename = str()
    this.filename = hasFile ? filename : undefined
    this.type = str()
    this.#frames = frames
  }

  /** The part's bytes as they arrive. Read it before asking `parts()` for the next part. */
  stream(): ReadableStream<Uint8Array> {
    if (this.#taken) throw new HttpyError('ERR_HTTPY_BODY_USED', `part ${JSON.stringify(this.name)} was already read`)
    this.#taken = true
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          const f = this.#done ? undefined : await this.#frames.next()
          if (f === undefined || f.kind !== PartFrame.Data) {
            this.#done = true
            controller.close()
          } else {
            controller.enqueue(f.payload)
          }
        },
      },
      { highWaterMark: 0 },
    )
  }

  /** The whole part. */
  bytes(): Promise<Buffer> {
    return readAll(this.stream())
  }

  /** The whole part, decoded as UTF-8. */
  async text(): Promise<string> {
    return (await this.bytes()).toString('utf8')
  }

  /** @internal Skips what the reader left of this part. */
  async _finish(): Promise<void> {
    while (!this.#done) {
      const f = await this.#frames.next()
      if (f === undefined || f.kind === PartFrame.End) this.#done = true
    }
  }
}

/** The parts of a multipart upload stream, one after another. */
export async function* partsOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<Part, void, undefined> {
  const frames = new Frames(stream)
  let finished = false
  try {
    for (;;) {
      const f = await frames.next()
      if (f === undefined) {
        finished = true
        return
      }
      if (f.kind !== PartFrame.Head) continue
      const part = new Part(f.payload, frames)
      yield part
      await part._finish()
    }
  } finally {
    // A consumer that stops early lets go of the rest of the body.
    if (!finished) frames.cancel()
  }
}

/** Collects parts into a standard `FormData` (files as `File`s, in memory). */
export async function formDataOf(parts: AsyncIterable<Part>): Promise<FormData> {
  const form = new FormData()
  for await (const part of parts) {
    const data = await part.bytes()
    if (part.filename !== undefined) {
      // Chunks from the core are backed by plain ArrayBuffers.
      form.append(part.name, new File([data as Uint8Array<ArrayBuffer>], part.filename, { type: part.type }))
    } else {
      form.append(part.name, data.toString('utf8'))
    }
  }
  return form
}

/** Validates the `multipart` route option into the core's limits. */
export function multipartLimits(opt: true | MultipartOptions): {
  maxParts: number
  maxFieldSize: number
  maxFileSize: number
  maxHeaderSize: number
} {
  const o = opt === true ? {} : opt
  const check = (name: keyof MultipartOptions, value: number | undefined, dflt: number): number => {
    if (value === undefined) return dflt
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
      throw new HttpyTypeError('ERR_HTTPY_INVALID_OPTION', `multipart.${name} must be a whole number >= 0`)
    }
    return value
  }
  return {
    maxParts: Math.min(check('maxParts', o.maxParts, 1000), 0xffffffff),
    maxFieldSize: check('maxFieldSize', o.maxFieldSize, 1024 * 1024),
    maxFileSize: check('maxFileSize', o.maxFileSize, Number.MAX_SAFE_INTEGER),
    maxHeaderSize: check('maxHeaderSize', o.maxHeaderSize, 16 * 1024),
  }
}
