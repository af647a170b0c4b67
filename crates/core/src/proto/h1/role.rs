//! The server's side of HTTP/1.x messages for the own driver: parsing a
//! request head with `httparse` (the parser hyper itself uses) into
//! `http` types, and settling what the head says about framing and
//! keep-alive. Encoding the response is in `encode.rs`.
//!
//! The head is frozen out of the read buffer once and the URI and header
//! values are slices of it (no copy); header names are interned by `http`
//! for the standard ones and copied for the others, as hyper does.
//!
//! Before any of that, a plain keep-alive `GET` is offered to the caller's
//! `stored` closure with its path and query only: a route-cache hit is then
//! answered without a `HeaderMap` being built. It is offered only where the
//! full parse could refuse nothing the closure would answer: `httparse`
//! admits exactly the header names and values `http` does (tested below),
//! the target is checked as a `Uri`, and a head with framing fields or an
//! `Upgrade` is never offered.

use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri, Version};

use super::decode::Decoder;
use crate::dispatch::StoredReq;

/// Header fields accepted in one request head (hyper's default too).
pub(crate) const MAX_HEADERS: usize = 100;

/// A parsed request head and what it implies.
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    /// `None`: no body.
    pub(crate) body: Option<Decoder>,
    /// The client allows the connection to serve another request.
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1.
    pub(crate) expect_continue: bool,
}

/// Why a head is not served by the own driver.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Malformed: 400 and close.
    Bad(&'static str),
    /// Too many header fields: 431 and close.
    TooLarge,
    /// A shape the driver leaves to hyper (an `Upgrade`, `CONNECT`).
    HandOff,
}

/// A head taken out of the buffer. (Returned by value and matched at once:
/// boxing the head would cost an allocation per request.)
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    Head(Head),
    /// The `stored` closure answered it.
    Answered,
}

