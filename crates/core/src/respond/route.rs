//! Routes the core answers itself, wholly or partly: the two hooks the
//! request service calls around the embedder.
//!
//! [`before_embedder`] answers what needs no handler (a static mount, a cache
//! hit); [`after_embedder`] turns the embedder's reply into the response on the
//! wire (a whole body, a file or a stream), fills the route cache and applies
//! compression. Keeping both here leaves `service.rs` with two small calls.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, COOKIE};
use http::{HeaderMap, Response};
use std::sync::Arc;
use std::time::Duration;

use super::compress;
use super::Direct;
use crate::body::ResBody;
use crate::embedder::reply::{PushList, Reply, Source};
use crate::observe::stats::Stats;
use crate::respond::cache::{Fill, Lookup, RouteCache, Variant};
pub(crate) use crate::respond::static_files::ReqFacts;
use crate::respond::static_files::{self, StaticMount};

/// What the core does for a route besides handing it to the embedder.
#[derive(Debug, Clone)]
pub enum RouteExtra {
    /// A `serveStatic` mount: the route's last parameter is the file path
    /// under the mount. Answered directly, never by the embedder.
    Static(StaticMount),
    /// Cache the route's 200 GET responses for `ttl`, keyed also by the
    /// values of `key_headers`.
    Cache {
        ttl: Duration,
        key_headers: Vec<HeaderName>,
    },
}

impl RouteExtra {
    /// A route cache; `key_headers` are header names (any case).
    pub fn cache(ttl: Duration, key_headers: &[String]) -> Result<Self, String> {
        let key_headers = key_headers
            .iter()
            .map(|n| {
                HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes())
                    .map_err(|_| format!("{n:?} is not a header name"))
            })
            .collect::<Result<_, _>>()?;
        Ok(RouteExtra::Cache { ttl, key_headers })
    }
}

/// Headers that carry who the client is. A shared cache must not answer a
/// request bearing them with a response stored for someone else (RFC 9111
/// §3.5), so such requests bypass the route cache unless the route keys
/// its entries by that header.
const CREDENTIALS: [HeaderName; 2] = [AUTHORIZATION, COOKIE];

/// The cache key of a request, or `None` when it must bypass the cache
/// because it carries credentials the key does not include.
fn cache_key(
    path: &str,
    query: &str,
    headers: &HeaderMap,
    key_headers: &[HeaderName],
) -> Option<String> {
    if CREDENTIALS
        .iter()
        .any(|c| headers.contains_key(c) && !key_headers.contains(c))
    {
        return None;
    }
    let mut key = RouteCache::key(path, query);
    // Each keyed header adds "\n" + its values; NUL and LF cannot occur in a
    // header value, so distinct value lists never give one key. A value with
    // bytes outside visible ASCII bypasses the cache rather than being
    // folded into a key another value could share.
    for name in key_headers {
        key.push('\n');
        for (i, v) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                key.push('\0');
            }
            key.push_str(v.to_str().ok()?);
        }
    }
    Some(key)
}

/// A miss of a cached route that this request will fill.
pub(crate) struct CacheFill {
    fill: Fill,
    ttl: Duration,
    /// The request's headers, for the values of the response's `Vary`.
    headers: HeaderMap,
}

pub(crate) enum Pre {
    Done(Response<ResBody>),
    Continue(Option<CacheFill>),
}

