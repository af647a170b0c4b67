//! The native response path: the two hooks the request service calls.
//!
//! [`before_js`] answers what needs no handler (a static mount, a cache
//! hit); [`after_js`] turns the embedder's reply into the response on the
//! wire (a whole body, a file or a stream), fills the route cache and applies
//! compression. Keeping both here leaves `service.rs` with two small calls.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH};
use http::{HeaderMap, Response};
use std::sync::Arc;
use std::time::Duration;

use crate::body::ResBody;
use crate::cache::{Fill, Lookup, RouteCache, Variant};
use crate::compress;
use crate::reply::{PushList, Reply, Source};
use crate::server::Shared;
pub(crate) use crate::static_files::ReqFacts;
use crate::static_files::{self, StaticMount};
use crate::stats::Stats;

/// What the core does for a route besides handing it to the embedder.
#[derive(Debug, Clone)]
pub enum RouteExtra {
    /// A `serveStatic` mount: the route's last parameter is the file path
    /// under the mount. Answered natively, never by JS.
    Static(StaticMount),
    /// Cache the route's 200 GET responses for `ttl`.
    Cache { ttl: Duration },
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

/// Answers a request natively when its route allows; otherwise says how to
/// continue.
pub(crate) async fn before_js(
    shared: &Shared,
    extra: &RouteExtra,
    params: &[String],
    path: &str,
    query: &str,
    headers: &HeaderMap,
    facts: &ReqFacts,
) -> Pre {
    match extra {
        RouteExtra::Static(mount) => {
            Stats::inc(&shared.stats.native_responses);
            let rel = params.last().map(String::as_str).unwrap_or("");
            let cfg = shared.config.compression.as_ref();
            let res = static_files::serve_mount(&shared.files, mount, rel, facts, cfg);
            Pre::Done(res.await)
        }
        RouteExtra::Cache { ttl } => {
            if !facts.is_get && !facts.is_head {
                return Pre::Continue(None);
            }
            let key = RouteCache::key(path, query);
            // A waiter looks again once the filler is done; after a second
            // wait it stops queueing behind others and asks the handler.
            for _ in 0..2 {
                match shared.cache.lookup(&key, headers, facts.is_get) {
                    Lookup::Hit(v) => {
                        Stats::inc(&shared.stats.native_responses);
                        return Pre::Done(hit_response(shared, &v, facts).await);
                    }
                    Lookup::Fill(fill) => {
                        return Pre::Continue(Some(CacheFill {
                            fill,
                            ttl: *ttl,
                            headers: headers.clone(),
                        }))
                    }
                    Lookup::Wait(mut rx) => {
                        let _ =
                            tokio::time::timeout(shared.config.request_timeout, rx.changed()).await;
                    }
                }
            }
            Pre::Continue(None)
        }
    }
}

/// The response for the embedder's reply.
pub(crate) async fn after_js(
    shared: &Shared,
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
                shared
                    .cache
                    .store(f.fill, &f.headers, status, &headers, &body, f.ttl);
            }
            // The length is ours to set from the actual body; a stale one
            // from a middleware that rewrote the body must not reach the wire.
            headers.remove(CONTENT_LENGTH);
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
    let mut res = compress_response(shared, res, facts).await;
    if !push.is_empty() {
        res.extensions_mut().insert(PushList(push));
    }
    res
}

async fn compress_response(
    shared: &Shared,
    res: Response<ResBody>,
    facts: &ReqFacts,
) -> Response<ResBody> {
    match &shared.config.compression {
        Some(cfg) => compress::apply(cfg, res, facts.accept_encoding(), facts.is_head).await,
        None => res,
    }
}

/// A cache hit, compressed from the variant's stored encodings when the
/// client accepts one (each encoding is made once per variant).
async fn hit_response(shared: &Shared, v: &Arc<Variant>, facts: &ReqFacts) -> Response<ResBody> {
    let mut headers = v.headers.clone();
    headers.remove(CONTENT_LENGTH);
    let mut body = v.body.clone();
    if let Some(cfg) = &shared.config.compression {
        let accept = facts.accept_encoding();
        (body, _) = compress::apply_kept(
            cfg,
            v.status,
            &mut headers,
            &body,
            &v.encoded,
            accept,
            facts.is_head,
        )
        .await;
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
