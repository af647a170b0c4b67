//! Writing a response head and settling the body's framing for the own
//! HTTP/1.1 driver: `Content-Length` when the body's size is known, chunked
//! otherwise (close-delimited for HTTP/1.0 clients, which cannot read
//! chunks), none for `HEAD`, 1xx, 204 and 304.
//!
//! The head goes straight from the `HeaderMap` into the connection's write
//! buffer: one pass, no intermediate map or string, and a small body is
//! appended behind it so that the whole response leaves in one write.
//!
//! A stored answer (a route-cache entry) is encoded once into its canned
//! form ([`CANNED`]), so that the driver can answer a keep-alive HTTP/1.1
//! `GET` for it with two copies and the `Date` field (`conn.rs`); the tests
//! below hold that form to the bytes [`head`] writes for the same answer.

use crate::body::canned::{Canned, CannedForm};
use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode, Version};

/// How the body of a response is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body is written (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (HTTP/1.0 with a body of unknown size).
    Close,
}

/// What the request says about its response.
pub(crate) struct ReqFacts {
    pub(crate) version: Version,
    pub(crate) head: bool,
    /// The connection may serve another request after this one.
    pub(crate) keep_alive: bool,
}

impl ReqFacts {
    pub(crate) fn new(version: Version, method: &Method, keep_alive: bool) -> Self {
        Self {
            version,
            head: method == Method::HEAD,
            keep_alive,
        }
    }
}

