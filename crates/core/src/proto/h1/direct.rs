//! The own driver's part in writing answers straight into the socket from
//! the code that delivers them (the slot and the write are in
//! `embedder::direct`): which connections take part (plain TCP, and TLS
//! over TCP through its shared session, unless `HTTPY_DELIVERY_WRITE=0`
//! without `HTTPY_DIRECT_WRITE`) and how an answer
//! is encoded there, with the driver's own head encoder, so that it is byte
//! for byte what the driver would write. Only a small whole answer is
//! taken: a body under 16 KiB, a status of 200-599 that carries a body (no
//! 1xx, 204 or 304: their framing is left to the driver), nothing that
//! closes the connection, no file, stream or push list.

use bytes::BytesMut;
use http::{StatusCode, Version};
use std::cell::RefCell;

use super::encode::{self, ReqFacts};
use crate::embedder::direct::Slot;
use crate::embedder::reply::{Reply, Source};

/// The largest answer (head and body) written from the embedder's thread:
/// the driver's own limit for copying a body behind its head.
const MAX_ANSWER: usize = 16 * 1024;

thread_local! {
    /// The embedder thread's encoding buffer, reused for every answer.
    static OUT: RefCell<BytesMut> = RefCell::new(BytesMut::with_capacity(4096));
}

/// Calls `f` with `reply` encoded as the driver would write it to an
/// HTTP/1.1 keep-alive request; `None` when this path does not take it.
pub(crate) fn with_encoded<R>(reply: &Reply, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    if !takes(reply) {
        return None;
    }
    OUT.with(|out| {
        let mut out = out.borrow_mut();
        out.clear();
        let facts = ReqFacts {
            version: Version::HTTP_11,
            head: false,
            keep_alive: true,
        };
        let body = &reply.body;
        let (framing, keep_alive) = encode::head(
            &mut out,
            &facts,
            reply.status,
            &reply.headers,
            Some(body.len() as u64),
        );
        // `takes` leaves only length-framed keep-alive answers; checked
        // again here so that a body is never written where the driver
        // would not write one.
        if framing != encode::Framing::Length(body.len() as u64) || !keep_alive {
            return None;
        }
        out.extend_from_slice(body);
        (out.len() <= MAX_ANSWER).then(|| f(&out))
    })
}

/// Whether this path takes the reply.
fn takes(reply: &Reply) -> bool {
    matches!(reply.source, Source::Bytes)
        && reply.push.is_empty()
        && reply.status.as_u16() >= 200
        && reply.status != StatusCode::NO_CONTENT
        && reply.status != StatusCode::NOT_MODIFIED
        && reply.body.len() < MAX_ANSWER
        && !encode::asks_close(&reply.headers)
}

/// The slot of a connection that takes part: plain TCP, or TLS over TCP
/// through its shared session.
pub(crate) fn slot_of<T: super::Transport>(io: &T) -> Option<std::sync::Arc<Slot>> {
    if !crate::embedder::direct::enabled() {
        return None;
    }
    let fd = io.raw_fd()?;
    Some(match io.tls() {
        Some(tls) => Slot::with_tls(fd, tls.clone()),
        None => Slot::new(fd),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn reply(body: &[u8], headers: &str) -> Reply {
        Reply::from_parts(200, headers, Bytes::copy_from_slice(body)).unwrap()
    }

    #[test]
    fn a_small_answer_is_encoded_as_the_driver_frames_it() {
        let text = with_encoded(
            &reply(b"hello", "content-type\ntext/plain\ncontent-length\n99"),
            |b| String::from_utf8(b.to_vec()).unwrap(),
        )
        .expect("taken");
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("\r\ncontent-type: text/plain"), "{head}");
        // The length is ours, from the body; a stale one is not kept.
        assert!(head.contains("\r\ncontent-length: 5"), "{head}");
        assert!(!head.contains("99"), "{head}");
        assert!(head.contains("\r\ndate: "), "{head}");
        assert!(!head.contains("connection"), "{head}");
        assert_eq!(body, "hello");
    }

    #[test]
    fn answers_this_path_does_not_take() {
        let taken = |r: &Reply| with_encoded(r, |_| ()).is_some();
        assert!(!taken(&reply(b"bye", "connection\nclose")));
        assert!(!taken(&reply(&vec![0u8; MAX_ANSWER], "")));
        // A body that fits, but not with its head.
        assert!(!taken(&reply(&vec![0u8; MAX_ANSWER - 10], "")));
        assert!(!taken(
            &reply(b"x", "").with_push("/app.js\nscript").unwrap()
        ));
        // Bodiless statuses (and a switch of protocols, the only 1xx a
        // reply can have) are framed by the driver.
        let status = |code: u16| Reply::from_parts(code, "", Bytes::from_static(b"x")).unwrap();
        assert!(!taken(&status(204)));
        assert!(!taken(&status(304)));
        assert!(!taken(&status(101)));
        assert!(taken(&status(404)));
        assert!(taken(&reply(b"ok", "")));
    }
}
