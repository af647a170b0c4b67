//! permessage-deflate (RFC 7692), the negotiation and the sending half.
//!
//! tungstenite has no extension support, so compression sits beside it:
//! this file picks the client's first acceptable offer and answers it, and
//! turns an outgoing text or binary message into one frame with RSV1 set
//! and a deflated payload, which tungstenite then writes as it is
//! (`Message::Frame`). The receiving half is `inflate.rs`, which rewrites
//! compressed frames into plain ones before tungstenite parses them.
//!
//! Two ways to hold the compressor, as the `compression` option says:
//! - `Shared`: every message is compressed on its own (we answer with
//!   `server_no_context_takeover` and ask the client for
//!   `client_no_context_takeover`), with a compressor borrowed from the
//!   I/O thread for the length of one call; an idle socket holds no zlib
//!   state at all, and a message published to a topic is compressed once
//!   for all its subscribers ([`Packed`]).
//! - `Dedicated`: each connection keeps its own compressor and
//!   decompressor with their history (context takeover, unless the client
//!   asked otherwise): better ratios on repetitive traffic, about 300 KB
//!   of zlib state per connection.
//!
//! The compressor is zlib-ng, the C library (`zng.rs`): on the shared
//! compressor's work (a reset and one sync-flushed deflate per short
//! message) it spent about 1 µs less per 1 KB message than zlib-rs at
//! level 6 in the end-to-end echo, for the same bytes (docs/websocket.md,
//! *The deflate engine*). Inflating stays on `flate2` with zlib-rs, which
//! was the faster of the two there.

use super::fault::{deflate_fault, Fault};
use super::zng::Deflate;
use bytes::{Bytes, BytesMut};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// How a route compresses (the `compression` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WsCompression {
    /// permessage-deflate is not offered.
    Off,
    /// Stateless per message; no zlib memory held by idle sockets.
    #[default]
    Shared,
    /// A compressor and decompressor per connection, with context takeover.
    Dedicated,
}

/// The `compressionLevel` default, zlib's scale (1 fastest, 9 smallest).
/// Level 1 is zlib-ng's "quick" strategy (static Huffman codes): on 1 KB
/// JSON it sends ~19% more bytes than level 6, but levels 2 and up build
/// dynamic codes, which cost about 6 µs more server CPU per message and
/// would put the echo above uWebSockets.js's CPU (docs/websocket.md,
/// *Choosing the level*).
pub const DEFAULT_LEVEL: u8 = 1;

/// zlib's `memLevel` (symbol buffer size, so the longest block), the
/// default 8 for both kinds of compressor: with zlib-ng, 8 was the fastest
/// setting at level 6 on 1 KB messages (docs/websocket.md, the zlib-ng
/// table), where zlib-rs had been faster at 5.
const MEM_LEVEL: u8 = 8;

/// The window every shared compression uses, so one compressed copy of a
/// published message fits every subscriber that did not ask for less.
const FULL_WINDOW: u8 = 15;

/// What was agreed with one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreed {
    /// We keep our compression history between messages.
    pub(crate) server_takeover: bool,
    /// The client keeps its history: our decompressor must too.
    pub(crate) client_takeover: bool,
    /// Largest LZ77 window we may use (8..=15).
    pub(crate) server_bits: u8,
    pub(crate) mode: WsCompression,
}

impl Agreed {
    /// The `Sec-WebSocket-Extensions` value of the `101`.
    pub(crate) fn header(&self) -> String {
        let mut h = String::from("permessage-deflate");
        if !self.server_takeover {
            h.push_str("; server_no_context_takeover");
        }
        if !self.client_takeover {
            h.push_str("; client_no_context_takeover");
        }
        if self.server_bits < FULL_WINDOW {
            h.push_str(&format!("; server_max_window_bits={}", self.server_bits));
        }
        h
    }
}

/// Picks the first `permessage-deflate` offer we can honour from every
/// `Sec-WebSocket-Extensions` header value (RFC 7692 section 5). Offers
/// with unknown, repeated or malformed parameters are declined, as the RFC
/// asks; declining all of them just means no compression.
pub(crate) fn negotiate<'a>(
    values: impl Iterator<Item = &'a str>,
    mode: WsCompression,
) -> Option<Agreed> {
    if mode == WsCompression::Off {
        return None;
    }
    values
        .flat_map(|v| v.split(','))
        .find_map(|offer| accept_offer(offer, mode))
}

