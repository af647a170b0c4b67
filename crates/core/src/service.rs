//! One request, whatever the protocol: route it, answer natively when no JS
//! is needed, otherwise read the body, queue it for the embedder and wait for
//! its reply.

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::header::{
    HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, HOST, RETRY_AFTER, TRANSFER_ENCODING,
};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

use crate::body::ResBody;
use crate::native_path;
use crate::queue::{Incoming, Version};
use crate::reply::{add_preload_links, PushList};
use crate::router::Match;
use crate::server::Shared;
use crate::stats::Stats;
use crate::ws;

/// An HTTP/1.1 `GET` asking to switch to WebSocket.
pub(crate) fn is_ws_upgrade<B>(req: &Request<B>) -> bool {
    req.method() == http::Method::GET
        && req.version() == http::Version::HTTP_11
        && req
            .headers()
            .get(http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
            })
}

/// Per-connection facts the service needs.
pub(crate) struct ConnInfo {
    pub remote: SocketAddr,
    pub tls: bool,
    pub requests: AtomicU64,
    /// What the HTTP/1 driver reads to decide that a connection is idle
    /// and may give its buffers back (see `proto::h1`).
    pub idle: crate::proto::h1::IdleWatch,
    /// The connection's `maxConnections` slot. A WebSocket upgrade takes it
    /// with it, so upgraded connections stay counted against the limit.
    pub slot: parking_lot::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
}

impl ConnInfo {
    pub(crate) fn new(remote: SocketAddr, tls: bool) -> Arc<Self> {
        Arc::new(Self {
            remote,
            tls,
            requests: AtomicU64::new(0),
            idle: Default::default(),
            slot: parking_lot::Mutex::new(None),
        })
    }
}

