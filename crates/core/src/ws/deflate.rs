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

use super::zng::Deflate;
use bytes::Bytes;
use std::cell::RefCell;
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

thread_local! {
    /// One stateless compressor per I/O thread, window size and level
    /// (zlib's state is ~270 KB; resetting it costs far less than building
    /// it). Routes rarely differ, so this holds one or two.
    static SHARED: RefCell<Vec<(u8, u8, Deflate)>> = const { RefCell::new(Vec::new()) };
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
    /// messages, or data that did not shrink).
    pub(crate) fn pack(&mut self, msg: Message, packed: Option<&Packed>) -> Message {
        let (data, op): (&[u8], Data) = match &msg {
            Message::Text(t) => (t.as_bytes(), Data::Text),
            Message::Binary(b) => (b, Data::Binary),
            _ => return msg,
        };
        if data.len() < self.threshold {
            return msg;
        }
        // Every message over the threshold goes out compressed, even one
        // that did not shrink (random or already compressed data grows by a
        // few bytes per 16 KB): the RFC lets a sender mix in plain ones, but
        // some clients mishandle them (the Autobahn runner in CI does).
        let (bits, level) = (self.agreed.server_bits, self.level);
        let payload = if self.agreed.server_takeover {
            let c = self
                .own
                .get_or_insert_with(|| Box::new(new_compress(bits, level)));
            deflate(c, data)
        } else {
            match packed.filter(|_| bits == FULL_WINDOW) {
                Some(p) => match p
                    .0
                    .get_or_init(|| (level, shared_deflate(bits, level, data)))
                {
                    (l, made) if *l == level => made.clone(),
                    _ => shared_deflate(bits, level, data),
                },
                None => shared_deflate(bits, level, data),
            }
        };
        let mut f = Frame::message(payload, OpCode::Data(op), true);
        f.header_mut().rsv1 = true;
        Message::Frame(f)
    }
}

/// zlib's deflate has no 256-byte window (`server_max_window_bits=8`): for
/// it, level 0 with a 512-byte window writes stored blocks only, which have
/// no back-references and so are valid whatever window the client keeps.
fn new_compress(bits: u8, level: u8) -> Deflate {
    let (level, bits) = if bits < 9 { (0, 9) } else { (level, bits) };
    Deflate::new(level, bits, MEM_LEVEL)
}

/// Compresses one message with no history.
fn shared_deflate(bits: u8, level: u8, data: &[u8]) -> Bytes {
    SHARED.with(|cell| {
        let mut pool = cell.borrow_mut();
        let at = match pool.iter().position(|(b, l, _)| (*b, *l) == (bits, level)) {
            Some(i) => i,
            None => {
                pool.push((bits, level, new_compress(bits, level)));
                pool.len() - 1
            }
        };
        let c = &mut pool[at].2;
        c.reset();
        deflate(c, data)
    })
}

/// Deflates `data` with a sync flush and drops the flush's trailing
/// `00 00 ff ff`, as RFC 7692 section 7.2.1 says.
fn deflate(c: &mut Deflate, data: &[u8]) -> Bytes {
    // Room for the usual ratio; doubled while the output fills it. Zeroing
    // it costs a few ns per KB, next to microseconds of deflating.
    let mut out = vec![0u8; data.len() / 2 + 64];
    let (start_in, start_out) = (c.total_in(), c.total_out());
    let mut written = 0;
    loop {
        let done = (c.total_in() - start_in) as usize;
        // Errors cannot happen with a valid state and a sync flush (a
        // failed call ends the loop); a short call is retried with more
        // room below.
        let ok = c.sync_flush(&data[done..], &mut out[written..]);
        written = (c.total_out() - start_out) as usize;
        let all_in = (c.total_in() - start_in) as usize == data.len();
        if all_in && written < out.len() || !ok {
            break;
        }
        if written == out.len() {
            out.resize(out.len() * 2, 0);
        }
    }
    out.truncate(written);
    if out.ends_with(&[0, 0, 0xff, 0xff]) {
        out.truncate(out.len() - 4);
    }
    Bytes::from(out)
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
            a.pack(Message::Text(json.clone().into()), Some(&packed)),
            b.pack(Message::Text(json.clone().into()), Some(&packed)),
        ) else {
            panic!("a long JSON text is compressed")
        };
        assert!(fa.header().rsv1 && fa.payload().len() < json.len() / 5);
        assert_eq!(inflate(fa.payload()), json.as_bytes());
        // Both subscribers send the very same bytes, made once.
        assert_eq!(fa.payload().as_ptr(), fb.payload().as_ptr());
        // A subscriber at another level compresses for itself.
        let Message::Frame(f9) =
            Deflater::new(agreed, 64, 9).pack(Message::Text(json.clone().into()), Some(&packed))
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
        let Message::Frame(f) =
            Deflater::new(tiny, 0, DEFAULT_LEVEL).pack(Message::Text(json.clone().into()), None)
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
        let Message::Frame(fb) =
            Deflater::new(agreed, 64, 6).pack(Message::Text(big.clone().into()), None)
        else {
            panic!("a long JSON text is compressed")
        };
        assert!(fb.payload().len() < big.len() / 2);
        assert_eq!(inflate(fb.payload()), big.as_bytes());
        // Short messages go out as they are.
        assert!(matches!(
            a.pack(Message::Text("hi".into()), None),
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
        let first = d.pack(Message::Binary(Bytes::from(varied.clone())), None);
        let second = d.pack(Message::Binary(Bytes::from(varied)), None);
        assert!(
            second.len() < first.len() / 4,
            "{} vs {}",
            second.len(),
            first.len()
        );
    }
}
