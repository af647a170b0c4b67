//! The bytes that cross between processes: the frames of the local links
//! between workers, and the payload of a Redis message. Both carry whether
//! the message is text or binary, so a subscriber anywhere receives the
//! same WebSocket message type the publisher sent.
//!
//! Local frame: `u32 length (LE, of what follows) | u8 tag | u16 topic
//! length (LE) | topic | body`, where the body is the message (text,
//! binary), a `u32` subscriber count (count), the sender's Prometheus text
//! (metrics, empty topic) or nothing (hello: the topic field is then the
//! sender's name).
//!
//! Redis payload: `u8 tag | 16 bytes origin | message`.

use bytes::{BufMut, Bytes, BytesMut};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tokio_tungstenite::tungstenite::Message;

pub(crate) const TAG_HELLO: u8 = 0;
pub(crate) const TAG_TEXT: u8 = 1;
pub(crate) const TAG_BINARY: u8 = 2;
pub(crate) const TAG_COUNT: u8 = 3;
pub(crate) const TAG_METRICS: u8 = 4;

/// Largest frame a link accepts: a WebSocket message is capped at 16 MiB by
/// default and the user may raise it; past this the peer is not one of ours.
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// Whether a published message is text or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Binary,
}

impl Kind {
    /// The kind and payload of a message the hub published (pings and
    /// closes are never published).
    pub(crate) fn of(msg: &Message) -> Option<(Kind, Bytes)> {
        match msg {
            Message::Text(t) => Some((Kind::Text, AsRef::<Bytes>::as_ref(t).clone())),
            Message::Binary(b) => Some((Kind::Binary, b.clone())),
            _ => None,
        }
    }

    pub(crate) fn tag(self) -> u8 {
        match self {
            Kind::Text => TAG_TEXT,
            Kind::Binary => TAG_BINARY,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Kind> {
        match tag {
            TAG_TEXT => Some(Kind::Text),
            TAG_BINARY => Some(Kind::Binary),
            _ => None,
        }
    }

    /// The WebSocket message to fan out; `None` for text that is not UTF-8
    /// (never from one of ours: the check costs one pass over the bytes).
    pub(crate) fn message(self, payload: Bytes) -> Option<Message> {
        match self {
            Kind::Text => Utf8Bytes::try_from(payload).ok().map(Message::Text),
            Kind::Binary => Some(Message::Binary(payload)),
        }
    }
}

/// A local frame with the given tag, topic and body.
pub(crate) fn frame(tag: u8, topic: &str, body: &[u8]) -> Bytes {
    let len = 1 + 2 + topic.len() + body.len();
    let mut b = BytesMut::with_capacity(4 + len);
    b.put_u32_le(len as u32);
    b.put_u8(tag);
    b.put_u16_le(topic.len() as u16);
    b.put_slice(topic.as_bytes());
    b.put_slice(body);
    b.freeze()
}

/// Splits a local frame (without its length prefix) into tag, topic, body.
pub(crate) fn parse(mut f: Bytes) -> Option<(u8, String, Bytes)> {
    if f.len() < 3 {
        return None;
    }
    let tag = f[0];
    let tlen = u16::from_le_bytes([f[1], f[2]]) as usize;
    if f.len() < 3 + tlen {
        return None;
    }
    let topic = std::str::from_utf8(&f[3..3 + tlen]).ok()?.to_owned();
    let body = f.split_off(3 + tlen);
    Some((tag, topic, body))
}

/// Bytes before the message in a Redis payload: tag and origin.
pub(crate) const REDIS_HEADER: usize = 17;

/// A Redis payload.
pub(crate) fn redis_payload(kind: Kind, origin: &[u8; 16], msg: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(17 + msg.len());
    v.push(kind.tag());
    v.extend_from_slice(origin);
    v.extend_from_slice(msg);
    v
}

/// Splits a Redis payload into kind, origin and message.
pub(crate) fn parse_redis(p: &[u8]) -> Option<(Kind, &[u8], &[u8])> {
    if p.len() < REDIS_HEADER {
        return None;
    }
    Some((
        Kind::from_tag(p[0])?,
        &p[1..REDIS_HEADER],
        &p[REDIS_HEADER..],
    ))
}

/// An identity for this process's messages: the pid, the clock and a
/// per-process counter, enough to tell the processes sharing one Redis apart.
pub(crate) fn origin() -> [u8; 16] {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut o = [0u8; 16];
    o[..4].copy_from_slice(&std::process::id().to_le_bytes());
    o[4..12].copy_from_slice(&nanos.to_le_bytes());
    o[12..].copy_from_slice(&SEQ.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_payloads_round_trip() {
        let f = frame(TAG_TEXT, "room", b"hello");
        assert_eq!(
            u32::from_le_bytes([f[0], f[1], f[2], f[3]]) as usize,
            f.len() - 4
        );
        let (tag, topic, body) = parse(f.slice(4..)).unwrap();
        assert_eq!(
            (tag, topic.as_str(), &body[..]),
            (TAG_TEXT, "room", &b"hello"[..])
        );
        assert!(parse(Bytes::from_static(&[1, 9, 0, b'x'])).is_none());
        let o = origin();
        assert_ne!(o, origin());
        let p = redis_payload(Kind::Binary, &o, &[0, 255]);
        assert_eq!(
            parse_redis(&p),
            Some((Kind::Binary, &o[..], &[0u8, 255][..]))
        );
        assert!(parse_redis(&[9; 20]).is_none());
        assert!(Kind::Text.message(Bytes::from_static(&[0xff])).is_none());
    }
}
