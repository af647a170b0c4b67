//! Answers made in Rust, without the embedder ("direct" answers): plain
//! status replies, static files and their cache, the route cache, and the
//! compression every response may get on its way out.

pub(crate) mod cache;
pub(crate) mod compress;
pub(crate) mod file_cache;
pub(crate) mod route;
pub(crate) mod static_files;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;

use crate::body::ResBody;
use crate::observe::stats::Stats;
use compress::CompressConfig;

/// A short `text/plain` answer: errors, refusals, 404/405.
pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response<ResBody> {
    let mut res = Response::new(ResBody::full(Bytes::from_static(text.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// What answering directly needs: the caches, the compression setting and
/// the counters. Built once per server.
pub(crate) struct Direct {
    pub(crate) stats: Arc<Stats>,
    /// Route cache of the routes registered with a ttl.
    pub(crate) cache: cache::RouteCache,
    /// Files of the `serveStatic` mounts, resolved and (when small) held.
    pub(crate) files: file_cache::FileCache,
    pub(crate) compression: Option<CompressConfig>,
    /// How long a request waits for another one filling the cache entry
    /// it needs.
    pub(crate) request_timeout: Duration,
}

impl Direct {
    pub(crate) fn new(
        stats: Arc<Stats>,
        compression: Option<CompressConfig>,
        request_timeout: Duration,
    ) -> Self {
        Self {
            cache: cache::RouteCache::new(cache::MAX_ENTRIES, cache::MAX_BYTES),
            files: file_cache::FileCache::new(
                file_cache::MAX_ENTRIES,
                file_cache::MAX_BYTES,
                stats.clone(),
            ),
            stats,
            compression,
            request_timeout,
        }
    }
}
