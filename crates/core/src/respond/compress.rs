//! Response compression: negotiation from `Accept-Encoding`, the decision
//! whether a response is worth compressing, and the encoders (gzip, brotli,
//! zstd) used whole or chunk by chunk.
//!
//! It runs on the Tokio workers, never on the JS thread. A large whole body
//! is compressed on the blocking pool so that one big response does not stall
//! the other connections of its worker; streamed bodies are compressed one
//! chunk at a time as the socket takes them.

use bytes::Bytes;
use http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, VARY,
};
use http::{HeaderMap, Response, StatusCode};

use crate::body::encoder::{compress_all, Coding, Encoder};
use crate::body::{Compressed, ResBody};

/// Bodies at least this large are compressed on the blocking pool.
const OFFLOAD_MIN: usize = 128 * 1024;

pub use crate::config::compression::CompressConfig;

const DEFAULT_TYPES: &[&str] = &[
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/x-javascript",
    "application/wasm",
    "image/svg+xml",
];

impl CompressConfig {
    fn enabled(&self, c: Coding) -> bool {
        match c {
            Coding::Gzip => self.gzip,
            Coding::Br => self.br,
            Coding::Zstd => self.zstd,
        }
    }

    /// True when `content_type` names a type worth compressing.
    ///
    /// ```
    /// let c = httpy_core::CompressConfig::default();
    /// assert!(c.compressible("application/json; charset=utf-8"));
    /// assert!(!c.compressible("image/png"));
    /// ```
    pub fn compressible(&self, content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence.is_empty() {
            return false;
        }
        let matches = |t: &str| {
            let t = t.trim().to_ascii_lowercase();
            if let Some(prefix) = t.strip_suffix('*') {
                essence.starts_with(prefix)
            } else if t.ends_with('/') {
                essence.starts_with(&t)
            } else {
                essence == t
            }
        };
        if self.types.is_empty() {
            DEFAULT_TYPES.iter().any(|t| matches(t))
                || essence.ends_with("+json")
                || essence.ends_with("+xml")
        } else {
            self.types.iter().any(|t| matches(t))
        }
    }

    /// Picks the coding for a request's `Accept-Encoding`; `None` means
    /// identity (no header, nothing acceptable, or a header that cannot be
    /// parsed).
    ///
    /// ```
    /// use httpy_core::{Coding, CompressConfig};
    /// let c = CompressConfig::default();
    /// assert_eq!(c.negotiate(Some("gzip;q=0.5, br")), Some(Coding::Br));
    /// assert_eq!(c.negotiate(Some("br;q=0, gzip")), Some(Coding::Gzip));
    /// assert_eq!(c.negotiate(Some(";;;q=zz")), None);
    /// ```
    pub fn negotiate(&self, accept: Option<&str>) -> Option<Coding> {
        let accept = accept?;
        let mut q_of = [None::<u16>; 3]; // gzip, br, zstd
        let mut star = None::<u16>;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            let mut q = Some(1000u16);
            for p in parts {
                let p = p.trim();
                if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                    q = parse_q(v);
                }
            }
            // An entry with an unreadable weight is ignored as a whole.
            let Some(q) = q else { continue };
            let slot = match name.as_str() {
                "gzip" | "x-gzip" => &mut q_of[0],
                "br" => &mut q_of[1],
                "zstd" => &mut q_of[2],
                "*" => &mut star,
                _ => continue,
            };
            *slot = Some(q);
        }
        // Server preference on equal weights: zstd and brotli compress
        // better than gzip at the levels used here.
        let order = [(Coding::Zstd, 2), (Coding::Br, 1), (Coding::Gzip, 0)];
        let mut best: Option<(Coding, u16)> = None;
        for (c, i) in order {
            if !self.enabled(c) {
                continue;
            }
            let q = q_of[i].or(star).unwrap_or(0);
            if q > 0 && best.is_none_or(|(_, bq)| q > bq) {
                best = Some((c, q));
            }
        }
        best.map(|(c, _)| c)
    }

    fn level_for(&self, c: Coding) -> u32 {
        match (c, self.level) {
            (Coding::Gzip, Some(l)) => l.clamp(1, 9),
            (Coding::Br, Some(l)) => l.clamp(0, 11),
            (Coding::Zstd, Some(l)) => l.clamp(1, 19),
            (Coding::Gzip, None) => 5,
            (Coding::Br, None) => 4,
            (Coding::Zstd, None) => 3,
        }
    }
}

