/**
 * The one reader of what the core hands over in batches: request records
 * (`drainInto`, read lazily by `Request`) and WebSocket events (`wsDrain`, read
 * by `WebSocketSessions`). Offsets, flags and codes come from the binary
 * (`src/contract.rs`, re-exported by `native.ts`); this module holds the
 * little-endian readers and names the offsets once for the hot path.
 */
import { BatchAt, ClientCert, NO_ROUTE, Placement, RecordAt, REPLY_LENT_BODY, ReplyAt, RecordFlag, RecordVersion, WsEventAt, WsEventKind, WsSendAt } from './native.js'

export { NO_ROUTE }

// Hot path: manual little-endian reads beat DataView/readUInt32LE calls.
export function u16(b: Buffer, o: number): number {
  return (b[o] as number) | ((b[o + 1] as number) << 8)
}
export function u32(b: Buffer, o: number): number {
  return ((b[o] as number) | ((b[o + 1] as number) << 8) | ((b[o + 2] as number) << 16)) + (b[o + 3] as number) * 0x1000000
}

// Request records: offsets from a record's start (`RecordAt`).
export const RECORD_LENGTH: number = RecordAt.Length
export const RECORD_ID: number = RecordAt.Id
export const RECORD_ROUTE: number = RecordAt.Route
export const RECORD_VERSION: number = RecordAt.Version
export const RECORD_FLAGS: number = RecordAt.Flags
export const RECORD_PARAM_COUNT: number = RecordAt.ParamCount
export const RECORD_HEADER_COUNT: number = RecordAt.HeaderCount
export const RECORD_METHOD: number = RecordAt.Method
export const FLAG_TLS: number = RecordFlag.Tls
export const FLAG_ALLOW: number = RecordFlag.Allow
export const FLAG_TLS_PEER: number = RecordFlag.TlsPeer
export const CLIENT_CERT_NONE: number = ClientCert.None
export const CLIENT_CERT_VERIFIED: number = ClientCert.Verified
export const FLAG_STREAMED: number = RecordFlag.Streamed
export const FLAG_MULTIPART: number = RecordFlag.Multipart
export const FLAG_PARTS_ON_ASK: number = RecordFlag.PartsOnAsk
export const FLAG_URL: number = RecordFlag.Url
export const EXTERNAL: number = Placement.External

export type HttpVersion = '1.0' | '1.1' | '2' | '3'

/** `req.httpVersion` by the record's version byte. */
export const VERSIONS: readonly HttpVersion[] = (() => {
  const v: HttpVersion[] = []
  v[RecordVersion.Http10] = '1.0'
  v[RecordVersion.Http11] = '1.1'
  v[RecordVersion.Http2] = '2'
  v[RecordVersion.Http3] = '3'
  return v
})()

// A drained batch: the count of bodies sent apart, then the records.
export const BATCH_BODY_COUNT: number = BatchAt.BodyCount
export const BATCH_FIRST_RECORD: number = BatchAt.FirstRecord

// One reply of a reply batch (`respondBatch`), from the reply's start.
export const REPLY_ID: number = ReplyAt.Id
export const REPLY_STATUS: number = ReplyAt.Status
export const REPLY_HEADER_LENGTH: number = ReplyAt.HeaderLength
export const REPLY_HEADERS: number = ReplyAt.Headers

/** Length of the record at `at` of a batch buffer (the step to the next one). */
export function recordLength(buf: Buffer, at: number): number {
  return u32(buf, at + RECORD_LENGTH)
}

// WebSocket events: offsets from an event's start (`WsEventAt`), kinds.
export const WS_KIND: number = WsEventAt.Kind
export const WS_ID: number = WsEventAt.Id
export const WS_LENGTH: number = WsEventAt.Length
export const WS_PLACEMENT: number = WsEventAt.Placement
export const WS_DATA: number = WsEventAt.Data
export const WS_TEXT: number = WsEventKind.Text
export const WS_BINARY: number = WsEventKind.Binary
export const WS_CLOSE: number = WsEventKind.Close
export const WS_DRAIN: number = WsEventKind.Drain
// Outgoing WebSocket messages of a `wsSendBatch` buffer (`WsSendAt`).
export const WS_SEND_KIND: number = WsSendAt.Kind
export const WS_SEND_ID: number = WsSendAt.Id
export const WS_SEND_LENGTH: number = WsSendAt.Length
export const WS_SEND_DATA: number = WsSendAt.Data

