//! Files served by the core: `serveStatic` mounts and `Response.file`.
//!
//! Everything a file response needs is decided here: the path (with every
//! traversal trick refused), content type, validators (`ETag`,
//! `Last-Modified`), conditional requests (304), byte ranges (206/416),
//! `Cache-Control`, index files and precompressed `.br`/`.gz` siblings.
//! What a mount's files are on disk is kept by the file cache
//! ([`crate::respond::file_cache`]): a hit of a small file is answered from memory;
//! larger files are streamed in chunks through a bounded channel, so such a
//! file is never held in memory whole.
//!
//! File system calls are made directly on the worker: for files in the page
//! cache they cost less than a hop to the blocking pool.

use bytes::{Bytes, BytesMut};
use http::header::{
    HeaderName, HeaderValue, ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING,
    CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE,
    LAST_MODIFIED, RANGE, VARY,
};
use http::{HeaderMap, Response, StatusCode};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::body::encoder::Coding;
use crate::body::{body_channel, ResBody};
use crate::respond::compress::CompressConfig;
use crate::respond::file_cache::{self, FileCache, FileData, Resolved, Stamp};

/// Read size for streamed files.
const CHUNK: u64 = 64 * 1024;

/// What to do with path segments that start with a dot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dotfiles {
    /// Act as if they did not exist (404).
    Ignore,
    /// Refuse with 403.
    Deny,
    /// Serve them like any other file.
    Allow,
}

/// One `serveStatic` mount.
#[derive(Debug, Clone)]
pub struct StaticMount {
    /// The directory served, already canonical (symlinks resolved).
    pub root: PathBuf,
    /// `Cache-Control: public, max-age=…` when set.
    pub max_age: Option<u64>,
    pub immutable: bool,
    pub etag: bool,
    /// File served for a directory (`index.html`); `None` disables.
    pub index: Option<String>,
    pub dotfiles: Dotfiles,
    /// How long a cached file is served before it is checked against the
    /// disk again (a `stat`); zero checks on every request.
    pub revalidate: Duration,
}

impl StaticMount {
    /// A mount of `dir` with the defaults (`etag`, `index.html`, dotfiles
    /// ignored). Fails when `dir` is not a directory.
    ///
    /// ```
    /// let m = httpy_core::StaticMount::new(std::env::temp_dir()).unwrap();
    /// assert!(m.root.is_absolute());
    /// ```
    pub fn new(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(dir)?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(Self {
            root,
            max_age: None,
            immutable: false,
            etag: true,
            index: Some("index.html".into()),
            dotfiles: Dotfiles::Ignore,
            revalidate: file_cache::DEFAULT_REVALIDATE,
        })
    }
}

/// The request facts a file response depends on, taken before the request
/// itself is handed to the embedder.
#[derive(Default, Clone)]
pub(crate) struct ReqFacts {
    pub is_head: bool,
    pub is_get: bool,
    pub headers: HeaderMap,
}

pub(crate) const KEPT_LEN: usize = 5;

/// The request fields [`ReqFacts`] keeps (the own HTTP/1.1 driver notes
/// where each is while parsing: `dispatch::head`).
pub(crate) const KEPT: [HeaderName; KEPT_LEN] = [
    RANGE,
    IF_RANGE,
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    ACCEPT_ENCODING,
];

impl ReqFacts {
    pub(crate) fn of<B>(req: &http::Request<B>) -> Self {
        let mut headers = HeaderMap::new();
        for name in KEPT {
            if let Some(v) = req.headers().get(&name) {
                headers.insert(name, v.clone());
            }
        }
        Self {
            is_head: req.method() == http::Method::HEAD,
            is_get: req.method() == http::Method::GET,
            headers,
        }
    }