/// Parses the head at the front of `buf`. `Ok(None)`: incomplete. On
/// success the head's bytes are taken out of `buf`. A keep-alive HTTP/1.1
/// `GET` without `Content-Length`, `Transfer-Encoding` or `Upgrade`, with
/// exactly one `Host`, is first offered to `stored`; `true` means it was
/// answered, and no `Head` is built.
pub(crate) fn parse(
    buf: &mut BytesMut,
    stored: impl FnOnce(&StoredReq<'_>) -> bool,
) -> Result<Option<Parsed>, Refusal> {
    // Offsets of the parts, so that the head can be frozen after parsing
    // (the parser borrows the buffer). 100 × 16 bytes on the stack; the
    // caller keeps nothing of it across an await.
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        Err(_) => return Err(Refusal::Bad("malformed request head")),
    };
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let method = match req.method {
        Some(m) => Method::from_bytes(m.as_bytes()).map_err(|_| Refusal::Bad("bad method"))?,
        None => return Err(Refusal::Bad("no method")),
    };
    if method == Method::CONNECT {
        return Err(Refusal::HandOff);
    }
    let version = if req.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let path = at(req.path.unwrap_or("").as_bytes());
    let n = req.headers.len();
    let mut spans = [((0usize, 0usize), (0usize, 0usize)); MAX_HEADERS];
    // What decides whether the head may be offered to `stored` (counted
    // in the one pass over the fields that is made anyway).
    let mut plain = method == Method::GET && version == Version::HTTP_11;
    let mut hosts = 0;
    let mut credentials = false;
    for (span, h) in spans.iter_mut().zip(req.headers.iter()) {
        if h.name.eq_ignore_ascii_case("upgrade") {
            return Err(Refusal::HandOff);
        }
        *span = (at(h.name.as_bytes()), at(h.value));
        if plain {
            let name = h.name.as_bytes();
            // The names that matter here are 4 to 17 bytes long: a length
            // check first keeps the common fields to one compare.
            match name.len() {
                4 if name.eq_ignore_ascii_case(b"host") => hosts += 1,
                6 if name.eq_ignore_ascii_case(b"cookie") => credentials = true,
                10 if name.eq_ignore_ascii_case(b"connection") && closes(h.value) => {
                    plain = false;
                }
                13 if name.eq_ignore_ascii_case(b"authorization") => credentials = true,
                14 if name.eq_ignore_ascii_case(b"content-length") => plain = false,
                17 if name.eq_ignore_ascii_case(b"transfer-encoding") => plain = false,
                _ => {}
            }
        }
    }
    let head = buf.split_to(len).freeze();
    let slice = |(from, n): (usize, usize)| head.slice(from..from + n);
    let uri =
        Uri::from_maybe_shared(slice(path)).map_err(|_| Refusal::Bad("bad request target"))?;
    if plain && hosts == 1 {
        let q = StoredReq {
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            credentials,
        };
        if stored(&q) {
            return Ok(Some(Parsed::Answered));
        }
    }

    let mut map = HeaderMap::with_capacity(n);
    let mut keep_alive = version == Version::HTTP_11;
    let mut expect_continue = false;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut te_seen = false;
    for &(name, value) in &spans[..n] {
        let name = HeaderName::from_bytes(&head[name.0..name.0 + name.1])
            .map_err(|_| Refusal::Bad("bad header name"))?;
        let value = HeaderValue::from_maybe_shared(slice(value))
            .map_err(|_| Refusal::Bad("bad header value"))?;
        match name {
            http::header::CONTENT_LENGTH => {
                let v = std::str::from_utf8(value.as_bytes())
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or(Refusal::Bad("bad content-length"))?;
                match length {
                    Some(l) if l != v => return Err(Refusal::Bad("conflicting content-length")),
                    // An identical repeat is one length (hyper keeps one field).
                    Some(_) => continue,
                    None => length = Some(v),
                }
            }
            http::header::TRANSFER_ENCODING => {
                te_seen = true;
                // Only the last coding counts: it must be `chunked`.
                chunked = value
                    .as_bytes()
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            http::header::CONNECTION => {
                for token in tokens(value.as_bytes()) {
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive")
                        && version == Version::HTTP_10
                    {
                        keep_alive = true;
                    }
                }
            }
            http::header::EXPECT => {
                expect_continue = version == Version::HTTP_11
                    && value.as_bytes().eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
        map.append(name, value);
    }
    // `Transfer-Encoding` wins over `Content-Length` (RFC 9112 §6.3). A
    // coding other than chunked last leaves no way to find the body's end.
    let body = if te_seen {
        if !chunked || version == Version::HTTP_10 {
            return Err(Refusal::Bad(
                "transfer-encoding without chunked, or on HTTP/1.0",
            ));
        }
        if length.is_some() {
            // Both framings: the length is dropped before anyone sees it
            // and the connection is not reused, as hyper does.
            map.remove(http::header::CONTENT_LENGTH);
            keep_alive = false;
        }
        Some(Decoder::chunked())
    } else {
        match length {
            Some(0) | None => None,
            Some(n) => Some(Decoder::Length(n)),
        }
    };
    Ok(Some(Parsed::Head(Head {
        method,
        uri,
        version,
        headers: map,
        body,
        keep_alive,
        expect_continue,
    })))
}

fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// A `Connection` value naming `close`.
fn closes(value: &[u8]) -> bool {
    tokens(value).any(|t| t.eq_ignore_ascii_case(b"close"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<Head>, Refusal> {
        parse_whole(&mut BytesMut::from(text.as_bytes()))
    }

    /// Parses with a `stored` closure that answers nothing.
    fn parse_whole(buf: &mut BytesMut) -> Result<Option<Head>, Refusal> {
        parse(buf, |_| false).map(|p| match p {
            Some(Parsed::Head(h)) => Some(h),
            Some(Parsed::Answered) => unreachable!("nothing answers"),
            None => None,
        })
    }

    /// What `stored` is offered for `text`: path, query, credentials.
    fn offered(text: &str) -> Option<(String, String, bool)> {
        let mut got = None;
        let mut buf = BytesMut::from(text.as_bytes());
        let r = parse(&mut buf, |q| {
            got = Some((q.path.to_string(), q.query.to_string(), q.credentials));
            true
        });
        match r {
            Ok(Some(Parsed::Answered)) => assert!(got.is_some() && buf.is_empty()),
            Ok(Some(Parsed::Head(_))) => assert!(got.is_none()),
            _ => panic!("{text:?} does not parse"),
        }
        got
    }

    #[test]
    fn only_plain_keep_alive_gets_are_offered_to_stored() {
        let yes = offered("GET /a/b?c=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
        assert_eq!(yes, Some(("/a/b".into(), "c=1".into(), false)));
        let creds = |t: &str| offered(t).map(|o| o.2);
        assert_eq!(
            creds("GET / HTTP/1.1\r\nhost: x\r\nCookie: a=1\r\n\r\n"),
            Some(true)
        );
        assert_eq!(
            creds("GET / HTTP/1.1\r\nHOST: x\r\nauthorization: b\r\n\r\n"),
            Some(true)
        );
        assert_eq!(
            creds("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"),
            Some(false)
        );
        // Absolute form: the path is the URI's, as `req.uri().path()`.
        assert_eq!(
            offered("GET http://x/p?q HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("/p".into(), "q".into(), false))
        );
        for no in [
            "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ] {
            assert_eq!(offered(no), None, "{no:?}");
        }
        // A refusal of the full parse still comes first.
        let mut bad = BytesMut::from(&b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
        assert!(parse(&mut bad, |_| panic!("offered a bad head")).is_err());
    }

    /// The stored path skips `HeaderName`/`HeaderValue` checks because
    /// `httparse` admits exactly what they admit: every byte, in a name
    /// and in a value.
    #[test]
    fn httparse_admits_the_names_and_values_http_admits() {
        for b in 0u8..=255 {
            let name = [b'x', b];
            let mut text = b"GET / HTTP/1.1\r\n".to_vec();
            text.extend_from_slice(&name);
            text.extend_from_slice(b": v\r\n\r\n");
            let mut hs = [httparse::EMPTY_HEADER; 4];
            let parsed = httparse::Request::new(&mut hs).parse(&text);
            // (A `:` ends the name early: what counts is the name parsed.)
            if matches!(parsed, Ok(httparse::Status::Complete(_))) {
                assert!(
                    HeaderName::from_bytes(hs[0].name.as_bytes()).is_ok(),
                    "name byte {b:#x}: httparse admits, http does not"
                );
            }
            let value = [b'a', b, b'z'];
            let mut text = b"GET / HTTP/1.1\r\nx: ".to_vec();
            text.extend_from_slice(&value);
            text.extend_from_slice(b"\r\n\r\n");
            let mut hs = [httparse::EMPTY_HEADER; 4];
            if let Ok(httparse::Status::Complete(_)) = httparse::Request::new(&mut hs).parse(&text)
            {
                let v = hs[0].value;
                assert!(
                    HeaderValue::from_bytes(v).is_ok(),
                    "value byte {b:#x}: httparse admits, http does not"
                );
            }
        }
    }

    #[test]
    fn a_head_is_parsed_and_taken_out_of_the_buffer() {
        let mut buf = BytesMut::from(
            &b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Y: z\r\nContent-Length: 3\r\n\r\nabcGET"[..],
        );
        let h = parse_whole(&mut buf).unwrap().unwrap();
        assert_eq!(h.method, Method::POST);
        assert_eq!(h.uri, "/a?b=1");
        assert_eq!(h.headers["x-y"], "z");
        assert!(h.keep_alive);
        assert_eq!(h.body.unwrap().exact_left(), Some(3));
        assert_eq!(&buf[..], b"abcGET");
    }

    #[test]
    fn incomplete_heads_ask_for_more() {
        assert!(head("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection() {
        let ka = |t: &str| head(t).unwrap().unwrap().keep_alive;
        assert!(ka("GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn framing_is_settled_or_refused() {
        let body = |t: &str| head(t).map(|h| h.unwrap().body.map(|b| b.exact_left()));
        assert_eq!(
            body("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(Some(None))
        );
        assert_eq!(
            body("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            Ok(None)
        );
        assert_eq!(
            body("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n"),
            Ok(Some(Some(2)))
        );
        let both =
            head("POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(!both.headers.contains_key("content-length") && !both.keep_alive);
        assert_eq!(both.body.unwrap().exact_left(), None);
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
            "GET  HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(matches!(head(bad), Err(Refusal::Bad(_))), "{bad:?}");
        }
    }

    #[test]
    fn upgrades_and_connect_go_to_hyper_and_floods_are_431() {
        assert_eq!(
            head("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n").err(),
            Some(Refusal::HandOff)
        );
        assert_eq!(
            head("CONNECT a:1 HTTP/1.1\r\n\r\n").err(),
            Some(Refusal::HandOff)
        );
        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("x-{i}: 1\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(head(&many).err(), Some(Refusal::TooLarge));
    }
}