/** Writes a little-endian u32 (the layouts' integers). */
export function putU32(b: Buffer, o: number, v: number): void {
  b[o] = v
  b[o + 1] = v >>> 8
  b[o + 2] = v >>> 16
  b[o + 3] = v >>> 24
}

/** Strings up to this length are written by `writeString`'s loop when ASCII. */
const SHORT_STRING = 32

/**
 * Writes `s` as UTF-8 into `out` at `at` (room checked by the caller) and
 * returns the bytes written. Short ASCII strings (most bodies and header
 * blocks of small answers) are copied by a loop: `Buffer.write` is a C++
 * call that costs ~50 ns whatever the length, the loop ~1-2 ns a character;
 * a non-ASCII character sends the string to `write` (at most SHORT_STRING
 * characters looked at twice).
 */
export function writeString(out: Buffer, at: number, s: string): number {
  const n = s.length
  if (n > SHORT_STRING) return out.write(s, at)
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c > 0x7f) return out.write(s, at)
    out[at + i] = c
  }
  return n
}

/**
 * Copies `len` bytes of `src` into `out` at `at`. Header blocks are a few
 * dozen bytes: a loop costs less than `set`'s checks and call below ~64.
 */
export function copyBytes(out: Buffer, at: number, src: Uint8Array, len: number): void {
  if (len > 64) {
    out.set(src, at)
    return
  }
  for (let i = 0; i < len; i++) out[at + i] = src[i] as number
}

/**
 * Room one reply may take in a reply batch: the worst case of the UTF-8
 * forms, so that `writeReply` cannot overflow.
 */
export function replyRoom(headers: string | Uint8Array, body: string | Uint8Array): number {
  return (
    REPLY_HEADERS + 4 + (typeof headers === 'string' ? headers.length * 3 : headers.byteLength) + (typeof body === 'string' ? body.length * 3 : body.byteLength)
  )
}

/**
 * Writes one reply of a reply batch (layout: `ReplyBatch` in the core) at
 * `at` of `out`, which has `replyRoom` bytes free there, and returns where
 * the next one goes. `headers` is the header block, or its bytes when a
 * template's copy carries them (`Headers._wireBytes()`).
 */
export function writeReply(out: Buffer, at: number, id: number, status: number, headers: string | Uint8Array, body: string | Uint8Array): number {
  putU32(out, at + REPLY_ID, id)
  out[at + REPLY_STATUS] = status
  out[at + REPLY_STATUS + 1] = status >>> 8
  let hlen: number
  if (typeof headers === 'string') {
    hlen = writeString(out, at + REPLY_HEADERS, headers)
  } else {
    hlen = headers.byteLength
    copyBytes(out, at + REPLY_HEADERS, headers, hlen)
  }
  putU32(out, at + REPLY_HEADER_LENGTH, hlen)
  at += REPLY_HEADERS + hlen
  let blen: number
  if (typeof body === 'string') {
    blen = writeString(out, at + 4, body)
  } else {
    out.set(body, at + 4)
    blen = body.byteLength
  }
  putU32(out, at, blen)
  return at + 4 + blen
}

/**
 * Like `writeReply`, for a body that crosses beside the batch (the next of
 * `respondBatch`'s `bodies`): its length field holds `REPLY_LENT_BODY`.
 */
export function writeLentReply(out: Buffer, at: number, id: number, status: number, headers: string | Uint8Array): number {
  const end = writeReply(out, at, id, status, headers, '')
  putU32(out, end - 4, REPLY_LENT_BODY)
  return end
}