/// Answers a request directly when its route allows; otherwise says how to
/// continue.
pub(crate) async fn before_embedder(
    direct: &Direct,
    extra: &RouteExtra,
    params: &[String],
    path: &str,
    query: &str,
    headers: &HeaderMap,
    facts: &ReqFacts,
) -> Pre {
    match extra {
        RouteExtra::Static(mount) => {
            Stats::inc(&direct.stats.direct_responses);
            let rel = params.last().map(String::as_str).unwrap_or("");
            let cfg = direct.compression.as_ref();
            let res = static_files::serve_mount(&direct.files, mount, rel, facts, cfg);
            Pre::Done(res.await)
        }
        RouteExtra::Cache { ttl, key_headers } => {
            if !facts.is_get && !facts.is_head {
                return Pre::Continue(None);
            }
            let Some(key) = cache_key(path, query, headers, key_headers) else {
                return Pre::Continue(None);
            };
            // A waiter looks again once the filler is done; after a second
            // wait it stops queueing behind others and asks the handler.
            for _ in 0..2 {
                match direct.cache.lookup(&key, headers, facts.is_get) {
                    Lookup::Hit(v) => {
                        Stats::inc(&direct.stats.direct_responses);
                        return Pre::Done(hit_response(direct, &v, facts).await);
                    }
                    Lookup::Fill(fill) => {
                        return Pre::Continue(Some(CacheFill {
                            fill,
                            ttl: *ttl,
                            headers: headers.clone(),
                        }))
                    }
                    Lookup::Wait(mut rx) => {
                        let _ = tokio::time::timeout(direct.request_timeout, rx.changed()).await;
                    }
                }
            }
            Pre::Continue(None)
        }
    }
}

/// The stored answer of a cached route that [`before_embedder`] would give
/// as a hit to an uncompressed `GET` with no `Authorization` or `Cookie`
/// field (`credentials`: the request has one), when the route keys its
/// entries by no header; `None` sends the request the general way.
pub(crate) fn stored_hit(
    direct: &Direct,
    extra: &RouteExtra,
    path: &str,
    query: &str,
    credentials: bool,
) -> Option<Arc<Variant>> {
    match extra {
        RouteExtra::Cache { key_headers, .. } if key_headers.is_empty() && !credentials => {
            direct.cache.lookup_plain(&RouteCache::key(path, query))
        }
        _ => None,
    }
}

/// The response for the embedder's reply.
pub(crate) async fn after_embedder(
    direct: &Direct,
    reply: Reply,
    facts: &ReqFacts,
    fill: Option<CacheFill>,
) -> Response<ResBody> {
    let Reply {
        status,
        mut headers,
        body,
        push,
        source,
    } = reply;
    let res = match source {
        Source::Bytes => {
            if let Some(f) = fill {
                direct
                    .cache
                    .store(f.fill, &f.headers, status, &headers, &body, f.ttl);
            }
            // The length is ours to set from the actual body; a stale one
            // from a middleware that rewrote the body must not reach the wire.
            // A HEAD answer without a body is the exception: its length is
            // the handler's word for what a GET would carry (RFC 9110
            // §9.3.2), kept when it is one well-formed number. Cost: a
            // branch on a flag already loaded.
            let kept = if facts.is_head && body.is_empty() {
                head_length(&headers)
            } else {
                None
            };
            headers.remove(CONTENT_LENGTH);
            if let Some(v) = kept {
                headers.insert(CONTENT_LENGTH, v);
            }
            let mut res = Response::new(ResBody::full(body));
            *res.status_mut() = status;
            *res.headers_mut() = headers;
            res
        }
        Source::File(path) => {
            headers.remove(CONTENT_LENGTH);
            static_files::serve_file(&path, status, headers, facts)
        }
        Source::Stream(rx) => {
            headers.remove(CONTENT_LENGTH);
            let mut res = Response::new(ResBody::Stream(rx));
            *res.status_mut() = status;
            *res.headers_mut() = headers;
            res
        }
    };
    let mut res = compress_response(direct, res, facts).await;
    if !push.is_empty() {
        res.extensions_mut().insert(PushList(push));
    }
    res
}

/// A handler's `Content-Length` for a HEAD answer: kept only when it is a
/// single field of 1*DIGIT (RFC 9110 §8.6) that fits in a u64, written
/// back without leading zeros; anything else is dropped, so the answer
/// then carries no length rather than a wrong one.
fn head_length(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut all = headers.get_all(CONTENT_LENGTH).iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let digits = v.as_bytes();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(HeaderValue::from(n))
}

