//! Counters the embedder can read at any time (`server.stats()` in JS), so
//! leaks and stuck work are visible in tests. Relaxed atomics: each counter is
//! independent and read for reporting only.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

#[derive(Default)]
pub struct Stats {
    pub(crate) connections_open: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) requests_total: AtomicU64,
    /// Requests handed to the embedder and not yet answered (or dropped).
    pub(crate) pending: AtomicU64,
    /// Requests answered directly by the core, without the embedder
    /// (`nativeResponses` in the JS `stats()`, a name kept as API).
    pub(crate) direct_responses: AtomicU64,
    /// Requests refused because the queue was full.
    pub(crate) rejected_overload: AtomicU64,
    /// Requests whose handler missed `request_timeout`.
    pub(crate) timed_out: AtomicU64,
    /// Panics caught at a boundary and turned into a 500.
    pub(crate) panics: AtomicU64,
    /// WebSocket connections running now (an upgraded connection leaves
    /// `connections_open` and is counted here instead).
    pub(crate) websockets_open: AtomicU64,
    pub(crate) websockets_total: AtomicU64,
    /// Open HTTP/1 connections parked while idle (holding no buffers); a
    /// subset of `connections_open`.
    pub(crate) connections_idle: AtomicU64,
    /// Static file requests answered from the file cache, and those that
    /// had to resolve the file (first request, changed or evicted file).
    pub(crate) static_cache_hits: AtomicU64,
    pub(crate) static_cache_misses: AtomicU64,
    /// Entries in the file cache now, and the memory charged for them.
    pub(crate) static_cache_entries: AtomicU64,
    pub(crate) static_cache_bytes: AtomicU64,
    /// Answers written from the embedder's thread straight into their
    /// sockets (`HTTPY_DIRECT_WRITE`, `embedder::direct`).
    pub(crate) direct_writes: AtomicU64,
    /// Route-cache hits the own HTTP/1.1 driver answered from their
    /// encoded bytes, before building a request (counted in
    /// `direct_responses` too; Rust-side only, for tests).
    pub(crate) stored_answers: AtomicU64,
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections_open: u64,
    pub connections_total: u64,
    pub requests_total: u64,
    pub pending: u64,
    pub direct_responses: u64,
    pub rejected_overload: u64,
    pub timed_out: u64,
    pub panics: u64,
    pub websockets_open: u64,
    pub websockets_total: u64,
    pub connections_idle: u64,
    pub static_cache_hits: u64,
    pub static_cache_misses: u64,
    pub static_cache_entries: u64,
    pub static_cache_bytes: u64,
    pub direct_writes: u64,
    pub stored_answers: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections_open: self.connections_open.load(Relaxed),
            connections_total: self.connections_total.load(Relaxed),
            requests_total: self.requests_total.load(Relaxed),
            pending: self.pending.load(Relaxed),
            direct_responses: self.direct_responses.load(Relaxed),
            rejected_overload: self.rejected_overload.load(Relaxed),
            timed_out: self.timed_out.load(Relaxed),
            panics: self.panics.load(Relaxed),
            websockets_open: self.websockets_open.load(Relaxed),
            websockets_total: self.websockets_total.load(Relaxed),
            connections_idle: self.connections_idle.load(Relaxed),
            static_cache_hits: self.static_cache_hits.load(Relaxed),
            static_cache_misses: self.static_cache_misses.load(Relaxed),
            static_cache_entries: self.static_cache_entries.load(Relaxed),
            static_cache_bytes: self.static_cache_bytes.load(Relaxed),
            direct_writes: self.direct_writes.load(Relaxed),
            stored_answers: self.stored_answers.load(Relaxed),
        }
    }

    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn dec(c: &AtomicU64) {
        c.fetch_sub(1, Relaxed);
    }
}

/// Counts an open connection for as long as its task lives, even if the
/// task ends by panic or by runtime shutdown.
pub(crate) struct OpenConnection(Arc<Stats>);

impl OpenConnection {
    pub(crate) fn new(stats: Arc<Stats>) -> Self {
        Stats::inc(&stats.connections_open);
        Self(stats)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        Stats::dec(&self.0.connections_open);
    }
}
