//! The N-API contract: every number the TypeScript side and this crate (or
//! the core behind it) must agree on, defined once here. Each is a `#[napi]`
//! const or enum, so its type lands in `native/index.d.cts` and its value on
//! the loaded binding; `ts/native.ts` re-exports them and `ts/record.ts`,
//! `ts/server.ts`, `ts/stream.ts` and `ts/websocket.ts` use them, never a
//! literal of their own.
//!
//! Where the core owns a value, it is taken from the core or checked
//! against it at compile time. The record layout is checked end to end by
//! `recordFixture` (`testing.rs`): the core encodes real requests, and
//! `__test__/record.test.ts` decodes every field with `ts/record.ts`.

use napi_derive::napi;

/// What the `onEvent` callback of `NativeServer.listen` is told.
#[napi]
pub enum ServerEvent {
    /// Requests are waiting: call `drainInto` until it returns 0.
    Requests = 0,
    /// The close has finished; no event follows.
    Closed = 1,
    /// WebSocket events are waiting: call `wsDrain`.
    Ws = 2,
}

/// Which ACME challenge `tls.acme.challenge` asks for.
#[napi]
pub enum AcmeChallengeType {
    /// TLS-ALPN-01, answered on the HTTPS port.
    TlsAlpn01 = 0,
    /// HTTP-01, answered on a plain port of its own.
    Http01 = 1,
}

/// Route id of a request no route matched (`NativeOptions.jsHandlesMisses`);
/// its record then may carry the methods allowed on the path, for a 405.
#[napi]
pub const NO_ROUTE: u32 = httpy_core::record::NO_ROUTE;

/// Byte offsets in a batch of request records as `drainInto` writes it:
/// a count of the bodies that travel as their own buffers (`takeBodies`),
/// then the records one after another.
#[napi]
pub enum BatchAt {
    BodyCount = 0,
    FirstRecord = 4,
}

/// Byte offsets in one reply of a `respondBatch` buffer (the core's
/// `ReplyBatch`), from the reply's start: `u32 id | u16 status | u32 header
/// block length | header block (name\nvalue\n…) | u32 body length | body`.
#[napi]
pub enum ReplyAt {
    Id = 0,
    Status = 4,
    HeaderLength = 6,
    Headers = 10,
}

/// The body length in a reply of a `respondBatch` buffer that stands for
/// the next of the bodies passed beside the buffer (lent, not copied).
#[napi]
pub const REPLY_LENT_BODY: u32 = httpy_core::ReplyBatch::LENT;

/// Byte offsets in a request record (`httpy_core::record`), from the
/// record's start. The fixed part ends at `Method`; from there fields follow
/// one another, each behind its length:
///
/// ```text
/// u16 len + method | u32 len + path | u32 len + query | u16 len + remote ip | u16 remote port
/// params:          (u32 len + utf-8)*               (ParamCount of them)
/// RecordFlag.Allow: u16 len + allow list ("GET, HEAD")
/// RecordFlag.TlsPeer: u16 len + SNI | u8 ClientCert [u16 len + subject | u16 len + fingerprint]
/// headers:         (u16 len + name, u32 len + value)* (HeaderCount of them)
/// u32 body len | u8 Placement | inline bytes, or u32 index into the batch's external buffers
/// RecordFlag.Url:  absolute URL bytes | u32 their length (the record's last 4 bytes)
/// ```
#[napi]
pub enum RecordAt {
    /// u32: the record's length, this field included.
    Length = 0,
    /// u32: the request id every `respond*` call names.
    Id = 4,
    /// u32: the matched route's id, or `NO_ROUTE`.
    Route = 8,
    /// u8: a `RecordVersion`.
    Version = 12,
    /// u8: `RecordFlag` bits.
    Flags = 13,
    /// u16: path parameters.
    ParamCount = 14,
    /// u16: header lines.
    HeaderCount = 16,
    /// The first variable-length field.
    Method = 18,
}

/// Bits of a request record's flags byte.
#[napi]
pub enum RecordFlag {
    /// The connection is TLS.
    Tls = 1,
    /// An allow list follows the params.
    Allow = 2,
    /// TLS peer facts follow the allow list: u16 len + SNI name, u8 client
    /// certificate (`ClientCert`), then for one: u16 len + subject, u16 len
    /// + SHA-256 fingerprint.
    TlsPeer = 4,
    /// The body streams: its length here is 0; take it with `takeUpload`.
    Streamed = 8,
    /// That stream carries multipart parts, as `PartFrame` frames.
    Multipart = 16,
    /// The body streams and is `multipart/form-data`, not read yet: take it
    /// with `takeUpload(id, cb)` as raw bytes, or `takeUpload(id, cb, true)`
    /// as parts (`PartFrame` frames), parsed with the route's limits.
    PartsOnAsk = 32,
    /// The record ends with the request's absolute URL (`scheme://host`,
    /// path, `?query` when there is one), then its length as a u32: the
    /// request has exactly one `Host`, made of characters a URL's
    /// authority may hold.
    Url = 64,
}