async fn compress_response(
    direct: &Direct,
    res: Response<ResBody>,
    facts: &ReqFacts,
) -> Response<ResBody> {
    match &direct.compression {
        Some(cfg) => compress::apply(cfg, res, facts.accept_encoding(), facts.is_head).await,
        None => res,
    }
}

/// A cache hit, compressed from the variant's stored encodings when the
/// client accepts one (each encoding is made once per variant).
async fn hit_response(direct: &Direct, v: &Arc<Variant>, facts: &ReqFacts) -> Response<ResBody> {
    let mut headers = v.headers.clone();
    headers.remove(CONTENT_LENGTH);
    let mut body = v.body.clone();
    if let Some(cfg) = &direct.compression {
        let accept = facts.accept_encoding();
        (body, _) =
            compress::apply_kept(cfg, v.status, &mut headers, &body, &v.encoded, accept).await;
    }
    if facts.is_head {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        body = Bytes::new();
    }
    let mut res = Response::new(ResBody::full(body));
    *res.status_mut() = v.status;
    *res.headers_mut() = headers;
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::respond::cache::tests::hm;

    #[test]
    fn a_head_answers_length_is_kept_only_when_well_formed() {
        let len = |fields: &[(&str, &str)]| {
            head_length(&hm(fields)).map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(len(&[("content-length", "1234")]).as_deref(), Some("1234"));
        assert_eq!(len(&[("content-length", "0")]).as_deref(), Some("0"));
        assert_eq!(len(&[("content-length", "007")]).as_deref(), Some("7"));
        assert_eq!(len(&[]), None);
        for bad in [
            "",
            "abc",
            "-1",
            "+5",
            "1.5",
            "1 2",
            "0x10",
            "99999999999999999999999",
        ] {
            assert_eq!(len(&[("content-length", bad)]), None, "{bad:?}");
        }
        // Two fields, even equal ones, are not one length.
        assert_eq!(
            len(&[("content-length", "5"), ("content-length", "5")]),
            None
        );
    }

    #[test]
    fn credentials_bypass_unless_keyed() {
        let none: Vec<HeaderName> = Vec::new();
        assert!(cache_key("/me", "", &hm(&[]), &none).is_some());
        assert!(cache_key("/me", "", &hm(&[("authorization", "Bearer a")]), &none).is_none());
        assert!(cache_key("/me", "", &hm(&[("cookie", "s=1")]), &none).is_none());
        let auth = vec![AUTHORIZATION];
        let a = cache_key("/me", "", &hm(&[("authorization", "Bearer a")]), &auth).unwrap();
        let b = cache_key("/me", "", &hm(&[("authorization", "Bearer b")]), &auth).unwrap();
        let anon = cache_key("/me", "", &hm(&[]), &auth).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, anon);
        // Keyed by Authorization only: a Cookie still bypasses.
        let both = hm(&[("authorization", "Bearer a"), ("cookie", "s=1")]);
        assert!(cache_key("/me", "", &both, &auth).is_none());
    }

    #[test]
    fn keyed_values_do_not_collide() {
        let k = vec![COOKIE, HeaderName::from_static("x-tenant")];
        let one = cache_key("/a", "q", &hm(&[("cookie", "a"), ("x-tenant", "b")]), &k).unwrap();
        // Moving a value from one keyed header to the other changes the key.
        let swapped = cache_key("/a", "q", &hm(&[("cookie", "b"), ("x-tenant", "a")]), &k).unwrap();
        assert_ne!(one, swapped);
        let mut opaque = HeaderMap::new();
        opaque.insert(COOKIE, HeaderValue::from_bytes(b"s=\xff").unwrap());
        assert!(cache_key("/a", "", &opaque, &k).is_none());
    }
}
