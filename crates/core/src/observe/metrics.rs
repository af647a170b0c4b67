//! Prometheus metrics, counted on the Tokio threads so that requests the
//! core answers by itself (404/405, overload, limits, cached or static
//! responses) are included and the JS thread pays nothing.
//!
//! Labels are bounded on purpose: `route` is the matched pattern (never the
//! raw path), unmatched requests share one label, and unusual methods are
//! folded into `OTHER`, so a scanner cannot grow the series without limit.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::body::ResBody;

/// Turns this process's metrics text into the one served: under
/// `run({ workers })`, the pub/sub layer merges in what the sibling workers
/// last sent over their links, so a scrape of any worker answers for the
/// whole server.
pub(crate) trait Aggregate: Send + Sync {
    fn whole(&self, local: String) -> String;
}

/// Route label of requests that matched no route.
pub(crate) const UNMATCHED: &str = "<unmatched>";

/// Upper bounds (seconds) of the latency histogram: Prometheus' defaults,
/// which cover a sub-millisecond direct answer up to a slow handler.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `Content-Type` of the Prometheus text exposition format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Transport of an open client connection, for the `protocol` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1 = 0,
    Http2 = 1,
    Http3 = 2,
    /// An upgraded connection, counted from the upgrade to its close.
    WebSocket = 3,
}

const PROTOCOL_LABELS: [&str; 4] = ["http1", "http2", "http3", "websocket"];

#[derive(Hash, PartialEq, Eq, Clone)]
struct SeriesKey {
    method: Method,
    route: Option<Arc<str>>,
}

#[derive(Default, Clone)]
struct Series {
    /// (status, count): a handful per route, so a vector beats a map.
    statuses: Vec<(u16, u64)>,
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

/// Every metric of one server.
pub(crate) struct Metrics {
    /// Path answered directly, when no JS registry is merged into it.
    pub(crate) path: Option<String>,
    series: Mutex<FxHashMap<SeriesKey, Series>>,
    open: [AtomicU64; 4],
    /// WebSocket data messages (text and binary): received, sent.
    ws_messages: [AtomicU64; 2],
    aggregate: OnceLock<Arc<dyn Aggregate>>,
}

/// Keeps one connection counted as open until dropped.
pub(crate) struct OpenGuard(Arc<Metrics>, Protocol);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open[self.1 as usize].fetch_sub(1, Relaxed);
    }
}

/// Counts a connection of `proto` as open for the guard's lifetime; `None`
/// when metrics are off.
pub(crate) fn open_connection(
    metrics: &Option<Arc<Metrics>>,
    proto: Protocol,
) -> Option<OpenGuard> {
    let m = metrics.as_ref()?;
    m.open[proto as usize].fetch_add(1, Relaxed);
    Some(OpenGuard(m.clone(), proto))
}

/// Counts one WebSocket message; control frames (ping, pong, close) are not
/// data and are not counted.
pub(crate) fn websocket_message(
    metrics: Option<&Metrics>,
    msg: &tokio_tungstenite::tungstenite::Message,
    inbound: bool,
) {
    if let Some(m) = metrics {
        if msg.is_text() || msg.is_binary() {
            m.ws_messages[usize::from(!inbound)].fetch_add(1, Relaxed);
        }
    }
}

fn bounded_method(m: &Method) -> Method {
    match *m {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::OPTIONS
        | Method::CONNECT
        | Method::TRACE => m.clone(),
        _ => Method::from_bytes(b"OTHER").expect("valid token"),
    }
}

impl Metrics {
    pub(crate) fn new(path: Option<String>) -> Self {
        Self {
            path,
            series: Mutex::new(FxHashMap::default()),
            open: Default::default(),
            ws_messages: Default::default(),
            aggregate: OnceLock::new(),
        }
    }

    pub(crate) fn set_aggregate(&self, a: Arc<dyn Aggregate>) {
        let _ = self.aggregate.set(a);
    }

    /// What a scrape answers: [`Metrics::render`], for the whole server
    /// when an [`Aggregate`] is installed.
    pub(crate) fn render_served(&self) -> String {
        let local = self.render();
        match self.aggregate.get() {
            Some(a) => a.whole(local),
            None => local,
        }
    }