fn accept_offer(offer: &str, mode: WsCompression) -> Option<Agreed> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let shared = mode == WsCompression::Shared;
    let mut agreed = Agreed {
        server_takeover: !shared,
        client_takeover: !shared,
        server_bits: FULL_WINDOW,
        mode,
    };
    let mut seen = [false; 4];
    for p in parts {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (p, None),
        };
        let (slot, ok) = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => {
                agreed.server_takeover = false;
                (0, value.is_none())
            }
            "client_no_context_takeover" => {
                agreed.client_takeover = false;
                (1, value.is_none())
            }
            "server_max_window_bits" => match value.and_then(window_bits) {
                Some(b) => {
                    agreed.server_bits = b;
                    (2, true)
                }
                None => (2, false),
            },
            // We never limit the client's window (our inflater takes any),
            // so the parameter is accepted and left out of the answer.
            "client_max_window_bits" => (3, value.is_none_or(|v| window_bits(v).is_some())),
            _ => return None,
        };
        if !ok || std::mem::replace(&mut seen[slot], true) {
            return None;
        }
    }
    Some(agreed)
}

/// A window size parameter: 8 to 15, decimal, no leading zero.
fn window_bits(v: &str) -> Option<u8> {
    if v.starts_with('0') {
        return None;
    }
    v.parse::<u8>().ok().filter(|b| (8..=15).contains(b))
}

/// A published message's compressed payload, made by the first subscriber
/// writer that needs it and reused by the others (shared mode, full
/// window), with the level it was made at: a subscriber of a route with
/// another `compressionLevel` compresses for itself.
#[derive(Default)]
pub(crate) struct Packed(OnceLock<(u8, Bytes)>);

/// zlib-ng could not build or run a compressor (only out of memory does
/// that; the fault tests stage it, `fault.rs`). The message is not sent:
/// the connection is failed with 1011 instead of sending a cut one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompressFailed;

/// The close code and reason for a [`CompressFailed`].
pub(crate) const COMPRESS_FAILED: (u16, &str) = (1011, "compression failed");

/// Messages deflated in this process, both modes (one per `deflate_into`
/// call that succeeded): what shows that a publish to many subscribers is
/// compressed once (`deflated_messages`). Cost: one relaxed add per
/// compressed message, a few ns against the 1-10 µs of its deflate.
static DEFLATED: AtomicU64 = AtomicU64::new(0);

/// How many messages this process has deflated so far (every route, both
/// compression modes). Read by tests and benchmarks (the `wsDeflateCount`
/// hook): a publish to N subscribers adds 1 in the shared mode, N in the
/// dedicated one.
pub fn deflated_messages() -> u64 {
    DEFLATED.load(Ordering::Relaxed)
}

/// Size of the I/O thread's payload buffer (`ARENA`).
const ARENA_SIZE: usize = 64 * 1024;

thread_local! {
    /// One stateless compressor per I/O thread, window size and level
    /// (zlib's state is ~270 KB; resetting it costs far less than building
    /// it). Routes rarely differ, so this holds one or two.
    static SHARED: RefCell<Vec<(u8, u8, Deflate)>> = const { RefCell::new(Vec::new()) };

    /// Where this I/O thread's compressed payloads are written, each cut
    /// off as a `Bytes` that shares the buffer (`split().freeze()`, a
    /// reference count, no copy). The frame writer copies a payload into
    /// its own buffer and drops it almost at once, so when the buffer's
    /// tail runs out its `reserve` finds it held by nobody else and reuses
    /// it in place: a message costs no allocation and no zero-fill (before:
    /// a zeroed `Vec` per message, the I/O thread's most frequent malloc).
    /// A payload still alive then (one held by a slow socket's queue) only
    /// makes the next 64 KB a fresh allocation. A published message's
    /// payload, which lives as long as its slowest subscriber's queue, is
    /// copied out at its exact size instead, so it pins no 64 KB.
    /// Made at its full size: a `BytesMut` remembers the capacity it was
    /// created with and, when it must replace a buffer still shared, makes
    /// the new one that large; one grown from empty would replace it with a
    /// buffer for one payload, an allocation per message.
    static ARENA: RefCell<BytesMut> = RefCell::new(BytesMut::with_capacity(ARENA_SIZE));
}

/// The compressing state of one connection.
pub(crate) struct Deflater {
    agreed: Agreed,
    threshold: usize,
    level: u8,
    /// Dedicated mode: this connection's compressor, built on first use.
    own: Option<Box<Deflate>>,
}

impl Deflater {
    /// `level` is zlib's 1 to 9 (validated by the embedder; clamped here).
    pub(crate) fn new(agreed: Agreed, threshold: usize, level: u8) -> Self {
        Self {
            agreed,
            threshold,
            level: level.clamp(1, 9),
            own: None,
        }
    }

