//! The server's side of HTTP/1.x messages for the own driver: parsing a
//! request head with `httparse` (the parser hyper itself uses) into
//! `http` types, and settling what the head says about framing and
//! keep-alive. Encoding the response is in `encode.rs`.
//!
//! The head is frozen out of the read buffer once and the URI is a slice of
//! it (no copy). No `HeaderMap` is built here: the head's bytes travel
//! with the request (`dispatch::head::RawHead`), with the facts the
//! dispatcher reads of every request found in this one pass over the
//! fields; the map, the one this parse built before, is made from them
//! only for the requests that read fields by name. Nothing is refused
//! later for it: `httparse` admits exactly the header names and values
//! `http` does (tested below), and longer names than `http` takes are
//! refused here.
//!
//! A plain keep-alive `GET` is offered to the caller's `stored` closure
//! with its path and query only: a route-cache hit is then answered
//! without a `Request` being built. It is offered only where the parse
//! refused nothing: the target is checked as a `Uri`, and a head with
//! framing fields or an `Upgrade` is never offered.

use bytes::BytesMut;
use http::{Method, Uri, Version};
use std::mem::MaybeUninit;

use super::decode::Decoder;
pub(crate) use crate::dispatch::head::MAX_HEADERS;
use crate::dispatch::head::{HeadFacts, RawHead, ABSENT};
use crate::dispatch::StoredReq;

/// The longest header name `http` accepts (`HeaderName::from_bytes`); the
/// record's name field holds as much.
const MAX_NAME: usize = u16::MAX as usize;

/// A parsed request head and what it implies.
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    /// The head's bytes and the facts the dispatcher reads of every
    /// request; a `HeaderMap` is built from it only where one is read.
    pub(crate) raw: RawHead,
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
///
/// One pass over the fields settles framing, keep-alive and the facts the
/// dispatcher reads of every request ([`HeadFacts`]); no `HeaderMap` is
/// built here (`RawHead::header_map` builds the same one on demand).
pub(crate) fn parse(
    buf: &mut BytesMut,
    stored: impl FnOnce(&StoredReq<'_>) -> bool,
) -> Result<Option<Parsed>, Refusal> {
    // Uninitialised slots: `httparse` writes only those it fills (100
    // initialised ones were a 3.2 KB memset per request).
    let mut slots: [MaybeUninit<httparse::Header<'_>>; MAX_HEADERS] =
        [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        Err(_) => return Err(Refusal::Bad("malformed request head")),
    };
    // Spans are kept as u32 offsets; no head limit comes near 4 GiB.
    if len > u32::MAX as usize {
        return Err(Refusal::TooLarge);
    }
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
    // Whether the head may be offered to `stored`: a GET on HTTP/1.1
    // without framing fields (keep-alive and one `Host` checked after).
    let mut plain = method == Method::GET && version == Version::HTTP_11;
    let mut hosts = 0u32;
    let mut credentials = false;
    let mut keep_alive = version == Version::HTTP_11;
    let mut expect_continue = false;
    let mut length: Option<u64> = None;
    let mut te_fields = 0u32;
    let mut te_exact_chunked = false;
    let mut chunked = false;
    let mut facts = HeadFacts::default();
    // The first refusal found; an `Upgrade` anywhere still hands off first.
    let mut bad: Option<&'static str> = None;
    let mut keep = |slot: usize, value: &[u8]| {
        if facts.kept[slot] == ABSENT {
            let (from, n) = at(value);
            facts.kept[slot] = (from as u32, n as u32);
        }
    };
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        if name.len() > MAX_NAME {
            bad.get_or_insert("bad header name");
            continue;
        }
        // The names that matter are 4 to 17 bytes long: a length check
        // first keeps most fields to one compare, or none.
        let is = |want: &[u8]| name.eq_ignore_ascii_case(want);
        match name.len() {
            4 if is(b"host") => hosts += 1,
            5 if is(b"range") => keep(0, value),
            6 if is(b"cookie") => credentials = true,
            6 if is(b"expect") => {
                // The last one counts, as when the map was read.
                expect_continue =
                    version == Version::HTTP_11 && value.eq_ignore_ascii_case(b"100-continue");
            }
            7 if is(b"upgrade") => return Err(Refusal::HandOff),
            8 if is(b"if-range") => keep(1, value),
            10 if is(b"connection") => {
                for token in tokens(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive")
                        && version == Version::HTTP_10
                    {
                        keep_alive = true;
                    }
                }
            }
            13 if is(b"authorization") => credentials = true,
            13 if is(b"if-none-match") => keep(2, value),
            14 if is(b"content-length") => {
                plain = false;
                let v = std::str::from_utf8(value)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok());
                match (v, length) {
                    (None, _) => {
                        bad.get_or_insert("bad content-length");
                    }
                    (Some(v), Some(l)) if l != v => {
                        bad.get_or_insert("conflicting content-length");
                    }
                    // An identical repeat is one length (hyper keeps one field).
                    (Some(_), Some(_)) => {}
                    (Some(v), None) => length = Some(v),
                }
            }
            15 if is(b"accept-encoding") => keep(4, value),
            17 if is(b"transfer-encoding") => {
                plain = false;
                te_fields += 1;
                if te_fields == 1 {
                    te_exact_chunked = value.eq_ignore_ascii_case(b"chunked");
                }
                // Only the last coding counts: it must be `chunked`.
                chunked = value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            17 if is(b"if-modified-since") => keep(3, value),
            _ => {}
        }
    }
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path.0..path.0 + path.1))
        .map_err(|_| Refusal::Bad("bad request target"))?;
    if let Some(why) = bad {
        return Err(Refusal::Bad(why));
    }
    if plain && keep_alive && hosts == 1 {
        let q = StoredReq {
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            credentials,
        };
        if stored(&q) {
            return Ok(Some(Parsed::Answered));
        }
    }

    // `Transfer-Encoding` wins over `Content-Length` (RFC 9112 §6.3). A
    // coding other than chunked last leaves no way to find the body's end.
    let body = if te_fields > 0 {
        if !chunked || version == Version::HTTP_10 {
            return Err(Refusal::Bad(
                "transfer-encoding without chunked, or on HTTP/1.0",
            ));
        }
        if length.is_some() {
            // Both framings: the length is dropped before anyone sees it
            // and the connection is not reused, as hyper does.
            facts.drop_length = true;
            keep_alive = false;
        }
        Some(Decoder::chunked())
    } else {
        match length {
            Some(0) | None => None,
            Some(n) => Some(Decoder::Length(n)),
        }
    };
    facts.length = length.filter(|_| !facts.drop_length);
    facts.ambiguous = (version == Version::HTTP_11 && hosts != 1)
        || te_fields > 1
        || (te_fields == 1 && !te_exact_chunked);
    Ok(Some(Parsed::Head(Head {
        method,
        uri,
        version,
        raw: RawHead::new(head, facts),
        body,
        keep_alive,
        expect_continue,
    })))
}

fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderName, HeaderValue};

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
        assert_eq!(h.raw.header_map()["x-y"], "z");
        assert!(h.keep_alive);
        assert_eq!(h.body.unwrap().exact_left(), Some(3));
        assert_eq!(&buf[..], b"abcGET");
    }

    /// The facts found in the one pass are what the dispatcher read from
    /// the map before: `ambiguous_h1`, the declared length, `ReqFacts`.
    #[test]
    fn head_facts_agree_with_the_map() {
        use crate::dispatch::limits::ambiguous_h1;
        use crate::respond::static_files::ReqFacts;
        for text in [
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /f HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nrange: bytes=5-\r\nIf-Range: \"a\"\r\nIf-None-Match: \"b\"\r\nIf-Modified-Since: Tue, 01 Dec 2026 00:00:00 GMT\r\nAccept-Encoding: gzip, br\r\n\r\n",
            "HEAD / HTTP/1.1\r\nHost: x\r\naccept-encoding:\r\n\r\n",
        ] {
            let h = head(text).unwrap().unwrap();
            let mut req = http::Request::new(());
            *req.method_mut() = h.method.clone();
            *req.version_mut() = h.version;
            *req.headers_mut() = h.raw.header_map();
            assert_eq!(h.raw.facts.ambiguous, ambiguous_h1(&req), "{text:?}");
            let declared = req
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            assert_eq!(h.raw.facts.length, declared, "{text:?}");
            let (a, b) = (h.raw.req_facts(&h.method), ReqFacts::of(&req));
            assert_eq!((a.is_head, a.is_get), (b.is_head, b.is_get), "{text:?}");
            assert_eq!(a.headers, b.headers, "{text:?}");
        }
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
        assert!(!both.raw.header_map().contains_key("content-length") && !both.keep_alive);
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
