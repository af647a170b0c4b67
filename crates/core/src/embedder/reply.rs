//! A response produced by the embedder, checked before it reaches a socket.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use std::path::PathBuf;

use crate::body::BodyReceiver;
use crate::error::{Error, ErrorKind};

/// Status, headers and a whole body (or, via [`Reply::with_file`] and
/// [`Reply::with_stream`], a file or a stream in its place).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Resources to push with this response (`(path, as)`): pushed over
    /// HTTP/2 when the client allows it, `Link: rel=preload` otherwise.
    pub push: Vec<(String, String)>,
    pub(crate) source: Source,
}

/// Where the body comes from when it is not `body`.
pub(crate) enum Source {
    Bytes,
    File(PathBuf),
    Stream(BodyReceiver),
}

/// The push list of a response on its way to the protocol layer (kept in
/// the response's extensions so every layer decides what it can do).
#[derive(Clone, Debug, Default)]
pub(crate) struct PushList(pub(crate) Vec<(String, String)>);

/// `Link` header value announcing a resource for preload.
pub(crate) fn preload_link(path: &str, as_: &str) -> String {
    format!("<{path}>; rel=preload; as={as_}")
}

/// Appends one `Link: rel=preload` header per resource.
pub(crate) fn add_preload_links(headers: &mut HeaderMap, list: &[(String, String)]) {
    for (path, as_) in list {
        // Both parts were validated in `Reply::with_push`.
        if let Ok(v) = HeaderValue::from_str(&preload_link(path, as_)) {
            headers.append(http::header::LINK, v);
        }
    }
}

fn memchr_lf(b: &[u8], from: usize) -> Option<usize> {
    b[from..].iter().position(|&c| c == b'\n').map(|i| from + i)
}

/// A batch of whole-body replies written by the embedder into one buffer,
/// so that a batch of requests is answered with one call across the
/// boundary instead of one per response. Little-endian, per reply:
///
/// ```text
/// u32 id | u16 status | u32 header block length | header block (name\nvalue\n…) | u32 body length | body
/// ```
///
/// A body length of [`ReplyBatch::LENT`] means "no bytes here: the next of
/// the bodies given with [`ReplyBatch::with_bodies`]", so large bodies
/// join the batch by reference instead of being copied into it.
pub struct ReplyBatch {
    data: Bytes,
    at: usize,
    /// Emptied header maps to build the replies in ([`Spares`]).
    maps: Vec<HeaderMap>,
    /// Bodies that travel beside the buffer, in the order their replies
    /// name them.
    bodies: std::vec::IntoIter<Bytes>,
}

impl ReplyBatch {
    /// Takes a copy of `data`: header values and bodies of the replies
    /// become views of that one allocation.
    pub fn new(data: &[u8]) -> Self {
        Self {
            data: Bytes::copy_from_slice(data),
            at: 0,
            maps: Vec::new(),
            bodies: Vec::new().into_iter(),
        }
    }

    /// The body length that stands for the next body given apart.
    pub const LENT: u32 = u32::MAX;

    /// The bodies the replies marked [`ReplyBatch::LENT`] take, in order.
    /// Those left over when the batch ends are dropped with it.
    pub fn with_bodies(mut self, bodies: Vec<Bytes>) -> Self {
        self.bodies = bodies.into_iter();
        self
    }

    /// Builds the replies in these emptied maps (taken from the end) while
    /// they last, instead of new ones.
    pub fn with_maps(mut self, maps: Vec<HeaderMap>) -> Self {
        self.maps = maps;
        self
    }

    /// The maps left unused, to keep for the next batch.
    pub fn into_maps(self) -> Vec<HeaderMap> {
        self.maps
    }

    /// The next `n` bytes, as a range of `data`.
    fn span(&mut self, n: usize) -> Result<std::ops::Range<usize>, Error> {
        if self.data.len() - self.at < n {
            return Err(Error::new(
                ErrorKind::InvalidResponse,
                "reply batch is truncated",
            ));
        }
        self.at += n;
        Ok(self.at - n..self.at)
    }

    /// The next `n` bytes as a view of the batch (a reference count taken).
    fn take(&mut self, n: usize) -> Result<Bytes, Error> {
        let r = self.span(n)?;
        Ok(self.data.slice(r))
    }