/// The client-certificate byte of the TLS peer facts.
#[napi]
pub enum ClientCert {
    None = 0,
    /// Sent, and it chains to `tls.ca`.
    Verified = 1,
    /// Sent, but it does not chain to `tls.ca` (`rejectUnauthorized: false`).
    Unverified = 2,
}

/// Kinds of the frames of a multipart stream (`Multipart` flag): each is
/// `u8 kind | u32 payload length | payload`. `Head`'s payload: `u16 len +
/// name | u8 has file name | u16 len + file name | u16 len + content type`;
/// `Data`: the part's next bytes; `End`: empty.
#[napi]
pub enum PartFrame {
    Head = 1,
    Data = 2,
    End = 3,
}

/// What `NativeServer.watchAbort` found.
#[napi]
pub enum AbortState {
    /// The call-back will fire if the answer cannot be delivered.
    Watching = 0,
    /// The answer can no longer be delivered (no call-back follows).
    Gone = 1,
    /// The request was answered already.
    Answered = 2,
}

/// Where a request body or WebSocket payload travels: in the batch buffer,
/// or as a buffer of its own (large ones, not copied).
#[napi]
pub enum Placement {
    Inline = 0,
    External = 1,
}

/// The version byte of a request record.
#[napi]
pub enum RecordVersion {
    Http10 = 0,
    Http11 = 1,
    Http2 = 2,
    Http3 = 3,
}

/// Kinds of the events of a `wsDrain` batch.
#[napi]
pub enum WsEventKind {
    Text = 0,
    Binary = 1,
    /// The connection is over; the data is the close code (u16) then the reason.
    Close = 2,
    /// Queued outbound bytes fell back under the high-water mark.
    Drain = 3,
}

/// Byte offsets in one event of a `wsDrain` batch (`httpy_core::encode_ws_events`).
#[napi]
pub enum WsEventAt {
    /// u8: a `WsEventKind`.
    Kind = 0,
    /// u32: the connection's id (the id of its upgrade request).
    Id = 1,
    /// u32: payload length.
    Length = 5,
    /// u8: a `Placement`.
    Placement = 9,
    /// The inline payload, or a u32 index into the batch's external buffers.
    Data = 10,
}

/// Byte offsets in one message of a `wsSendBatch` buffer, from the
/// message's start: `u8 kind | u32 connection id | u32 length | payload`.
#[napi]
pub enum WsSendAt {
    /// u8: `WsEventKind.Text` or `WsEventKind.Binary`.
    Kind = 0,
    /// u32: the connection's id.
    Id = 1,
    /// u32: payload length.
    Length = 5,
    /// The payload (UTF-8 for text).
    Data = 9,
}

/// What `NativeStream.write` did with a chunk.
#[napi]
pub enum WriteResult {
    /// Taken.
    Accepted = 0,
    /// Not taken, the buffer is full: write it again after `onWritable`.
    Full = 1,
    /// The client is gone.
    Closed = 2,
}

/// What a WebSocket send (`wsSendText`, `wsSendBinary`, `wsPing`) did.
#[napi]
pub enum SendResult {
    Queued = 0,
    /// Queued above the high-water mark: a `Drain` event follows.
    Backpressure = 1,
    /// The connection is closed; nothing was queued.
    Closed = 2,
}

/// The WebSocket `compression` option (`NativeWsOptions.compression`).
#[napi]
pub enum WsCompressionMode {
    Off = 0,
    /// permessage-deflate, each message compressed on its own.
    Shared = 1,
    /// permessage-deflate with a compressor per connection.
    Dedicated = 2,
}

// The core's own numbering of what it encodes must match the contract.
const _: () = {
    use httpy_core::Version as V;
    assert!(V::Http10 as u8 == RecordVersion::Http10 as u8);
    assert!(V::Http11 as u8 == RecordVersion::Http11 as u8);
    assert!(V::Http2 as u8 == RecordVersion::Http2 as u8);
    assert!(V::Http3 as u8 == RecordVersion::Http3 as u8);
    use httpy_core::WsEventKind as K;
    assert!(K::Text as u8 == WsEventKind::Text as u8);
    assert!(K::Binary as u8 == WsEventKind::Binary as u8);
    assert!(K::Close as u8 == WsEventKind::Close as u8);
    assert!(K::Drain as u8 == WsEventKind::Drain as u8);
    use httpy_core::multipart as M;
    assert!(M::FRAME_HEAD == PartFrame::Head as u8);
    assert!(M::FRAME_DATA == PartFrame::Data as u8);
    assert!(M::FRAME_END == PartFrame::End as u8);
    assert!(httpy_core::record::FLAG_URL == RecordFlag::Url as u8);
};
