//! `impl NativeServer`, what the server reports: the counters behind
//! `server.stats()`, the Prometheus text of the native metrics and the
//! access log's dropped lines.

use napi_derive::napi;

use crate::server::NativeServer;

#[napi(object)]
pub struct NativeStats {
    pub connections_open: f64,
    pub connections_total: f64,
    pub requests_total: f64,
    pub pending: f64,
    pub native_responses: f64,
    pub rejected_overload: f64,
    pub timed_out: f64,
    pub panics: f64,
    /// Responders held on the JS side awaiting a handler's answer.
    pub held_responders: f64,
    /// WebSocket connections running now, and since the start.
    pub websockets_open: f64,
    pub websockets_total: f64,
    /// Open HTTP/1 connections parked while idle, holding no buffers.
    pub connections_idle: f64,
    /// Static file requests answered from the file cache, and those that
    /// resolved the file.
    pub static_cache_hits: f64,
    pub static_cache_misses: f64,
    /// Files in the file cache now, and the memory charged for them.
    pub static_cache_entries: f64,
    pub static_cache_bytes: f64,
    /// Answers written straight into their sockets by the code that
    /// delivers them (the I/O thread's delivering task, or the JS thread
    /// with `HTTPY_DIRECT_WRITE`), with the own HTTP/1.1 driver.
    pub direct_writes: f64,
    /// Route-cache hits the own HTTP/1.1 driver answered from the entry's
    /// stored bytes while parsing the head, before any request was built.
    pub stored_answers: f64,
}

/// The pub/sub layer's counters (`server.pubsubStats()`).
#[napi(object)]
pub struct NativePubSubStats {
    /// Messages published here and sent to other processes.
    pub sent: f64,
    /// Messages from other processes fanned out here.
    pub received: f64,
    /// Messages that could not reach other processes (Redis down, a
    /// sibling's link over its bound).
    pub dropped: f64,
    /// Sibling workers linked now.
    pub peers: f64,
    /// Whether Redis is configured, and connected now.
    pub broker: bool,
    pub broker_up: bool,
    pub broker_errors: f64,
    pub broker_reconnects: f64,
    pub last_error: Option<String>,
}

#[napi]
impl NativeServer {
    /// `null` when pub/sub stays in this process.
    #[napi(catch_unwind)]
    pub fn pubsub_stats(&self) -> Option<NativePubSubStats> {
        let s = self.server.as_ref()?.pubsub_stats()?;
        Some(NativePubSubStats {
            sent: s.sent as f64,
            received: s.received as f64,
            dropped: s.dropped as f64,
            peers: s.peers as f64,
            broker: s.broker,
            broker_up: s.broker_up,
            broker_errors: s.broker_errors as f64,
            broker_reconnects: s.broker_reconnects as f64,
            last_error: s.last_error,
        })
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> NativeStats {
        let s = self.server.as_ref().map(|s| s.stats()).unwrap_or_default();
        NativeStats {
            connections_open: s.connections_open as f64,
            connections_total: s.connections_total as f64,
            requests_total: s.requests_total as f64,
            pending: s.pending as f64,
            native_responses: s.direct_responses as f64,
            rejected_overload: s.rejected_overload as f64,
            timed_out: s.timed_out as f64,
            panics: s.panics as f64,
            held_responders: self.responders.len() as f64,
            websockets_open: s.websockets_open as f64,
            websockets_total: s.websockets_total as f64,
            connections_idle: s.connections_idle as f64,
            static_cache_hits: s.static_cache_hits as f64,
            static_cache_misses: s.static_cache_misses as f64,
            static_cache_entries: s.static_cache_entries as f64,
            static_cache_bytes: s.static_cache_bytes as f64,
            direct_writes: s.direct_writes as f64,
            stored_answers: s.stored_answers as f64,
        }
    }

    /// The Prometheus text of the native metrics (`null` when metrics are
    /// off or the server is closed).
    #[napi(catch_unwind)]
    pub fn metrics_text(&self) -> Option<String> {
        self.server.as_ref().and_then(|s| s.metrics_text())
    }

    /// Access log lines lost because the writer could not keep up.
    #[napi(catch_unwind)]
    pub fn access_log_dropped(&self) -> f64 {
        self.server
            .as_ref()
            .map_or(0.0, |s| s.access_log_dropped() as f64)
    }
}