/// RFC 9110 `qvalue`: `0`, `1`, or `0.` / `1.` with up to three digits.
fn parse_q(v: &str) -> Option<u16> {
    let v = v.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = match int {
        "0" => 0u16,
        "1" => 1000,
        _ => return None,
    };
    let mut milli = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        milli += (b - b'0') as u16 * [100, 10, 1][i];
    }
    if whole == 1000 && milli > 0 {
        return None;
    }
    Some(whole + milli)
}

/// Adds `Accept-Encoding` to `Vary` unless it is already named there.
pub(crate) fn add_vary(headers: &mut HeaderMap) {
    let present = headers.get_all(VARY).iter().any(|v| {
        v.to_str()
            .map(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("accept-encoding") || t.trim() == "*")
            })
            .unwrap_or(false)
    });
    if !present {
        headers.append(VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// What to do with one response.
pub(crate) enum Plan {
    /// Leave it alone (not eligible).
    Skip,
    /// Eligible, but the client takes identity: only add `Vary`.
    VaryOnly,
    Compress(Coding, u32),
}

/// Decides for a response with these headers and (if known) this length.
/// A HEAD request is decided as its GET would be (RFC 9110 §9.3.2: the
/// same header fields), so it names the same coding; the callers then
/// give it the encoded form's length where it is known, and none
/// otherwise.
pub(crate) fn plan(
    cfg: &CompressConfig,
    status: StatusCode,
    headers: &HeaderMap,
    len: Option<u64>,
    accept: Option<&HeaderValue>,
) -> Plan {
    if !status.is_success()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::PARTIAL_CONTENT
    {
        return Plan::Skip;
    }
    if headers.contains_key(CONTENT_ENCODING) || headers.contains_key(CONTENT_RANGE) {
        return Plan::Skip;
    }
    if headers
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("no-transform"))
    {
        return Plan::Skip;
    }
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return Plan::Skip;
    };
    // The length first: it is one comparison, the type test lowercases.
    if len.is_some_and(|n| n < cfg.min_size as u64) || !cfg.compressible(ct) {
        return Plan::Skip;
    }
    match cfg.negotiate(accept.and_then(|v| v.to_str().ok())) {
        Some(c) => Plan::Compress(c, cfg.level_for(c)),
        None => Plan::VaryOnly,
    }
}

/// True when compression leaves a whole response of this status, these
/// headers and `len` body bytes exactly as it is, for every request: the
/// [`plan`] is `Skip`, which depends on neither `Accept-Encoding` nor the
/// method. The short ways that write answers without the general path
/// (stored answers, replies written from the embedder's thread) ask it.
/// Costs a few header lookups; a short body answers after one comparison.
pub(crate) fn leaves_alone(
    cfg: &CompressConfig,
    status: StatusCode,
    headers: &HeaderMap,
    len: usize,
) -> bool {
    matches!(
        plan(cfg, status, headers, Some(len as u64), None),
        Plan::Skip
    )
}

/// The `Content-Length` a bodiless answer declares, when it is one number.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

pub(crate) fn mark(headers: &mut HeaderMap, c: Coding) {
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static(c.token()));
    headers.remove(CONTENT_LENGTH);
    // The compressed bytes are a different representation: a strong
    // validator of the identity bytes would be wrong for them.
    if let Some(tag) = headers.get(ETAG).and_then(|v| v.to_str().ok()) {
        if !tag.starts_with("W/") {
            if let Ok(weak) = HeaderValue::from_str(&format!("W/{tag}")) {
                headers.insert(ETAG, weak);
            }
        }
    }
}

/// The compressed forms of one kept body (a route cache variant, a held
/// static file), each made once and then reused.
#[derive(Default)]
pub(crate) struct Encodings(parking_lot::Mutex<Vec<(Coding, Bytes)>>);

impl Encodings {
    /// The `c` form of `data`, made now (on the blocking pool when large)
    /// if no earlier call made it. Also returns how many bytes this call
    /// added to the kept forms.
    async fn get_or_make(&self, c: Coding, level: u32, data: &Bytes) -> Option<(Bytes, usize)> {
        if let Some((_, z)) = self.0.lock().iter().find(|(k, _)| *k == c) {
            return Some((z.clone(), 0));
        }
        let z = if data.len() >= OFFLOAD_MIN {
            let d = data.clone();
            tokio::task::spawn_blocking(move || compress_all(c, level, &d).ok())
                .await
                .ok()
                .flatten()?
        } else {
            compress_all(c, level, data).ok()?
        };
        let mut kept = self.0.lock();
        if let Some((_, z)) = kept.iter().find(|(k, _)| *k == c) {
            return Some((z.clone(), 0)); // made meanwhile by another request
        }
        kept.push((c, z.clone()));
        Some((z.clone(), z.len()))
    }
}

