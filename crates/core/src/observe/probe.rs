//! The per-request hook that feeds metrics and the access log: taken when
//! a request arrives, finished with its response. Costs nothing when both
//! are off (`begin` returns `None` before touching the request). The route
//! label comes from the dispatcher's own lookup: a request is routed once.

use http::header::{REFERER, USER_AGENT};
use http::{HeaderValue, Method, Request, Response};
use http_body::Body as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::Instant;

use super::access_log::Entry;
use super::client_ip::{resolve, TrustProxy};
use super::Observers;
use crate::body::ResBody;

/// What the log line needs from the request, captured before the request
/// is consumed.
struct LogHead {
    /// The client: the TCP peer, or who trusted proxies say it is.
    client: std::net::IpAddr,
    target: String,
    version: http::Version,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
}

pub(crate) struct Probe {
    started: Instant,
    method: Method,
    /// The matched route's pattern, when metrics are on and it matched.
    route: Option<Arc<str>>,
    /// Metrics are on.
    counts: bool,
    log: Option<LogHead>,
}

impl Probe {
    /// Starts timing `req`; `None` (before touching the request) when
    /// neither metrics nor the access log are on.
    pub(crate) fn begin<B>(
        obs: &Observers,
        trust_proxy: &TrustProxy,
        remote: SocketAddr,
        req: &Request<B>,
    ) -> Option<Probe> {
        if obs.metrics.is_none() && obs.access_log.is_none() {
            return None;
        }
        let log = obs.access_log.as_ref().map(|_| LogHead {
            client: if trust_proxy.is_none() {
                remote.ip().to_canonical()
            } else {
                resolve(trust_proxy, remote.ip(), req.headers())
            },
            target: req.uri().path_and_query().map_or_else(
                || req.uri().path().to_string(),
                |pq| pq.as_str().to_string(),
            ),
            version: req.version(),
            referer: req.headers().get(REFERER).cloned(),
            user_agent: req.headers().get(USER_AGENT).cloned(),
        });
        Some(Probe {
            started: Instant::now(),
            method: req.method().clone(),
            route: None,
            counts: obs.metrics.is_some(),
            log,
        })
    }

    /// Names the route the request matched (its pattern, the metrics
    /// label): the dispatcher reports its one lookup here.
    pub(crate) fn set_route(&mut self, pattern: Option<Arc<str>>) {
        self.route = pattern;
    }

    /// Whether the route label is wanted (metrics are on).
    pub(crate) fn wants_route(&self) -> bool {
        self.counts
    }

    pub(crate) fn finish(self, obs: &Observers, res: &Response<ResBody>) {
        let took = self.started.elapsed();
        let status = res.status().as_u16();
        if let Some(m) = &obs.metrics {
            m.observe(&self.method, self.route, status, took);
        }
        if let (Some(log), Some(head)) = (&obs.access_log, self.log) {
            log.log(Entry {
                time: SystemTime::now(),
                remote: head.client,
                bytes: if self.method == Method::HEAD {
                    0
                } else {
                    res.body().size_hint().exact().unwrap_or(0)
                },
                method: self.method,
                target: head.target,
                version: head.version,
                status,
                referer: head.referer,
                user_agent: head.user_agent,
                took,
            });
        }
    }
}