    /// The message as it should go on the wire: a frame with RSV1 and a
    /// deflated payload, or the message unchanged (control frames, short
    /// messages). An error means nothing may be sent for it: the caller
    /// fails the connection ([`COMPRESS_FAILED`]).
    pub(crate) fn pack(
        &mut self,
        msg: Message,
        packed: Option<&Packed>,
    ) -> Result<Message, CompressFailed> {
        let (data, op): (&[u8], Data) = match &msg {
            Message::Text(t) => (t.as_bytes(), Data::Text),
            Message::Binary(b) => (b, Data::Binary),
            _ => return Ok(msg),
        };
        if data.len() < self.threshold {
            return Ok(msg);
        }
        let fault = deflate_fault(data);
        // Every message over the threshold goes out compressed, even one
        // that did not shrink (random or already compressed data grows by a
        // few bytes per 16 KB): the RFC lets a sender mix in plain ones, but
        // some clients mishandle them (the Autobahn runner in CI does).
        let (bits, level) = (self.agreed.server_bits, self.level);
        let payload = if self.agreed.server_takeover {
            let c = match &mut self.own {
                Some(c) if fault != Some(Fault::Init) => c,
                own => own.insert(Box::new(new_compress(bits, level, fault)?)),
            };
            ARENA.with(|a| {
                let mut a = a.borrow_mut();
                deflate_into(c, data, &mut a, fault)?;
                Ok(a.split().freeze())
            })?
        } else {
            match packed.filter(|_| bits == FULL_WINDOW) {
                Some(p) => match p.0.get() {
                    Some((l, made)) if *l == level => made.clone(),
                    Some(_) => shared_deflate(bits, level, data, fault, false)?,
                    None => {
                        let made = shared_deflate(bits, level, data, fault, true)?;
                        // Another I/O thread may have made it meanwhile:
                        // the same bytes, either copy will do.
                        let _ = p.0.set((level, made.clone()));
                        made
                    }
                },
                None => shared_deflate(bits, level, data, fault, false)?,
            }
        };
        let mut f = Frame::message(payload, OpCode::Data(op), true);
        f.header_mut().rsv1 = true;
        Ok(Message::Frame(f))
    }
}

/// zlib's deflate has no 256-byte window (`server_max_window_bits=8`): for
/// it, level 0 with a 512-byte window writes stored blocks only, which have
/// no back-references and so are valid whatever window the client keeps.
fn new_compress(bits: u8, level: u8, fault: Option<Fault>) -> Result<Deflate, CompressFailed> {
    if fault == Some(Fault::Init) {
        return Deflate::new_refused().map_err(|_| CompressFailed);
    }
    let (level, bits) = if bits < 9 { (0, 9) } else { (level, bits) };
    Deflate::new(level, bits, MEM_LEVEL).map_err(|_| CompressFailed)
}

/// Compresses one message with no history; `exact` copies the payload out
/// of the arena at its own size (for one that may be held long).
fn shared_deflate(
    bits: u8,
    level: u8,
    data: &[u8],
    fault: Option<Fault>,
    exact: bool,
) -> Result<Bytes, CompressFailed> {
    SHARED.with(|cell| {
        let mut pool = cell.borrow_mut();
        let found = pool
            .iter()
            .position(|(b, l, _)| (*b, *l) == (bits, level))
            .filter(|_| fault != Some(Fault::Init));
        let at = match found {
            Some(i) => i,
            None => {
                pool.push((bits, level, new_compress(bits, level, fault)?));
                pool.len() - 1
            }
        };
        let c = &mut pool[at].2;
        c.reset();
        ARENA.with(|a| {
            let mut a = a.borrow_mut();
            deflate_into(c, data, &mut a, fault)?;
            Ok(if exact {
                let made = Bytes::copy_from_slice(&a);
                a.clear();
                made
            } else {
                a.split().freeze()
            })
        })
    })
}