    /// A little-endian integer, read in place: taking a view for it would
    /// cost an atomic increment and decrement of the batch's count, shared
    /// with the I/O threads that drop the bodies (three per reply, ~0.09 µs
    /// of the JS thread per request in a profile of /plaintext).
    fn uint(&mut self, n: usize) -> Result<usize, Error> {
        let r = self.span(n)?;
        Ok(self.data[r]
            .iter()
            .rev()
            .fold(0usize, |v, &x| (v << 8) | x as usize))
    }
}

/// Header maps of answers already written, emptied, on their way back to
/// the thread that builds replies ([`ReplyBatch::with_maps`]).
///
/// A reply's `HeaderMap` (two blocks: its index table and its entries,
/// ~650 bytes for up to six fields) is allocated on the JS thread and,
/// once the delivering task has written the answer, freed on an I/O
/// thread: every free lands in the other thread's malloc arena, under its
/// lock, and the JS thread's next malloc finds its own cache empty
/// (docs/performance.md §17.3). Handed back emptied, the blocks are
/// reused instead. Cost: one uncontended lock per batch on each side and
/// a `clear` per map on the I/O thread. Bounded: at most [`Spares::MAX`]
/// maps wait here (the rest are dropped as before), and a map grown past
/// [`Spares::MAX_FIELDS`] fields is dropped rather than kept.
#[derive(Default)]
pub struct Spares {
    maps: parking_lot::Mutex<Vec<HeaderMap>>,
}

impl Spares {
    /// The most maps kept waiting.
    pub const MAX: usize = 512;
    /// The largest map kept, in fields it can hold without growing.
    pub const MAX_FIELDS: usize = 24;

    /// Empties the maps of `maps` and keeps them, up to the bounds;
    /// `maps` is left empty.
    pub fn give(&self, maps: &mut Vec<HeaderMap>) {
        maps.retain_mut(|m| {
            m.clear();
            m.capacity() <= Self::MAX_FIELDS
        });
        let mut kept = self.maps.lock();
        let room = Self::MAX.saturating_sub(kept.len());
        maps.truncate(room);
        kept.append(maps);
    }

    /// Moves the waiting maps into `into`, unless it holds [`Spares::MAX`]
    /// already.
    pub fn take(&self, into: &mut Vec<HeaderMap>) {
        if into.len() >= Self::MAX {
            return;
        }
        let mut kept = self.maps.lock();
        if into.is_empty() {
            std::mem::swap(&mut *kept, into);
        } else {
            into.append(&mut kept);
        }
    }

    /// How many maps wait.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.maps.lock().len()
    }

    /// Whether none waits.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Iterator for ReplyBatch {
    /// The request id and its reply (or why the reply is invalid). A
    /// truncated batch ends the iteration with an error for id 0.
    type Item = (u32, Result<Reply, Error>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.data.len() {
            return None;
        }
        let mut id = 0;
        let mut read = || -> Result<Result<Reply, Error>, Error> {
            id = self.uint(4)? as u32;
            let status = self.uint(2)? as u16;
            let hlen = self.uint(4)?;
            let headers = self.take(hlen)?;
            let blen = self.uint(4)?;
            let body = if blen == Self::LENT as usize {
                self.bodies.next().ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidResponse,
                        "reply batch names a body it was not given",
                    )
                })?
            } else {
                self.take(blen)?
            };
            let map = self.maps.pop().unwrap_or_default();
            Ok(Reply::build(map, status, headers, body))
        };
        match read() {
            Ok(r) => Some((id, r)),
            Err(e) => {
                self.at = self.data.len();
                Some((id, Err(e)))
            }
        }
    }
}

impl Reply {
    /// Builds a reply from a header block `name\nvalue\nname\nvalue…` (the
    /// form the JS side produces with one string join, so headers cross the
    /// boundary as a single string).
    ///
    /// ```
    /// let r = httpy_core::Reply::from_parts(201, "content-type\ntext/plain\nx-a\n1", "hi".into()).unwrap();
    /// assert_eq!(r.status.as_u16(), 201);
    /// assert_eq!(r.headers["x-a"], "1");
    /// ```
    pub fn from_parts(status: u16, header_block: &str, body: Bytes) -> Result<Self, Error> {
        Self::from_shared(
            status,
            Bytes::copy_from_slice(header_block.as_bytes()),
            body,
        )
    }