    /// Records one answered request.
    pub(crate) fn observe(
        &self,
        method: &Method,
        route: Option<Arc<str>>,
        status: u16,
        took: Duration,
    ) {
        let key = SeriesKey {
            method: bounded_method(method),
            route,
        };
        let secs = took.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        let mut series = self.series.lock();
        let s = series.entry(key).or_default();
        match s.statuses.iter_mut().find(|(code, _)| *code == status) {
            Some((_, n)) => *n += 1,
            None => s.statuses.push((status, 1)),
        }
        s.buckets[slot] += 1;
        s.sum += secs;
        s.count += 1;
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut rows: Vec<(SeriesKey, Series)> = {
            let series = self.series.lock();
            series.iter().map(|(k, s)| (k.clone(), s.clone())).collect()
        };
        rows.sort_by(|a, b| {
            (a.0.route.as_deref(), a.0.method.as_str())
                .cmp(&(b.0.route.as_deref(), b.0.method.as_str()))
        });
        let mut out = String::with_capacity(512 + rows.len() * 1024);
        out.push_str(
            "# HELP http_requests_total Requests answered, by method, route pattern and status.\n",
        );
        out.push_str("# TYPE http_requests_total counter\n");
        for (key, series) in &rows {
            let mut statuses = series.statuses.clone();
            statuses.sort_unstable();
            for (status, n) in statuses {
                let _ = writeln!(
                    out,
                    "http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    key.method,
                    escape(key.route.as_deref().unwrap_or(UNMATCHED)),
                );
            }
        }
        out.push_str(
            "# HELP http_request_duration_seconds Time from the request head to the response, by method and route pattern.\n",
        );
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for (key, series) in &rows {
            let Series {
                buckets,
                sum,
                count,
                ..
            } = series;
            let labels = format!(
                "method=\"{}\",route=\"{}\"",
                key.method,
                escape(key.route.as_deref().unwrap_or(UNMATCHED))
            );
            let mut cumulative = 0;
            for (i, n) in buckets.iter().enumerate() {
                cumulative += n;
                let le = BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(out, "http_request_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
        out.push_str("# HELP http_open_connections Client connections open now, by protocol.\n");
        out.push_str("# TYPE http_open_connections gauge\n");
        for (i, label) in PROTOCOL_LABELS.iter().enumerate() {
            let _ = writeln!(
                out,
                "http_open_connections{{protocol=\"{label}\"}} {}",
                self.open[i].load(Relaxed)
            );
        }
        out.push_str("# HELP websocket_messages_total WebSocket data messages (text and binary), by direction.\n");
        out.push_str("# TYPE websocket_messages_total counter\n");
        for (i, direction) in ["in", "out"].iter().enumerate() {
            let _ = writeln!(
                out,
                "websocket_messages_total{{direction=\"{direction}\"}} {}",
                self.ws_messages[i].load(Relaxed)
            );
        }
        out
    }
}

/// Label values escape `\`, `"` and newlines, per the text format.
fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

/// Answers a scrape of the metrics path served directly; `None` for any other request.
pub(crate) fn scrape<B>(metrics: Option<&Metrics>, req: &Request<B>) -> Option<Response<ResBody>> {
    let m = metrics?;
    let path = m.path.as_deref()?;
    if req.uri().path() != path || !(req.method() == Method::GET || req.method() == Method::HEAD) {
        return None;
    }
    let mut res = Response::new(ResBody::full(Bytes::from(m.render_served())));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
    Some(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::new(Some("/metrics".into()));
        let route: Arc<str> = "/users/{id}".into();
        m.observe(
            &Method::GET,
            Some(route.clone()),
            200,
            Duration::from_millis(1),
        );
        m.observe(
            &Method::GET,
            Some(route.clone()),
            200,
            Duration::from_millis(20),
        );
        m.observe(&Method::GET, Some(route), 500, Duration::from_secs(20));
        m.observe(
            &Method::from_bytes(b"BREW").unwrap(),
            None,
            404,
            Duration::ZERO,
        );
        let text = m.render();
        assert!(text.contains(
            "http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"500\"} 1\n"
        ));
        assert!(text.contains(
            "http_requests_total{method=\"OTHER\",route=\"<unmatched>\",status=\"404\"} 1\n"
        ));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{method=\"GET\",route=\"/users/{id}\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{method=\"GET\",route=\"/users/{id}\",le=\"0.025\"} 2\n"
        ));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{method=\"GET\",route=\"/users/{id}\",le=\"+Inf\"} 3\n"
        ));
        assert!(text.contains(
            "http_request_duration_seconds_count{method=\"GET\",route=\"/users/{id}\"} 3\n"
        ));
        assert!(text.contains("http_open_connections{protocol=\"http1\"} 0\n"));
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("/plain"), "/plain");
    }
}