/// Deflates `data` with a sync flush onto the end of `out` and drops the
/// flush's trailing `00 00 ff ff`, as RFC 7692 section 7.2.1 says. On an
/// error `out` is left as it was: no part of the message survives.
fn deflate_into(
    c: &mut Deflate,
    data: &[u8],
    out: &mut BytesMut,
    fault: Option<Fault>,
) -> Result<(), CompressFailed> {
    let start = out.len();
    let start_in = c.total_in();
    // Room for the usual ratio (a no-op while the arena's tail has it);
    // doubled while the output fills what it was given.
    let mut room = data.len() / 2 + 64;
    let mut calls = 0;
    loop {
        out.reserve(room);
        let done = (c.total_in() - start_in) as usize;
        let spare = out.spare_capacity_mut();
        // The midway fault's first call gets too little room for the
        // message, so that a second call (the one that fails) follows.
        let midway = fault == Some(Fault::Midway);
        let given = if midway && calls == 0 { 8 } else { spare.len() };
        let before = c.total_out();
        let ok = c.sync_flush(&data[done..], &mut spare[..given], midway && calls > 0);
        let wrote = (c.total_out() - before) as usize;
        // SAFETY: zlib-ng wrote exactly `wrote` bytes (what total_out
        // counts) at the start of the spare capacity it was given.
        unsafe { out.set_len(out.len() + wrote) };
        calls += 1;
        if !ok {
            out.truncate(start);
            return Err(CompressFailed);
        }
        let all_in = (c.total_in() - start_in) as usize == data.len();
        if all_in && wrote < given {
            break;
        }
        room *= 2;
    }
    if out[start..].ends_with(&[0, 0, 0xff, 0xff]) {
        out.truncate(out.len() - 4);
    }
    DEFLATED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    fn offer(s: &str, mode: WsCompression) -> Option<String> {
        negotiate(std::iter::once(s), mode).map(|a| a.header())
    }

    #[test]
    fn negotiation_follows_rfc7692() {
        use WsCompression::*;
        assert_eq!(
            offer("permessage-deflate; client_max_window_bits", Shared).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        assert_eq!(
            offer("permessage-deflate", Dedicated).as_deref(),
            Some("permessage-deflate")
        );
        assert_eq!(
            offer(
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
                Dedicated
            )
            .as_deref(),
            Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=10")
        );
        assert_eq!(offer("permessage-deflate", Off), None);
        // Bad or unknown parameters decline the offer; the next one is taken.
        assert_eq!(
            offer("permessage-deflate; server_max_window_bits=7", Shared),
            None
        );
        assert_eq!(
            offer("permessage-deflate; server_max_window_bits=010", Shared),
            None
        );
        assert_eq!(
            offer("permessage-deflate; server_max_window_bits", Shared),
            None
        );
        assert_eq!(offer("permessage-deflate; foo", Shared), None);
        assert_eq!(
            offer(
                "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                Shared
            ),
            None
        );
        assert_eq!(
            offer("x-webkit-deflate-frame, permessage-deflate; foo, permessage-deflate; server_max_window_bits=\"12\"", Dedicated)
                .as_deref(),
            Some("permessage-deflate; server_max_window_bits=12")
        );
    }

    fn inflate(data: &[u8]) -> Vec<u8> {
        let mut d = Decompress::new(false);
        let mut input = data.to_vec();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(1 << 20);
        d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .unwrap();
        out
    }

    #[test]
    fn compressed_messages_round_trip_and_publish_compresses_once() {
        let agreed =
            negotiate(std::iter::once("permessage-deflate"), WsCompression::Shared).unwrap();
        let json = r#"{"user":"ann","text":"hello","ts":1700000000}"#.repeat(30);
        let packed = Packed::default();
        let mut a = Deflater::new(agreed, 64, DEFAULT_LEVEL);
        let mut b = Deflater::new(agreed, 64, DEFAULT_LEVEL);
        let (Message::Frame(fa), Message::Frame(fb)) = (
            a.pack(Message::Text(json.clone().into()), Some(&packed))
                .unwrap(),
            b.pack(Message::Text(json.clone().into()), Some(&packed))
                .unwrap(),
        ) else {
            panic!("a long JSON text is compressed")
        };
        assert!(fa.header().rsv1 && fa.payload().len() < json.len() / 5);
        assert_eq!(inflate(fa.payload()), json.as_bytes());
        // Both subscribers send the very same bytes, made once.
        assert_eq!(fa.payload().as_ptr(), fb.payload().as_ptr());
        // A subscriber at another level compresses for itself.
        let Message::Frame(f9) = Deflater::new(agreed, 64, 9)
            .pack(Message::Text(json.clone().into()), Some(&packed))
            .unwrap()
        else {
            panic!("a long JSON text is compressed")
        };
        assert_ne!(f9.payload().as_ptr(), fa.payload().as_ptr());
        assert_eq!(inflate(f9.payload()), json.as_bytes());
        // A client that asked for an 8-bit window gets stored blocks only
        // (BTYPE 00), which decode with any window.
        let tiny = negotiate(
            std::iter::once("permessage-deflate; server_max_window_bits=8"),
            WsCompression::Dedicated,
        )
        .unwrap();
        let Message::Frame(f) = Deflater::new(tiny, 0, DEFAULT_LEVEL)
            .pack(Message::Text(json.clone().into()), None)
            .unwrap()
        else {
            panic!("compressed frame expected")
        };
        assert_eq!(f.payload()[0] & 0b110, 0, "stored block");
        assert_eq!(inflate(f.payload()), json.as_bytes());
        // A large message spans several deflate blocks and still
        // round-trips.
        let big: String = (0..3000)
            .map(|i| format!(r#"{{"id":{i},"v":{}}},"#, i * 7919 % 10007))
            .collect();
        let Message::Frame(fb) = Deflater::new(agreed, 64, 6)
            .pack(Message::Text(big.clone().into()), None)
            .unwrap()
        else {
            panic!("a long JSON text is compressed")
        };
        assert!(fb.payload().len() < big.len() / 2);
        assert_eq!(inflate(fb.payload()), big.as_bytes());
        // Short messages go out as they are.
        assert!(matches!(
            a.pack(Message::Text("hi".into()), None).unwrap(),
            Message::Text(_)
        ));
        // Dedicated: history carries over, so a repeat costs a few bytes.
        let ded = negotiate(
            std::iter::once("permessage-deflate"),
            WsCompression::Dedicated,
        )
        .unwrap();
        let mut d = Deflater::new(ded, 0, DEFAULT_LEVEL);
        let varied: String = (0..40)
            .map(|i| {
                format!(
                    r#"{{"user":"u{i}","seq":{},"text":"item {}"}}"#,
                    i * 7919,
                    i * 31
                )
            })
            .collect();
        let first = d
            .pack(Message::Binary(Bytes::from(varied.clone())), None)
            .unwrap();
        let second = d.pack(Message::Binary(Bytes::from(varied)), None).unwrap();
        assert!(
            second.len() < first.len() / 4,
            "{} vs {}",
            second.len(),
            first.len()
        );
    }

    #[test]
    fn a_failed_compressor_leaves_nothing_behind() {
        // deflateInit2 refusing is an error, not a panic.
        assert!(Deflate::new_refused().is_err());
        assert!(new_compress(15, 6, Some(Fault::Init)).is_err());
        // A deflate failing after its first call leaves the output as it
        // was: no half message.
        let data = r#"{"user":"ann","text":"hello"}"#.repeat(40);
        let mut c = new_compress(15, 6, None).unwrap();
        let mut out = BytesMut::from(&b"kept"[..]);
        assert_eq!(
            deflate_into(&mut c, data.as_bytes(), &mut out, Some(Fault::Midway)),
            Err(CompressFailed)
        );
        assert_eq!(&out[..], b"kept");
        // The same compressor, reset, works again.
        c.reset();
        deflate_into(&mut c, data.as_bytes(), &mut out, None).unwrap();
        assert_eq!(inflate(&out[4..]), data.as_bytes());
    }

    #[test]
    fn arena_payloads_stay_intact_while_the_arena_is_reused() {
        let agreed =
            negotiate(std::iter::once("permessage-deflate"), WsCompression::Shared).unwrap();
        let doc =
            |i: usize| format!(r#"{{"user":"u{i}","text":"hello","ts":{}}}"#, i * 7919).repeat(20);
        let mut d = Deflater::new(agreed, 64, DEFAULT_LEVEL);
        let pack = |d: &mut Deflater, i: usize| match d.pack(Message::Text(doc(i).into()), None) {
            Ok(Message::Frame(f)) => f,
            _ => panic!("a long JSON text is compressed"),
        };
        // One payload held across several arenas' worth of messages (a
        // slow socket's), the others dropped at once: the arena is
        // replaced, then reused, and no payload is written over.
        let held = pack(&mut d, 0);
        let mut next_at = held.payload().as_ptr_range().end;
        let mut fresh = 0;
        for i in 1..(4 * ARENA_SIZE / 100) {
            let f = pack(&mut d, i);
            assert_eq!(inflate(f.payload()), doc(i).as_bytes());
            // Payloads follow each other in the buffer; a new buffer is
            // only taken when one is full (not per message).
            let r = f.payload().as_ptr_range();
            fresh += usize::from(r.start != next_at);
            next_at = r.end;
        }
        assert!((1..=6).contains(&fresh), "{fresh} new buffers");
        assert_eq!(inflate(held.payload()), doc(0).as_bytes());
    }
}
