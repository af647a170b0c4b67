//! The per-request hook that feeds metrics and the access log: taken when
//! a request arrives, finished with its response. Costs nothing when both
//! are off (`begin` returns `None` before touching the request).

use http::header::{REFERER, USER_AGENT};
use http::{HeaderValue, Method, Request, Response};
use http_body::Body as _;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::Instant;

use crate::access_log::Entry;
use crate::body::ResBody;
use crate::router::Match;
use crate::server::Shared;
use crate::service::ConnInfo;

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
    route: Option<Arc<str>>,
    log: Option<LogHead>,
}

impl Probe {
    pub(crate) fn begin<B>(shared: &Shared, conn: &ConnInfo, req: &Request<B>) -> Option<Probe> {
        if shared.metrics.is_none() && shared.access_log.is_none() {
            return None;
        }
        // The route label is the pattern, looked up again here so the
        // service's own routing stays untouched; only paid with metrics on.
        let route = shared.metrics.as_ref().and_then(|_| {
            let router = shared.router.load();
            // WebSocket routes live under their own method, as in the service.
            let method = if crate::service::is_ws_upgrade(req) {
                crate::ws::ROUTE_METHOD
            } else {
                req.method().as_str()
            };
            match router.find(method, req.uri().path()) {
                Match::Found { route, .. } => router.pattern(route),
                _ => None,
            }
        });
        let log = shared.access_log.as_ref().map(|_| LogHead {
            client: if shared.config.trust_proxy.is_none() {
                conn.remote.ip().to_canonical()
            } else {
                crate::client_ip::resolve(
                    &shared.config.trust_proxy,
                    conn.remote.ip(),
                    req.headers(),
                )
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
            route,
            log,
        })
    }

    pub(crate) fn finish(self, shared: &Shared, res: &Response<ResBody>) {
        let took = self.started.elapsed();
        let status = res.status().as_u16();
        if let Some(m) = &shared.metrics {
            m.observe(&self.method, self.route, status, took);
        }
        if let (Some(log), Some(head)) = (&shared.access_log, self.log) {
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