pub(crate) fn native(status: StatusCode, text: &'static str) -> Response<ResBody> {
    let mut res = Response::new(ResBody::full(Bytes::from_static(text.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn close_after(mut res: Response<ResBody>) -> Response<ResBody> {
    res.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    res
}

pub(crate) async fn handle<B>(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<B>,
) -> Result<Response<ResBody>, std::convert::Infallible>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let nth = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let _busy = conn.idle.busy();
    Stats::inc(&shared.stats.requests_total);
    let is_h1 = req.version() <= http::Version::HTTP_11;
    let is_h3 = req.version() == http::Version::HTTP_3;
    let limit = shared.config.max_keep_alive_requests;
    let probe = crate::observe::Probe::begin(&shared, &conn, &req);
    let res = match crate::metrics::scrape(&shared, &req) {
        Some(res) => res,
        None => match AssertUnwindSafe(route_and_answer(&shared, &conn, req))
            .catch_unwind()
            .await
        {
            Ok(res) => res,
            Err(_) => {
                Stats::inc(&shared.stats.panics);
                native(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        },
    };
    if let Some(probe) = probe {
        probe.finish(&shared, &res);
    }
    let mut res = res;
    // Over TCP, tell clients where HTTP/3 is (RFC 7838).
    if !is_h3 {
        if let Some(v) = &shared.alt_svc {
            res.headers_mut().insert(http::header::ALT_SVC, v.clone());
        }
    }
    // HTTP/1.x cannot push: the push list becomes preload links. (The
    // HTTP/2 layer takes the list from the extensions and decides itself.)
    if is_h1 {
        if let Some(PushList(list)) = res.extensions_mut().remove::<PushList>() {
            add_preload_links(res.headers_mut(), &list);
        }
    }
    // The per-connection request limit: the response that reaches it closes
    // the connection (HTTP/2 limits are applied by the connection driver).
    if is_h1 && limit > 0 && nth >= limit {
        return Ok(close_after(res));
    }
    Ok(res)
}

async fn route_and_answer<B>(
    shared: &Arc<Shared>,
    conn: &ConnInfo,
    req: Request<B>,
) -> Response<ResBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let started = Instant::now();
    let config = &shared.config;
    shared.faults.check(req.uri().path());
    if ambiguous_h1(&req) {
        return close_after(native(
            StatusCode::BAD_REQUEST,
            "Bad Request: ambiguous message framing",
        ));
    }
    // The protocol layers cannot bound a head below their 8 KiB buffer;
    // smaller limits are enforced here.
    if config.max_header_size < MIN_PROTOCOL_HEAD && head_size(&req) > config.max_header_size {
        return close_after(native(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large",
        ));
    }
    // An owned handle: a cached route may wait for another request's reply
    // while holding it.
    let router = shared.router.load_full();
    let facts = native_path::ReqFacts::of(&req);
    let mut fill = None;
    let upgrade = is_ws_upgrade(&req);
    let method = if upgrade {
        ws::ROUTE_METHOD
    } else {
        req.method().as_str()
    };
    let found = match router.find(method, req.uri().path()) {
        // An upgrade to a path without a WebSocket route is a miss, even
        // when plain HTTP routes exist there.
        Match::MethodNotAllowed { .. } if upgrade => Match::NotFound,
        Match::MethodNotAllowed { mut allow } => {
            allow.retain(|m| m != ws::ROUTE_METHOD);
            if allow.is_empty() {
                // Only a WebSocket route lives here.
                Stats::inc(&shared.stats.native_responses);
                return ws::upgrade_required();
            }
            Match::MethodNotAllowed { allow }
        }
        other => other,
    };
    let (route, params, allow) = match found {
        Match::Found { route, params } => {
            if let Some(extra) = router.extra(route) {
                let (path, query) = (req.uri().path(), req.uri().query().unwrap_or(""));
                match native_path::before_js(
                    shared,
                    &extra,
                    &params,
                    path,
                    query,
                    req.headers(),
                    &facts,
                )
                .await
                {
                    native_path::Pre::Done(res) => return res,
                    native_path::Pre::Continue(f) => fill = f,
                }
            }
            (Some(route), params, None)
        }
        Match::MethodNotAllowed { allow } => {
            if !config.js_handles_misses {
                Stats::inc(&shared.stats.native_responses);
                let mut res = native(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                    res.headers_mut().insert(ALLOW, v);
                }
                return res;
            }
            (None, Vec::new(), Some(allow))
        }
        Match::NotFound => {
            if !config.js_handles_misses {
                Stats::inc(&shared.stats.native_responses);
                return native(StatusCode::NOT_FOUND, "Not Found");
            }
            (None, Vec::new(), None)
        }
    };
    drop(router);

    // Overload: refuse at once rather than queue without bound.
    if shared.stats.pending.load(Ordering::Relaxed) >= config.max_pending_requests as u64 {
        Stats::inc(&shared.stats.rejected_overload);
        let mut res = native(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable: server overloaded",
        );
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return res;
    }

    let ws_key = if upgrade && route.is_some() {
        match ws::check_handshake(req.headers()) {
            Ok(key) => Some(key),
            // The client expected to switch protocols: do not keep the connection.
            Err(res) => return close_after(*res),
        }
    } else {
        None
    };

    let (mut parts, body) = req.into_parts();
    let on_upgrade = ws_key
        .as_ref()
        .and_then(|_| parts.extensions.remove::<hyper::upgrade::OnUpgrade>());

    // Refuse an announced oversize body before reading any of it.
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.max_body_size) {
        return close_after(native(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"));
    }

    let deadline = started + config.request_timeout;
    let body =
        match tokio::time::timeout_at(deadline, read_body(body, config.max_body_size, declared))
            .await
        {
            Ok(Ok(b)) => b,
            Ok(Err(BodyError::TooLarge)) => {
                return close_after(native(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"))
            }
            Ok(Err(BodyError::Broken)) => {
                return close_after(native(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: malformed body",
                ))
            }
            Err(_) => return close_after(native(StatusCode::REQUEST_TIMEOUT, "Request Timeout")),
        };

    let (id, responder, rx) = shared.queue.channel();
    let (path, query) = match parts.uri.path_and_query() {
        Some(pq) => (pq.path().to_string(), pq.query().unwrap_or("").to_string()),
        None => (parts.uri.path().to_string(), String::new()),
    };
    let version = match parts.version {
        http::Version::HTTP_10 | http::Version::HTTP_09 => Version::Http10,
        http::Version::HTTP_2 => Version::Http2,
        http::Version::HTTP_3 => Version::Http3,
        _ => Version::Http11,
    };
    shared.queue.push(Incoming {
        id,
        route,
        allow,
        method: parts.method,
        path,
        query,
        params,
        headers: parts.headers,
        body,
        remote: conn.remote,
        version,
        tls: conn.tls,
        responder,
    });

    match tokio::time::timeout_at(deadline, rx).await {
        Ok(Ok(reply)) if reply.status == StatusCode::SWITCHING_PROTOCOLS => {
            match (ws_key, on_upgrade) {
                (Some(key), Some(on_upgrade)) => {
                    let slot = conn.slot.lock().take();
                    ws::switch(shared, id, &key, reply, on_upgrade, slot)
                }
                _ => {
                    shared.hub.remove(id);
                    native(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                }
            }
        }
        Ok(Ok(reply)) => native_path::after_js(shared, reply, &facts, fill).await,
        // The responder was dropped without an answer (the embedder failed
        // to produce one, or is shutting down).
        Ok(Err(_)) => native(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        Err(_) => {
            Stats::inc(&shared.stats.timed_out);
            let mut res = native(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable: the handler did not answer within requestTimeout",
            );
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            res
        }
    }
}

/// An HTTP/1 request whose framing or target is ambiguous: `Transfer-Encoding`
/// together with `Content-Length`, repeated or non-`chunked` framing headers,
/// or an HTTP/1.1 request without exactly one `Host` (RFC 9112 §3.2, §6.1,
/// §6.3). These are what request smuggling is built from, so they are
/// refused with 400 and a close instead of being interpreted.
fn ambiguous_h1<B>(req: &Request<B>) -> bool {
    let version = req.version();
    if version != http::Version::HTTP_11 && version != http::Version::HTTP_10 {
        return false;
    }
    let h = req.headers();
    if version == http::Version::HTTP_11 {
        let mut hosts = h.get_all(HOST).iter();
        if hosts.next().is_none() || hosts.next().is_some() {
            return true;
        }
    }
    let mut te = h.get_all(TRANSFER_ENCODING).iter();
    if let Some(first) = te.next() {
        return te.next().is_some()
            || h.contains_key(CONTENT_LENGTH)
            || !first.as_bytes().eq_ignore_ascii_case(b"chunked");
    }
    let mut cl = h.get_all(CONTENT_LENGTH).iter();
    cl.next().is_some() && cl.next().is_some()
}

/// The smallest head limit hyper applies itself (its minimum read buffer).
pub(crate) const MIN_PROTOCOL_HEAD: usize = 8192;

/// Approximate size of the request head on the wire.
fn head_size<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    req.headers()
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

enum BodyError {
    TooLarge,
    Broken,
}

async fn read_body<B>(mut body: B, max: u64, declared: Option<u64>) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let mut first: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not exposed
        };
        total += data.len() as u64;
        if total > max {
            return Err(BodyError::TooLarge);
        }
        // A body that arrives in one piece is passed on without a copy.
        match (&mut first, &mut buf) {
            (None, None) => first = Some(data),
            (Some(f), None) => {
                let cap = declared.unwrap_or(0).max((f.len() + data.len()) as u64 * 2);
                let mut b = BytesMut::with_capacity(cap.min(max) as usize);
                b.extend_from_slice(f);
                b.extend_from_slice(&data);
                first = None;
                buf = Some(b);
            }
            (_, Some(b)) => b.extend_from_slice(&data),
        }
    }
    Ok(match (first, buf) {
        (Some(f), _) => f,
        (_, Some(b)) => b.freeze(),
        _ => Bytes::new(),
    })
}