/// Compression of a kept whole body: like [`apply`], but each compressed
/// form is made once and kept in `forms`. Returns the body to send and the
/// bytes this call added to `forms` (for a HEAD request too: the caller
/// sends its length and drops it).
pub(crate) async fn apply_kept(
    cfg: &CompressConfig,
    status: StatusCode,
    headers: &mut HeaderMap,
    body: &Bytes,
    forms: &Encodings,
    accept: Option<&HeaderValue>,
) -> (Bytes, usize) {
    let len = Some(body.len() as u64);
    match plan(cfg, status, headers, len, accept) {
        Plan::Skip => (body.clone(), 0),
        Plan::VaryOnly => {
            add_vary(headers);
            (body.clone(), 0)
        }
        Plan::Compress(c, level) => match forms.get_or_make(c, level, body).await {
            Some((z, added)) => {
                add_vary(headers);
                mark(headers, c);
                (z, added)
            }
            None => (body.clone(), 0),
        },
    }
}

/// Applies compression to a finished response when it is eligible. A
/// HEAD answer that carries the GET's body is encoded like the GET, so the
/// length it declares is the encoded one; one without a body (a handler's
/// or a file's declared length only) gets the coding and no length, since
/// the encoded length is not known without the bytes; one that declares
/// no length either is left as it is.
pub(crate) async fn apply(
    cfg: &CompressConfig,
    res: Response<ResBody>,
    accept: Option<&HeaderValue>,
    is_head: bool,
) -> Response<ResBody> {
    let len = match res.body() {
        // A bodiless HEAD answer is judged by the length it declares; one
        // that declares none is left as it is (what its GET would get is
        // not known).
        ResBody::Full(None) if is_head => Some(declared_length(res.headers()).unwrap_or(0)),
        ResBody::Full(b) => Some(b.as_ref().map_or(0, |b| b.len() as u64)),
        ResBody::Stream(_) => http_body::Body::size_hint(res.body()).exact(),
        ResBody::Compressed(_) => return res,
    };
    let (coding, level) = match plan(cfg, res.status(), res.headers(), len, accept) {
        Plan::Skip => return res,
        Plan::VaryOnly => {
            let mut res = res;
            add_vary(res.headers_mut());
            return res;
        }
        Plan::Compress(c, l) => (c, l),
    };
    let (mut parts, body) = res.into_parts();
    add_vary(&mut parts.headers);
    let body = match body {
        ResBody::Full(Some(data)) => {
            let out = if data.len() >= OFFLOAD_MIN {
                let d = data.clone();
                tokio::task::spawn_blocking(move || {
                    compress_all(coding, level, &d).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
            } else {
                compress_all(coding, level, &data).map_err(|e| e.to_string())
            };
            match out {
                Ok(z) => ResBody::full(z),
                // An encoder failure leaves the response as it was.
                Err(_) => return Response::from_parts(parts, ResBody::Full(Some(data))),
            }
        }
        ResBody::Full(None) if is_head => {
            mark(&mut parts.headers, coding);
            return Response::from_parts(parts, ResBody::Full(None));
        }
        ResBody::Full(None) => return Response::from_parts(parts, ResBody::Full(None)),
        other => match Encoder::new(coding, level) {
            Ok(enc) => ResBody::Compressed(Box::new(Compressed {
                inner: other,
                enc: Some(enc),
            })),
            Err(_) => return Response::from_parts(parts, other),
        },
    };
    mark(&mut parts.headers, coding);
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_answer(body: Option<&'static [u8]>, declared: Option<&str>) -> Response<ResBody> {
        let mut res = Response::new(ResBody::Full(body.map(Bytes::from_static)));
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        if let Some(n) = declared {
            h.insert(CONTENT_LENGTH, HeaderValue::from_str(n).unwrap());
        }
        res
    }

    #[test]
    fn a_head_request_names_the_coding_its_get_would_get() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let cfg = CompressConfig::default();
        let gzip = HeaderValue::from_static("gzip");
        let body: &'static [u8] = &[b'x'; 4000];
        // With the GET's body: encoded like the GET, so its length is the encoded one.
        let get = rt.block_on(apply(
            &cfg,
            text_answer(Some(body), None),
            Some(&gzip),
            false,
        ));
        let head = rt.block_on(apply(
            &cfg,
            text_answer(Some(body), None),
            Some(&gzip),
            true,
        ));
        for r in [&get, &head] {
            assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
            assert!(r.headers()[VARY]
                .to_str()
                .unwrap()
                .contains("accept-encoding"));
        }
        let len = |r: &Response<ResBody>| match r.body() {
            ResBody::Full(Some(b)) => b.len(),
            _ => panic!("a whole body was expected"),
        };
        assert_eq!(len(&get), len(&head));
        assert!(len(&head) < body.len());
        // Without a body, only a declared length: the coding, and no length.
        let bare = rt.block_on(apply(
            &cfg,
            text_answer(None, Some("4000")),
            Some(&gzip),
            true,
        ));
        assert_eq!(bare.headers()[CONTENT_ENCODING], "gzip");
        assert!(!bare.headers().contains_key(CONTENT_LENGTH));
        // No body and no declared length: nothing to judge by, left alone.
        let unknown = rt.block_on(apply(&cfg, text_answer(None, None), Some(&gzip), true));
        assert!(!unknown.headers().contains_key(CONTENT_ENCODING));
        // A declared length under `minSize` is left alone, as its GET would be.
        let short = rt.block_on(apply(
            &cfg,
            text_answer(None, Some("10")),
            Some(&gzip),
            true,
        ));
        assert!(!short.headers().contains_key(CONTENT_ENCODING));
        assert_eq!(short.headers()[CONTENT_LENGTH], "10");
        // A client that takes identity gets identity on HEAD too.
        let plain = rt.block_on(apply(&cfg, text_answer(Some(body), None), None, true));
        assert!(!plain.headers().contains_key(CONTENT_ENCODING));
        assert_eq!(len(&plain), body.len());
    }

    #[test]
    fn q_values() {
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.1234"), None);
        assert_eq!(parse_q("abc"), None);
        assert_eq!(parse_q("-1"), None);
    }

    #[test]
    fn negotiation() {
        let c = CompressConfig::default();
        assert_eq!(c.negotiate(None), None);
        assert_eq!(c.negotiate(Some("identity")), None);
        assert_eq!(c.negotiate(Some("gzip, deflate")), Some(Coding::Gzip));
        assert_eq!(c.negotiate(Some("*")), Some(Coding::Zstd));
        assert_eq!(c.negotiate(Some("*;q=0.1, gzip")), Some(Coding::Gzip));
        assert_eq!(c.negotiate(Some("gzip;q=0")), None);
        assert_eq!(c.negotiate(Some("gzip;q=2")), None);
        assert_eq!(c.negotiate(Some("\u{1}\u{2}garbage;;,,")), None);
        let only_gzip = CompressConfig {
            br: false,
            zstd: false,
            ..Default::default()
        };
        assert_eq!(only_gzip.negotiate(Some("br, zstd")), None);
    }

    #[test]
    fn left_alone_only_where_no_request_changes_it() {
        let c = CompressConfig::default();
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, HeaderValue::from_static(v));
            }
            m
        };
        let text = h(&[("content-type", "text/plain")]);
        let ok = StatusCode::OK;
        // Below the threshold, not compressible, or already encoded: as is.
        assert!(leaves_alone(&c, ok, &text, 1023));
        assert!(leaves_alone(
            &c,
            ok,
            &h(&[("content-type", "image/png")]),
            5000
        ));
        assert!(leaves_alone(&c, ok, &h(&[]), 5000));
        let gz = h(&[("content-type", "text/plain"), ("content-encoding", "gzip")]);
        assert!(leaves_alone(&c, ok, &gz, 5000));
        let nt = h(&[
            ("content-type", "text/plain"),
            ("cache-control", "No-Transform"),
        ]);
        assert!(leaves_alone(&c, ok, &nt, 5000));
        assert!(leaves_alone(&c, StatusCode::NOT_FOUND, &text, 5000));
        // Eligible: compressed, or at least `Vary` added, for some request.
        assert!(!leaves_alone(&c, ok, &text, 1024));
        let vary = h(&[("content-type", "text/plain"), ("vary", "accept-encoding")]);
        assert!(!leaves_alone(&c, ok, &vary, 5000));
    }

    #[test]
    fn types() {
        let c = CompressConfig::default();
        assert!(c.compressible("text/html; charset=utf-8"));
        assert!(c.compressible("application/vnd.api+json"));
        assert!(!c.compressible("application/octet-stream"));
        let custom = CompressConfig {
            types: vec!["application/x-custom".into(), "font/*".into()],
            ..Default::default()
        };
        assert!(custom.compressible("font/ttf"));
        assert!(!custom.compressible("text/plain"));
    }
}