/// Whether the response's own `Connection` field asks for a close (the
/// dispatcher sets it after 400, 413 and the keep-alive request limit).
pub(crate) fn asks_close(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// Appends the status line and the header fields to `out`; returns the
/// body's framing and whether the connection stays open after it.
/// `exact`: the body's size when known in advance.
pub(crate) fn head(
    out: &mut BytesMut,
    req: &ReqFacts,
    status: StatusCode,
    headers: &HeaderMap,
    exact: Option<u64>,
) -> (Framing, bool) {
    let code = status.as_u16();
    let bodiless = (100..200).contains(&code) || code == 204 || code == 304;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    let framing = if bodiless || req.head {
        Framing::None
    } else if let Some(n) = exact.or(declared) {
        Framing::Length(n)
    } else if req.version == Version::HTTP_11 {
        Framing::Chunked
    } else {
        Framing::Close
    };
    let keep_alive = req.keep_alive && framing != Framing::Close && !asks_close(headers);

    out.extend_from_slice(if req.version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        // Framing is ours to write; a `Content-Length` of a HEAD or 304
        // answer describes the body not sent and is kept.
        let keep = match *name {
            TRANSFER_ENCODING => false,
            CONTENT_LENGTH => framing == Framing::None && !bodiless || code == 304,
            _ => true,
        };
        if keep {
            field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    match framing {
        Framing::Length(n) => {
            let mut digits = itoa_buf();
            field(out, b"content-length", fmt_u64(n, &mut digits));
        }
        Framing::Chunked => field(out, b"transfer-encoding", b"chunked"),
        // A HEAD answer says what a GET would carry.
        Framing::None if req.head && !headers.contains_key(CONTENT_LENGTH) => {
            if let Some(n) = exact.filter(|&n| n > 0) {
                let mut digits = itoa_buf();
                field(out, b"content-length", fmt_u64(n, &mut digits));
            }
        }
        Framing::None | Framing::Close => {}
    }
    if !headers.contains_key(DATE) {
        let date = crate::proto::head::date_now();
        if !date.is_empty() {
            field(out, b"date", date.as_bytes());
        }
    }
    if !keep_alive && !asks_close(headers) {
        field(out, b"connection", b"close");
    } else if keep_alive && req.version == Version::HTTP_10 {
        field(out, b"connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
    (framing, keep_alive)
}

/// Bodies a canned answer may carry: what the driver copies behind a head
/// anyway (a larger body is written from its own buffer, not copied).
pub(crate) const CANNED_MAX: usize = 16 * 1024;

/// The HTTP/1.1 form of stored answers for a keep-alive `GET`.
pub(crate) const CANNED: CannedForm = CannedForm {
    make: canned,
    put: put_canned,
};

/// A whole-body answer's bytes as [`head`] and the driver's body write
/// produce them for a keep-alive HTTP/1.1 `GET`, less the `Date` field;
/// `None` where the general path would frame it otherwise (a status
/// without a body, an answer that asks to close, a body past
/// [`CANNED_MAX`]).
fn canned(status: StatusCode, headers: &HeaderMap, body: &Bytes) -> Option<Canned> {
    let code = status.as_u16();
    if (100..200).contains(&code)
        || code == 204
        || code == 304
        || asks_close(headers)
        || body.len() > CANNED_MAX
    {
        return None;
    }
    let mut out = BytesMut::with_capacity(128 + body.len());
    let req = ReqFacts::new(Version::HTTP_11, &Method::GET, true);
    // The general encoder writes it, so the two cannot drift apart; only
    // the date it appends (the last field) is cut off again.
    let mut fields = headers.clone();
    fields.remove(CONTENT_LENGTH);
    let date = !fields.contains_key(DATE);
    let (framing, keep_alive) = head(&mut out, &req, status, &fields, Some(body.len() as u64));
    if framing != Framing::Length(body.len() as u64) || !keep_alive {
        return None;
    }
    out.truncate(out.len() - 2);
    if date {
        let at = find_last(&out, b"\r\ndate: ")?;
        out.truncate(at + 2);
    }
    let mut tail = BytesMut::with_capacity(2 + body.len());
    tail.extend_from_slice(b"\r\n");
    tail.extend_from_slice(body);
    Some(Canned {
        head: out.freeze(),
        date,
        tail: tail.freeze(),
    })
}

/// Appends a canned answer, with the current `Date` where it needs one.
fn put_canned(c: &Canned, out: &mut BytesMut) {
    // `out` is empty between requests (its buffer back in the pool): take
    // a pooled one, not a few reallocations of a fresh one.
    super::io::reserve(out);
    out.extend_from_slice(&c.head);
    if c.date {
        let date = crate::proto::head::date_now();
        if !date.is_empty() {
            field(out, b"date", date.as_bytes());
        }
    }
    out.extend_from_slice(&c.tail);
}

fn find_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

fn field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// Decimal digits of `n`, without allocating.
fn fmt_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Appends the line that opens a chunk of `len` bytes.
pub(crate) fn chunk_start(out: &mut BytesMut, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 18];
    let mut i = 16;
    let mut n = len;
    loop {
        i -= 1;
        buf[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf[16] = b'\r';
    buf[17] = b'\n';
    out.extend_from_slice(&buf[i..]);
}

pub(crate) const CHUNK_END: &[u8] = b"\r\n";
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn encode(
        req: ReqFacts,
        status: u16,
        fields: &[(&str, &str)],
        exact: Option<u64>,
    ) -> (String, Framing, bool) {
        let mut h = HeaderMap::new();
        for (k, v) in fields {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut out = BytesMut::new();
        let (f, ka) = head(
            &mut out,
            &req,
            StatusCode::from_u16(status).unwrap(),
            &h,
            exact,
        );
        (String::from_utf8(out.to_vec()).unwrap(), f, ka)
    }

    fn get11() -> ReqFacts {
        ReqFacts::new(Version::HTTP_11, &Method::GET, true)
    }

    #[test]
    fn a_known_length_is_written_and_a_stream_is_chunked() {
        let (text, f, ka) = encode(get11(), 200, &[("content-type", "text/plain")], Some(5));
        assert!(
            text.starts_with(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\ndate: "
            ),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\n"));
        assert_eq!((f, ka), (Framing::Length(5), true));
        let (text, f, _) = encode(get11(), 200, &[("transfer-encoding", "chunked")], None);
        assert_eq!(text.matches("transfer-encoding").count(), 1);
        assert_eq!(f, Framing::Chunked);
    }

    #[test]
    fn bodiless_answers_carry_no_framing_of_their_own() {
        let (text, f, _) = encode(get11(), 204, &[("content-length", "0")], Some(0));
        assert!(!text.contains("content-length"), "{text}");
        assert_eq!(f, Framing::None);
        let head = ReqFacts::new(Version::HTTP_11, &Method::HEAD, true);
        let (text, f, _) = encode(head, 200, &[], Some(12));
        assert!(text.contains("content-length: 12\r\n"), "{text}");
        assert_eq!(f, Framing::None);
        let (text, _, _) = encode(get11(), 304, &[("content-length", "7")], None);
        assert!(text.contains("content-length: 7\r\n"), "{text}");
    }

    #[test]
    fn http10_gets_its_version_and_a_close_when_the_length_is_unknown() {
        let old = ReqFacts::new(Version::HTTP_10, &Method::GET, true);
        let (text, f, ka) = encode(old, 200, &[], None);
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(text.contains("connection: close\r\n"));
        assert_eq!((f, ka), (Framing::Close, false));
        let old = ReqFacts::new(Version::HTTP_10, &Method::GET, true);
        let (text, _, ka) = encode(old, 200, &[], Some(1));
        assert!(text.contains("connection: keep-alive\r\n") && ka);
    }

    #[test]
    fn a_close_asked_by_the_response_is_kept_once() {
        let (text, _, ka) = encode(get11(), 400, &[("connection", "close")], Some(0));
        assert_eq!(text.matches("connection: close").count(), 1);
        assert!(!ka);
    }

    #[test]
    fn numbers_are_written_without_allocating() {
        let mut b = itoa_buf();
        assert_eq!(fmt_u64(0, &mut b), b"0");
        assert_eq!(fmt_u64(u64::MAX, &mut b), u64::MAX.to_string().as_bytes());
        let mut out = BytesMut::new();
        chunk_start(&mut out, 0x1a2b);
        chunk_start(&mut out, 0);
        assert_eq!(&out[..], b"1a2b\r\n0\r\n");
    }

    /// The general path's bytes for a whole-body answer to a keep-alive
    /// HTTP/1.1 GET: the head, then the body copied behind it.
    fn general(headers: &HeaderMap, body: &Bytes) -> Vec<u8> {
        let mut h = headers.clone();
        h.remove(CONTENT_LENGTH);
        let mut out = BytesMut::new();
        head(
            &mut out,
            &get11(),
            StatusCode::OK,
            &h,
            Some(body.len() as u64),
        );
        out.extend_from_slice(body);
        out.to_vec()
    }

    fn canned_bytes(headers: &HeaderMap, body: &Bytes) -> Option<Vec<u8>> {
        let c = (CANNED.make)(StatusCode::OK, headers, body)?;
        let mut out = BytesMut::new();
        (CANNED.put)(&c, &mut out);
        Some(out.to_vec())
    }

    fn map(fields: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in fields {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_canned_answer_is_the_general_encoders_bytes() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("content-type", "text/plain")], "Hello, World!"),
            (&[], ""),
            (
                &[
                    ("content-type", "a"),
                    ("content-length", "99"),
                    ("x-a", "1"),
                    ("x-a", "2"),
                ],
                "body",
            ),
            (
                &[("date", "Thu, 01 Jan 1970 00:00:00 GMT"), ("etag", "\"e\"")],
                "x",
            ),
            (
                &[("transfer-encoding", "chunked"), ("vary", "accept")],
                "abc",
            ),
        ];
        for (fields, body) in cases {
            let (h, b) = (map(fields), Bytes::from(body.to_string()));
            // Both within one second, so that they carry the same date.
            let (a, c) = loop {
                let a = general(&h, &b);
                let c = canned_bytes(&h, &b).expect("cannable");
                if general(&h, &b) == a {
                    break (a, c);
                }
            };
            assert_eq!(
                String::from_utf8_lossy(&c),
                String::from_utf8_lossy(&a),
                "{fields:?}"
            );
        }
    }

    #[test]
    fn answers_framed_otherwise_are_not_canned() {
        let b = Bytes::from_static(b"x");
        assert!(canned_bytes(&map(&[("connection", "close")]), &b).is_none());
        assert!(canned(StatusCode::NO_CONTENT, &map(&[]), &Bytes::new()).is_none());
        assert!(canned(StatusCode::NOT_MODIFIED, &map(&[]), &Bytes::new()).is_none());
        let big = Bytes::from(vec![b'a'; CANNED_MAX + 1]);
        assert!(canned_bytes(&map(&[]), &big).is_none());
        assert!(canned_bytes(&map(&[]), &Bytes::from(vec![b'a'; CANNED_MAX])).is_some());
    }
}
