//! A request head as the own HTTP/1.1 driver parsed it, kept as its bytes
//! rather than turned into a `HeaderMap`.
//!
//! Most requests answered by a JavaScript handler need nothing of their
//! header fields on the I/O thread but their bytes in the request record;
//! a `HeaderMap` (two allocations, a hash and an insert per field, a drop)
//! was built for each of them only to be copied into the record and freed
//! (docs/performance.md §14 lever (c), §17.4). The driver's one pass over
//! the fields settles what the dispatcher asks of every request
//! ([`HeadFacts`]); the record is written from the head's bytes, parsed a
//! second time by `httparse` (tens of nanoseconds for a usual head, against
//! the map's few hundred); and the map is built, the same map the driver
//! built before, only for requests that read fields by name (a cached or
//! static route, a streamed or multipart body, metrics or the access log,
//! an embedder that takes requests whole).

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use http::HeaderMap;
use std::mem::MaybeUninit;

use crate::respond::static_files::{ReqFacts, KEPT, KEPT_LEN};

/// Header fields accepted in one request head (hyper's default too).
pub(crate) const MAX_HEADERS: usize = 100;

/// A `(start, len)` span of the head's bytes; `ABSENT` when the field is not there.
pub(crate) type Span = (u32, u32);

pub(crate) const ABSENT: Span = (u32::MAX, 0);

/// What the dispatcher needs of every request, found while parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeadFacts {
    /// What `limits::ambiguous_h1` answers for the map this head stands
    /// for: an HTTP/1.1 request without exactly one `Host`, repeated
    /// `Transfer-Encoding` fields, or one that is not exactly `chunked`.
    pub(crate) ambiguous: bool,
    /// The `Content-Length` the map holds.
    pub(crate) length: Option<u64>,
    /// `Content-Length` is left out: `Transfer-Encoding` framed the body.
    pub(crate) drop_length: bool,
    /// The first value of each field of [`KEPT`], in its order.
    pub(crate) kept: [Span; KEPT_LEN],
}

impl Default for HeadFacts {
    fn default() -> Self {
        Self {
            ambiguous: false,
            length: None,
            drop_length: false,
            kept: [ABSENT; KEPT_LEN],
        }
    }
}

/// A parsed head: its bytes (request line, fields, the empty line) and
/// its facts.
pub(crate) struct RawHead {
    bytes: Bytes,
    pub(crate) facts: HeadFacts,
}

impl RawHead {
    /// `bytes` must hold a whole head that `httparse` accepts with at most
    /// [`MAX_HEADERS`] fields (the driver passes what it parsed).
    pub(crate) fn new(bytes: Bytes, facts: HeadFacts) -> Self {
        Self { bytes, facts }
    }

    /// Calls `f` with each field's name (as sent) and value, in the order
    /// sent, leaving out what the driver's map left out: every
    /// `Content-Length` after the first (the parse refused unequal ones),
    /// and all of them when `Transfer-Encoding` framed the body.
    pub(crate) fn each_field(&self, mut f: impl FnMut(&str, &[u8])) {
        // Uninitialised slots: `httparse` writes only those it fills
        // (initialising 100 would be a 3.2 KB memset per call).
        let mut slots: [MaybeUninit<httparse::Header<'_>>; MAX_HEADERS] =
            [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        // The same bytes parsed whole before: this cannot fail; if it
        // did, the request would carry no fields rather than fail here.
        if !matches!(
            req.parse_with_uninit_headers(&self.bytes, &mut slots),
            Ok(httparse::Status::Complete(_))
        ) {
            return;
        }
        let mut lengths = 0;
        for h in req.headers.iter() {
            if is_content_length(h.name.as_bytes()) {
                lengths += 1;
                if self.facts.drop_length || lengths > 1 {
                    continue;
                }
            }
            f(h.name, h.value);
        }
    }

    /// The `HeaderMap` the driver built for this head before it kept its
    /// bytes (names lower-cased, values slices of the head, no copy).
    pub(crate) fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        self.each_field(|name, value| {
            // The parse admitted only what `http` admits (`role.rs` tests
            // it byte by byte), so neither conversion fails.
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_maybe_shared(self.bytes.slice_ref(value)),
            ) {
                map.append(n, v);
            }
        });
        map
    }

    /// The static-file and cache facts (`ReqFacts::of` of the map), from
    /// the spans found while parsing.
    pub(crate) fn req_facts(&self, method: &http::Method) -> ReqFacts {
        let mut headers = HeaderMap::new();
        for (name, &(at, len)) in KEPT.iter().zip(&self.facts.kept) {
            if at == u32::MAX {
                continue;
            }
            let (at, len) = (at as usize, len as usize);
            if let Ok(v) = HeaderValue::from_maybe_shared(self.bytes.slice(at..at + len)) {
                headers.insert(name.clone(), v);
            }
        }
        ReqFacts {
            is_head: method == http::Method::HEAD,
            is_get: method == http::Method::GET,
            headers,
        }
    }

    /// The head's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }
}

impl crate::embedder::queue::HeadFields for RawHead {
    fn each_field(&self, f: &mut dyn FnMut(&str, &[u8])) {
        RawHead::each_field(self, f)
    }

    fn len(&self) -> usize {
        RawHead::len(self)
    }
}

pub(crate) fn is_content_length(name: &[u8]) -> bool {
    name.len() == CONTENT_LENGTH.as_str().len() && name.eq_ignore_ascii_case(b"content-length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_in_wire_order_without_the_dropped_lengths() {
        let text = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nX-A: 1\r\ncontent-length: 2\r\nx-a: 2\r\n\r\n";
        let mut facts = HeadFacts::default();
        let raw = RawHead::new(Bytes::from_static(text), facts);
        let mut got = Vec::new();
        raw.each_field(|n, v| got.push((n.to_string(), v.to_vec())));
        let want: Vec<(String, Vec<u8>)> = [
            ("Host", "x"),
            ("Content-Length", "2"),
            ("X-A", "1"),
            ("x-a", "2"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
        assert_eq!(got, want);
        let map = raw.header_map();
        assert_eq!(map.get_all("x-a").iter().count(), 2);
        assert_eq!(map.get_all("content-length").iter().count(), 1);

        facts.drop_length = true;
        let raw = RawHead::new(Bytes::from_static(text), facts);
        assert!(!raw.header_map().contains_key("content-length"));
        assert_eq!(raw.len(), text.len());
    }
}
