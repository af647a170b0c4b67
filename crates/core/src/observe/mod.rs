//! What the server tells about itself: the counters of `stats()`,
//! Prometheus metrics, the access log, the client address behind trusted
//! proxies, and the per-request probe that feeds metrics and the log.

pub(crate) mod access_log;
pub(crate) mod client_ip;
pub(crate) mod metrics;
pub(crate) mod probe;
pub(crate) mod stats;

use std::sync::Arc;

/// The per-request observers that are on (each is optional).
#[derive(Default)]
pub(crate) struct Observers {
    pub(crate) metrics: Option<Arc<metrics::Metrics>>,
    pub(crate) access_log: Option<access_log::AccessLog>,
}