    pub(crate) fn accept_encoding(&self) -> Option<&HeaderValue> {
        self.headers.get(ACCEPT_ENCODING)
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<ResBody> {
    let mut res = Response::new(ResBody::full(Bytes::from_static(text.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

pub(crate) fn not_found() -> Response<ResBody> {
    plain(StatusCode::NOT_FOUND, "Not Found")
}

/// Turns the decoded rest of a mount's URL into a path under `root`, or
/// `Err(status)` when it must not be served. Every segment is checked:
/// `..`, `.`, backslashes, NUL and (unless allowed) dot-files are refused;
/// a leading `/` cannot make the path absolute because segments are joined
/// one by one.
pub(crate) fn resolve(mount: &StaticMount, rel: &str) -> Result<PathBuf, StatusCode> {
    let mut path = mount.root.clone();
    for seg in rel.split('/') {
        if seg.is_empty() {
            continue;
        }
        if seg == "." || seg == ".." || seg.contains(['\\', '\0']) || seg.contains('\u{FFFD}') {
            return Err(StatusCode::NOT_FOUND);
        }
        if seg.starts_with('.') {
            match mount.dotfiles {
                Dotfiles::Allow => {}
                Dotfiles::Ignore => return Err(StatusCode::NOT_FOUND),
                Dotfiles::Deny => return Err(StatusCode::FORBIDDEN),
            }
        }
        path.push(seg);
    }
    Ok(path)
}

/// Serves `rel` (the decoded catch-all of the mount's route), from `cache`
/// when the file is there and fresh, compressed per `compression`.
pub(crate) async fn serve_mount(
    cache: &FileCache,
    mount: &StaticMount,
    rel: &str,
    facts: &ReqFacts,
    compression: Option<&CompressConfig>,
) -> Response<ResBody> {
    let path = match resolve(mount, rel) {
        Ok(p) => p,
        Err(StatusCode::FORBIDDEN) => return plain(StatusCode::FORBIDDEN, "Forbidden"),
        Err(_) => return not_found(),
    };
    let key = cache_key(mount, &path);
    // A file that changes under a response being made is resolved again
    // once; a second failure is a 404.
    for _ in 0..2 {
        let Some(res) = cache.get(&key, mount.revalidate, || load_mount(mount, &path)) else {
            return not_found();
        };
        match respond(
            &res,
            StatusCode::OK,
            cache_control(mount),
            facts,
            mount.etag,
        ) {
            Ok(r) => return compress_mount(cache, &key, &res, r, facts, compression).await,
            Err(Stale) => cache.remove(&key),
        }
    }
    not_found()
}

/// Compression of a mount's response: the whole held file gets its
/// compressed forms made once and kept with the entry (charged to the
/// cache's bounds); anything else (siblings, ranges, streamed files, 304)
/// goes the general way.
async fn compress_mount(
    cache: &FileCache,
    key: &[u8],
    res: &Arc<Resolved>,
    r: Response<ResBody>,
    facts: &ReqFacts,
    compression: Option<&CompressConfig>,
) -> Response<ResBody> {
    let Some(cfg) = compression else {
        return r;
    };
    let accept = facts.accept_encoding();
    let held = match (&res.file.bytes, r.body()) {
        (Some(h), ResBody::Full(Some(b))) if h.len() == b.len() => h,
        // A HEAD of a held file: its encoded form (made once, as for a
        // GET) gives the length the GET would declare.
        (Some(h), ResBody::Full(None)) if facts.is_head => h,
        _ => return crate::respond::compress::apply(cfg, r, accept, facts.is_head).await,
    };
    if r.status() != StatusCode::OK || r.headers().contains_key(CONTENT_ENCODING) {
        return crate::respond::compress::apply(cfg, r, accept, facts.is_head).await;
    }
    let (mut parts, _) = r.into_parts();
    let (body, added) = crate::respond::compress::apply_kept(
        cfg,
        parts.status,
        &mut parts.headers,
        held,
        &res.encoded,
        accept,
    )
    .await;
    cache.grow(key, res, added);
    if facts.is_head {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        return Response::from_parts(parts, ResBody::Full(None));
    }
    Response::from_parts(parts, ResBody::full(body))
}

/// The cache key of a resolved path: the path itself, then what else
/// decides which file it names and whether it may be served (the length of
/// the mount's root, a prefix of the path, and its index file). A path
/// holds no NUL, so the parts cannot run into each other.
fn cache_key(mount: &StaticMount, path: &Path) -> Vec<u8> {
    let path = path.as_os_str().as_encoded_bytes();
    let index = mount.index.as_deref().unwrap_or("").as_bytes();
    let root_len = mount.root.as_os_str().len() as u64;
    let mut key = Vec::with_capacity(path.len() + index.len() + 10);
    key.extend_from_slice(path);
    key.push(0);
    key.extend_from_slice(&root_len.to_le_bytes());
    key.extend_from_slice(index);
    key
}

/// Finds the file `path` names under the mount (the index file for a
/// directory), refusing symlinks that lead out of the root.
fn load_mount(mount: &StaticMount, path: &Path) -> Option<Resolved> {
    let mut path = path.to_path_buf();
    if std::fs::metadata(&path).ok()?.is_dir() {
        path.push(mount.index.as_ref()?);
    }
    // Symlinks inside the root are followed, but never out of it.
    if !file_cache::inside(&path, &mount.root) {
        return None;
    }
    Resolved::load(path, Some(&mount.root), true, |_| true)
}

fn cache_control(mount: &StaticMount) -> HeaderMap {
    let mut extra = HeaderMap::new();
    if let Some(age) = mount.max_age {
        let cc = if mount.immutable {
            format!("public, max-age={age}, immutable")
        } else {
            format!("public, max-age={age}")
        };
        if let Ok(v) = HeaderValue::from_str(&cc) {
            extra.insert(CACHE_CONTROL, v);
        }
    } else if mount.immutable {
        extra.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    }
    extra
}

/// Serves the file at `path` (`Response.file`): `status` and `headers` come
/// from the handler; the file's own headers fill in what they leave unset.
/// Not cached: the path is the handler's, and it may name any file.
pub(crate) fn serve_file(
    path: &Path,
    status: StatusCode,
    headers: HeaderMap,
    facts: &ReqFacts,
) -> Response<ResBody> {
    for _ in 0..2 {
        let wanted = |c| accepts(facts.accept_encoding(), c);
        let Some(res) = Resolved::load(path.to_path_buf(), None, false, wanted) else {
            return not_found();
        };
        if let Ok(r) = respond(&res, status, headers.clone(), facts, true) {
            return r;
        }
    }
    not_found()
}

fn opaque(tag: &str) -> &str {
    tag.trim().strip_prefix("W/").unwrap_or(tag.trim())
}

/// `If-None-Match` uses the weak comparison (RFC 9110 13.1.2).
fn none_match(header: &str, etag: &str) -> bool {
    header.trim() == "*" || header.split(',').any(|t| opaque(t) == opaque(etag))
}

fn accepts(accept: Option<&HeaderValue>, c: Coding) -> bool {
    let only = CompressConfig {
        gzip: c == Coding::Gzip,
        br: c == Coding::Br,
        zstd: c == Coding::Zstd,
        ..Default::default()
    };
    only.negotiate(accept.and_then(|v| v.to_str().ok())) == Some(c)
}

/// One satisfiable range, or why there is none.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeSpec {
    /// Serve the whole file (no header, a header to ignore, or several ranges).
    Whole,
    /// Inclusive byte range.
    Part(u64, u64),
    Unsatisfiable,
}

/// Parses `Range` for a file of `len` bytes (RFC 9110 14.2). Malformed
/// headers and other units are ignored (whole file); several ranges are
/// answered with the whole file rather than a multipart body.
pub(crate) fn parse_range(header: &str, len: u64) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeSpec::Whole;
    };
    if spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix) {
            None => RangeSpec::Whole,
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if len == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Part(len.saturating_sub(n), len - 1),
        },
        (start, end) => {
            let Some(start) = num(start) else {
                return RangeSpec::Whole;
            };
            let end = if end.is_empty() {
                None
            } else {
                match num(end) {
                    Some(e) if e >= start => Some(e),
                    _ => return RangeSpec::Whole,
                }
            };
            if start >= len {
                return RangeSpec::Unsatisfiable;
            }
            RangeSpec::Part(start, end.unwrap_or(len - 1).min(len - 1))
        }
    }
}

/// The file changed between the moment it was described and the moment
/// its bytes were to be read.
struct Stale;

/// The response for `res`: validators, conditionals, range and body.
fn respond(
    res: &Resolved,
    status: StatusCode,
    mut headers: HeaderMap,
    facts: &ReqFacts,
    use_etag: bool,
) -> Result<Response<ResBody>, Stale> {
    if !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, res.content_type.clone());
    }
    let range_header = facts.headers.get(RANGE).and_then(|v| v.to_str().ok());

    // A precompressed sibling replaces the file when the client takes it
    // (not for ranges: those address the identity bytes).
    let mut file = &res.file;
    if range_header.is_none() && status == StatusCode::OK {
        if let Some((c, sibling)) = res
            .siblings
            .iter()
            .find(|(c, _)| accepts(facts.accept_encoding(), *c))
        {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(c.token()));
            file = sibling;
        }
    }
    if res.compressible {
        crate::respond::compress::add_vary(&mut headers);
    }

    let len = file.len;
    let etag = file.etag.to_str().unwrap_or_default();
    if use_etag && !headers.contains_key(ETAG) {
        headers.insert(ETAG, file.etag.clone());
    }
    if let Some(v) = &file.last_modified {
        if !headers.contains_key(LAST_MODIFIED) {
            headers.insert(LAST_MODIFIED, v.clone());
        }
    }
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));

    // Conditional GET/HEAD: If-None-Match wins over If-Modified-Since.
    if status == StatusCode::OK && (facts.is_get || facts.is_head) {
        let not_modified = if let Some(inm) = facts
            .headers
            .get(IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
        {
            use_etag && none_match(inm, etag)
        } else if let (Some(ims), Some(m)) = (
            facts
                .headers
                .get(IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| httpdate::parse_http_date(s).ok()),
            file.modified,
        ) {
            secs(m) <= secs(ims)
        } else {
            false
        };
        if not_modified {
            let mut res = Response::new(ResBody::Full(None));
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            headers.remove(CONTENT_TYPE);
            headers.remove(CONTENT_ENCODING);
            *res.headers_mut() = headers;
            return Ok(res);
        }
    }

    let mut range = match range_header {
        Some(h) if status == StatusCode::OK && facts.is_get => parse_range(h, len),
        _ => RangeSpec::Whole,
    };
    // If-Range: the range applies only to the representation it names
    // (a strong ETag or the exact Last-Modified date).
    if range != RangeSpec::Whole {
        if let Some(ir) = facts.headers.get(IF_RANGE).and_then(|v| v.to_str().ok()) {
            let ir = ir.trim();
            let same = if ir.starts_with('"') {
                use_etag && ir == etag
            } else {
                match (httpdate::parse_http_date(ir).ok(), file.modified) {
                    (Some(d), Some(m)) => secs(d) == secs(m),
                    _ => false,
                }
            };
            if !same {
                range = RangeSpec::Whole;
            }
        }
    }

    let (status, start, count) = match range {
        RangeSpec::Whole => (status, 0, len),
        RangeSpec::Part(a, b) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{len}")) {
                headers.insert(CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        RangeSpec::Unsatisfiable => {
            let mut res = plain(StatusCode::RANGE_NOT_SATISFIABLE, "Range Not Satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                res.headers_mut().insert(CONTENT_RANGE, v);
            }
            res.headers_mut()
                .insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return Ok(res);
        }
    };

    let body = if facts.is_head {
        let length = if count == len {
            file.length.clone()
        } else {
            HeaderValue::from(count)
        };
        headers.insert(CONTENT_LENGTH, length);
        ResBody::Full(None)
    } else {
        body_of(file, start, count)?
    };
    if headers.contains_key(CONTENT_ENCODING) && !headers.contains_key(VARY) {
        crate::respond::compress::add_vary(&mut headers);
    }
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    Ok(res)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The bytes `start..start+count` of `file`: a view of the held bytes,
/// otherwise read from the file (whole when small, else streamed by a task
/// that waits for the socket between chunks), once the open file is found
/// to be the one `file` describes.
fn body_of(file: &FileData, start: u64, count: u64) -> Result<ResBody, Stale> {
    if let Some(b) = &file.bytes {
        return Ok(ResBody::full(
            b.slice(start as usize..(start + count) as usize),
        ));
    }
    let mut f = File::open(&file.path).map_err(|_| Stale)?;
    match f.metadata() {
        Ok(m) if Stamp::of(&m) == file.stamp => {}
        _ => return Err(Stale),
    }
    if start > 0 {
        f.seek(SeekFrom::Start(start)).map_err(|_| Stale)?;
    }
    if count <= file_cache::MAX_FILE {
        let mut buf = vec![0u8; count as usize];
        f.read_exact(&mut buf).map_err(|_| Stale)?;
        return Ok(ResBody::full(buf));
    }
    let (tx, rx) = body_channel(Some(count), None);
    tokio::spawn(async move {
        let mut left = count;
        while left > 0 {
            let n = left.min(CHUNK) as usize;
            let mut buf = BytesMut::zeroed(n);
            if let Err(e) = f.read_exact(&mut buf) {
                // The file shrank or failed under us: abort rather than
                // send fewer bytes than announced.
                tx.fail(e).await;
                return;
            }
            left -= n as u64;
            if !tx.write(buf.freeze()).await {
                return;
            }
        }
    });
    Ok(ResBody::Stream(rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeSpec::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeSpec::Part(90, 99));
        assert_eq!(parse_range("bytes=-500", 100), RangeSpec::Part(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), RangeSpec::Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeSpec::Whole);
        assert_eq!(parse_range("bytes=9-2", 100), RangeSpec::Whole);
        assert_eq!(parse_range("bytes=abc", 100), RangeSpec::Whole);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Whole);
        assert_eq!(parse_range("bytes=+1-2", 100), RangeSpec::Whole);
    }

    #[test]
    fn traversal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = StaticMount::new(dir.path()).unwrap();
        for bad in [
            "../x",
            "a/../../x",
            "..",
            "a/./b",
            "a\\..\\b",
            "a\0b",
            ".env",
            "a/.git/config",
        ] {
            assert!(resolve(&m, bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            resolve(&m, "/etc/passwd").unwrap(),
            m.root.join("etc/passwd")
        );
        assert_eq!(resolve(&m, "a//b.txt").unwrap(), m.root.join("a/b.txt"));
        let deny = StaticMount {
            dotfiles: Dotfiles::Deny,
            ..m.clone()
        };
        assert_eq!(resolve(&deny, ".env"), Err(StatusCode::FORBIDDEN));
    }

    #[test]
    fn etags_compare_weakly_for_none_match() {
        assert!(none_match("W/\"a\", \"b\"", "\"a\""));
        assert!(none_match("*", "\"a\""));
        assert!(!none_match("\"c\"", "\"a\""));
    }

    proptest::proptest! {
        /// Any header, any length: a part is always inside the file, and
        /// well-formed single ranges mean what RFC 9110 says.
        #[test]
        fn any_range_header_stays_inside_the_file(header in "(?s).{0,30}", len in 0u64..1_000_000) {
            if let RangeSpec::Part(a, b) = parse_range(&header, len) {
                proptest::prop_assert!(a <= b && b < len);
            }
        }

        #[test]
        fn well_formed_ranges_mean_what_they_say(
            start in 0u64..2000,
            span in proptest::option::of(0u64..2000),
            suffix in 0u64..3000,
            len in 0u64..2000,
        ) {
            let header = match span {
                Some(s) => format!("bytes={start}-{}", start + s),
                None => format!("bytes={start}-"),
            };
            let want = if start >= len {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Part(start, span.map_or(len - 1, |s| (start + s).min(len - 1)))
            };
            proptest::prop_assert_eq!(parse_range(&header, len), want);
            let want = match (suffix, len) {
                (0, _) | (_, 0) => RangeSpec::Unsatisfiable,
                (n, len) => RangeSpec::Part(len.saturating_sub(n), len - 1),
            };
            proptest::prop_assert_eq!(parse_range(&format!("bytes=-{suffix}"), len), want);
        }
    }
}