    /// Like [`Reply::from_parts`], with the header block in a shared buffer:
    /// each header value becomes a view of it instead of a copy, which saves
    /// one allocation per header on the hot path (a batch of responses is
    /// one buffer, see [`ReplyBatch`]).
    pub fn from_shared(status: u16, header_block: Bytes, body: Bytes) -> Result<Self, Error> {
        Self::build(HeaderMap::new(), status, header_block, body)
    }

    /// [`Reply::from_shared`] into `headers`, an empty map (a new one, or
    /// one recycled through [`Spares`] with its capacity).
    fn build(
        mut headers: HeaderMap,
        status: u16,
        header_block: Bytes,
        body: Bytes,
    ) -> Result<Self, Error> {
        debug_assert!(headers.is_empty());
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.as_u16() >= 200 || s.as_u16() == 101)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidResponse,
                    format!("invalid status code {status}: must be an integer from 200 to 999"),
                )
            })?;
        let mut at = 0;
        let block = &header_block[..];
        while at < block.len() {
            let name_end = memchr_lf(block, at).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidResponse,
                    "header block has a name without a value",
                )
            })?;
            let value_end = memchr_lf(block, name_end + 1).unwrap_or(block.len());
            let name = &block[at..name_end];
            let name = HeaderName::from_bytes(name).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidResponse,
                    format!("invalid header name {:?}", String::from_utf8_lossy(name)),
                )
            })?;
            let value = HeaderValue::from_maybe_shared(header_block.slice(name_end + 1..value_end))
                .map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidResponse,
                        format!(
                            "invalid value for header {name}: {:?}",
                            String::from_utf8_lossy(&block[name_end + 1..value_end])
                        ),
                    )
                })?;
            headers.append(name, value);
            at = value_end + 1;
        }
        Ok(Self {
            status,
            headers,
            body,
            push: Vec::new(),
            source: Source::Bytes,
        })
    }

    /// Adds resources to push, from a block `path\nas\npath\nas…`. A path
    /// must be an absolute path (`/static/app.js`, query allowed); `as` a
    /// token such as `style` or `script`.
    ///
    /// ```
    /// let r = httpy_core::Reply::from_parts(200, "", "".into()).unwrap()
    ///     .with_push("/static/style.css\nstyle\n/static/app.js\nscript").unwrap();
    /// assert_eq!(r.push[1], ("/static/app.js".to_string(), "script".to_string()));
    /// assert!(httpy_core::Reply::from_parts(200, "", "".into()).unwrap().with_push("http://x/\nstyle").is_err());
    /// ```
    pub fn with_push(mut self, block: &str) -> Result<Self, Error> {
        if block.is_empty() {
            return Ok(self);
        }
        let mut parts = block.split('\n');
        while let Some(path) = parts.next() {
            let as_ = parts.next().ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidResponse,
                    "pushResources entry has a path without an \"as\" value",
                )
            })?;
            let path_ok = path.starts_with('/')
                && !path.starts_with("//")
                && path.parse::<http::uri::PathAndQuery>().is_ok();
            if !path_ok {
                return Err(Error::new(
                    ErrorKind::InvalidResponse,
                    format!("pushResources path {path:?} must be an absolute path such as \"/static/app.js\""),
                ));
            }
            let as_ok =
                !as_.is_empty() && as_.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !as_ok {
                return Err(Error::new(
                    ErrorKind::InvalidResponse,
                    format!("pushResources \"as\" value {as_:?} must be a token such as \"style\" or \"script\""),
                ));
            }
            self.push.push((path.to_string(), as_.to_string()));
        }
        Ok(self)
    }

    /// Serves the file at `path` instead of `body` (validators, ranges and
    /// conditional requests handled by the core).
    ///
    /// ```
    /// let r = httpy_core::Reply::from_parts(200, "", Default::default()).unwrap().with_file("/tmp/a.txt");
    /// assert_eq!(r.status.as_u16(), 200);
    /// ```
    pub fn with_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.source = Source::File(path.into());
        self
    }

    /// Sends what arrives on `rx` instead of `body`.
    ///
    /// ```
    /// let (tx, rx) = httpy_core::body_channel(None, None);
    /// let r = httpy_core::Reply::from_parts(200, "", Default::default()).unwrap().with_stream(rx);
    /// drop((tx, r));
    /// ```
    pub fn with_stream(mut self, rx: BodyReceiver) -> Self {
        self.source = Source::Stream(rx);
        self
    }

    pub fn text(status: StatusCode, text: &'static str) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Self {
            status,
            headers,
            body: Bytes::from_static(text.as_bytes()),
            push: Vec::new(),
            source: Source::Bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_status_and_headers() {
        assert!(Reply::from_parts(99, "", Bytes::new()).is_err());
        assert!(Reply::from_parts(1000, "", Bytes::new()).is_err());
        assert!(Reply::from_parts(200, "bad name\nx", Bytes::new()).is_err());
        assert!(Reply::from_parts(200, "x-a\nline\rbreak", Bytes::new()).is_err());
        assert!(Reply::from_parts(200, "x-a", Bytes::new()).is_err());
        let ok = Reply::from_parts(200, "set-cookie\na=1\nset-cookie\nb=2", Bytes::new()).unwrap();
        assert_eq!(ok.headers.get_all("set-cookie").iter().count(), 2);
        // An empty value, and a block ending in a value.
        let ok = Reply::from_parts(200, "x-empty\n\nx-b\n2", Bytes::new()).unwrap();
        assert_eq!(ok.headers["x-empty"], "");
        assert_eq!(ok.headers["x-b"], "2");
    }

    fn encode(out: &mut Vec<u8>, id: u32, status: u16, headers: &str, body: &[u8]) {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&status.to_le_bytes());
        out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
        out.extend_from_slice(headers.as_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
    }

    #[test]
    fn batch_round_trip() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, 200, "content-type\ntext/plain", b"hello");
        encode(&mut buf, 9, 404, "", b"");
        encode(&mut buf, 11, 200, "bad name\nx", b"x");
        encode(&mut buf, 12, 201, "x-a\n1\nx-a\n2", &[0, 1, 2]);
        let got: Vec<_> = ReplyBatch::new(&buf).collect();
        assert_eq!(got.len(), 4);
        let (id, r) = &got[0];
        let r = r.as_ref().unwrap();
        assert_eq!(
            (*id, r.status.as_u16(), &r.body[..]),
            (7, 200, &b"hello"[..])
        );
        assert_eq!(r.headers["content-type"], "text/plain");
        assert_eq!(got[1].0, 9);
        assert_eq!(got[1].1.as_ref().unwrap().status.as_u16(), 404);
        // A bad reply fails alone; the next one still parses.
        assert_eq!(got[2].0, 11);
        assert!(got[2].1.is_err());
        let r = got[3].1.as_ref().unwrap();
        assert_eq!(r.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(&r.body[..], &[0, 1, 2]);
    }

    #[test]
    fn lent_bodies_are_taken_in_order_and_a_missing_one_is_refused() {
        let lent = |out: &mut Vec<u8>, id: u32| {
            encode(out, id, 200, "", b"");
            let at = out.len() - 4;
            out[at..].copy_from_slice(&ReplyBatch::LENT.to_le_bytes());
        };
        let mut buf = Vec::new();
        lent(&mut buf, 1);
        encode(&mut buf, 2, 200, "", b"inline");
        lent(&mut buf, 3);
        lent(&mut buf, 4);
        let big = Bytes::from(vec![7u8; 100 * 1024]);
        let got: Vec<_> = ReplyBatch::new(&buf)
            .with_bodies(vec![big.clone(), Bytes::from_static(b"second")])
            .collect();
        let bodies: Vec<_> = got
            .iter()
            .map(|(id, r)| (*id, r.as_ref().map(|r| r.body.clone()).ok()))
            .collect();
        assert_eq!(
            bodies,
            vec![
                (1, Some(big.clone())),
                (2, Some(Bytes::from_static(b"inline"))),
                (3, Some(Bytes::from_static(b"second"))),
                // Named a third body with two given: refused, not a panic.
                (4, None),
            ]
        );
        // The lent body is the very buffer given, not a copy.
        assert_eq!(got[0].1.as_ref().unwrap().body.as_ptr(), big.as_ptr());
    }

    #[test]
    fn spares_are_emptied_and_bounded() {
        let spares = Spares::default();
        let full = || {
            let mut m = HeaderMap::new();
            m.insert("x-a", HeaderValue::from_static("1"));
            m
        };
        // More than the bound, and one map grown past the field limit.
        let mut given: Vec<HeaderMap> = (0..Spares::MAX + 100).map(|_| full()).collect();
        let mut big = HeaderMap::new();
        for i in 0..Spares::MAX_FIELDS * 2 {
            big.insert(
                HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        given.insert(0, big);
        spares.give(&mut given);
        assert!(given.is_empty());
        assert_eq!(spares.len(), Spares::MAX);
        let mut into = Vec::new();
        spares.take(&mut into);
        assert_eq!(into.len(), Spares::MAX);
        assert!(spares.is_empty());
        assert!(into
            .iter()
            .all(|m| m.is_empty() && m.capacity() <= Spares::MAX_FIELDS));
        // A taker that holds the bound already takes nothing more.
        spares.give(&mut (0..10).map(|_| full()).collect());
        spares.take(&mut into);
        assert_eq!((into.len(), spares.len()), (Spares::MAX, 10));
        // Below it, what waits is added to what it holds.
        into.truncate(5);
        spares.take(&mut into);
        assert_eq!((into.len(), spares.len()), (15, 0));
    }

    #[test]
    fn a_batch_builds_its_replies_in_the_maps_it_was_given() {
        let mut buf = Vec::new();
        encode(&mut buf, 1, 200, "content-type\ntext/plain", b"a");
        encode(&mut buf, 2, 200, "x-b\n2", b"b");
        encode(&mut buf, 3, 200, "", b"c");
        let mut old = HeaderMap::with_capacity(12);
        old.insert("x-old", HeaderValue::from_static("1"));
        old.clear();
        let cap = old.capacity();
        let mut batch = ReplyBatch::new(&buf).with_maps(vec![HeaderMap::new(), old]);
        let got: Vec<_> = batch.by_ref().map(|(_, r)| r.unwrap()).collect();
        // Taken from the end: the first reply gets the map with room.
        assert_eq!(got[0].headers.capacity(), cap);
        assert_eq!(got[0].headers.len(), 1);
        assert_eq!(got[0].headers["content-type"], "text/plain");
        assert_eq!(got[1].headers["x-b"], "2");
        assert!(got[1].headers.get("content-type").is_none());
        assert!(got[2].headers.is_empty());
        assert!(batch.into_maps().is_empty());
    }

    #[test]
    fn truncated_batch_ends_with_an_error() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, 200, "", b"hello");
        buf.truncate(buf.len() - 2);
        let got: Vec<_> = ReplyBatch::new(&buf).collect();
        assert_eq!(got.len(), 1);
        assert!(got[0].1.is_err());
    }

    #[test]
    fn status_must_be_final_or_switching_protocols() {
        for ok in [101, 200, 204, 404, 599, 999] {
            assert!(Reply::from_parts(ok, "", Bytes::new()).is_ok(), "{ok}");
        }
        for bad in [0, 99, 100, 102, 199, 1000, u16::MAX] {
            let e = Reply::from_parts(bad, "", Bytes::new()).err().unwrap();
            assert_eq!(e.kind(), ErrorKind::InvalidResponse, "{bad}");
        }
    }

    #[test]
    fn push_lists_become_preload_links() {
        let r = Reply::from_parts(200, "", Bytes::new())
            .unwrap()
            .with_push("/a.css\nstyle\n/b.js?v=2\nscript")
            .unwrap();
        let mut headers = HeaderMap::new();
        add_preload_links(&mut headers, &r.push);
        let links: Vec<_> = headers.get_all("link").iter().collect();
        assert_eq!(
            links,
            [
                "</a.css>; rel=preload; as=style",
                "</b.js?v=2>; rel=preload; as=script"
            ]
        );
        for bad in ["/a.css", "//evil/x\nstyle", "/a\nsty le", "/a\n"] {
            assert!(
                Reply::from_parts(200, "", Bytes::new())
                    .unwrap()
                    .with_push(bad)
                    .is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_file_reply_names_its_source() {
        let r = Reply::from_parts(200, "", Bytes::new())
            .unwrap()
            .with_file("/tmp/x");
        assert!(matches!(r.source, Source::File(ref p) if p == std::path::Path::new("/tmp/x")));
    }
}
