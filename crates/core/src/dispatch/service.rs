//! One request, whatever the protocol: route it, answer directly when no
//! handler is needed, otherwise read the body, queue it for the embedder and wait for
//! its reply.
//! On a route that streams its bodies (`body::upload`), a long body is
//! queued with the request and pumped to the embedder while it waits.

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;

use super::abort::AbortWatch;
use super::fault::Faults;
use super::head::RawHead;
use super::limits::{ambiguous_h1, head_size, read_body, BodyError, MIN_PROTOCOL_HEAD};
use super::router::Match;
use super::{ConnInfo, Dispatch, StoredReq};
use crate::body::canned::CannedForm;
use crate::body::multipart::{self, BodyStreaming, MultipartLimits};
use crate::body::upload::{self, Prefix, Progress, PumpEnd, UploadError, Uploads};
use crate::body::ResBody;
use crate::config::ServerConfig;
use crate::embedder::queue::{Fields, Incoming, Queue, Responder, Source, Version, WatchWanted};
use crate::embedder::reply::{add_preload_links, PushList};
use crate::observe::metrics::scrape;
use crate::observe::probe::Probe;
use crate::observe::stats::Stats;
use crate::observe::Observers;
use crate::respond::compress;
use crate::respond::route::{self, ReqFacts};
use crate::respond::{plain, Direct};
use crate::ws::{self, WsEnv};
use crate::Router;

/// Everything a request may need on its way, built once per server (by
/// `Server::start`) and shared by every connection through an `Arc`.
pub(crate) struct Service {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) router: ArcSwap<Router>,
    pub(crate) queue: Arc<Queue>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) faults: Faults,
    pub(crate) direct: Direct,
    pub(crate) ws: Arc<WsEnv>,
    pub(crate) observe: Observers,
    /// `Alt-Svc` advertising HTTP/3 on TCP responses, when it is on.
    pub(crate) alt_svc: Option<HeaderValue>,
    /// Streamed request bodies not yet taken by the embedder.
    pub(crate) uploads: Uploads,
    /// Requests whose end the embedder wants to hear of (`request.signal`).
    pub(crate) aborts: AbortWatch,
}

impl Dispatch for Arc<Service> {
    fn call<B>(
        &self,
        conn: Arc<ConnInfo>,
        req: Request<B>,
    ) -> impl Future<Output = Result<Response<ResBody>, Infallible>> + Send + 'static + use<B>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        handle(self.clone(), conn, req, None)
    }

    fn call_h1<B>(
        &self,
        conn: Arc<ConnInfo>,
        req: Request<B>,
        head: RawHead,
    ) -> impl Future<Output = Result<Response<ResBody>, Infallible>> + Send + 'static + use<B>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        handle(self.clone(), conn, req, Some(head))
    }

    fn answer_stored(
        &self,
        conn: &ConnInfo,
        req: &StoredReq<'_>,
        form: &CannedForm,
        out: &mut BytesMut,
    ) -> bool {
        answer_stored(self, conn, req, form, out)
    }

    fn timed_out(&self) -> Response<ResBody> {
        timed_out(self)
    }
}

/// The own HTTP/1.1 driver's short way to a route-cache hit
/// ([`Dispatch::answer_stored`]). Taken only where [`handle`] would change
/// nothing of the stored answer and count it the same: no metrics or
/// access log, no `Alt-Svc`, no compression that could touch this answer
/// (decided once per stored answer, see `compress::leaves_alone`), no armed
/// fault, no head limit below the protocol's, and not the answer that
/// reaches the keep-alive request limit (it closes). Saves the `Request` and its `HeaderMap`, the
/// future and the `Response` of a hit (measured in docs/performance.md §12).
fn answer_stored(
    shared: &Service,
    conn: &ConnInfo,
    req: &StoredReq<'_>,
    form: &CannedForm,
    out: &mut BytesMut,
) -> bool {
    let config = &shared.config;
    let limit = config.max_keep_alive_requests;
    if shared.observe.metrics.is_some()
        || shared.observe.access_log.is_some()
        || shared.alt_svc.is_some()
        || shared.faults.armed()
        || config.max_header_size < MIN_PROTOCOL_HEAD
        || (limit > 0 && conn.requests.load(Ordering::Relaxed) + 1 >= limit)
    {
        return false;
    }
    let router = shared.router.load();
    // Without a cached route, no lookup: a JS route's request would
    // otherwise pay for two (this one and the general path's).
    if !router.has_extras() {
        return false;
    }
    let Match::Found { route, .. } = router.find("GET", req.path) else {
        return false;
    };
    let Some(extra) = router.extra(route) else {
        return false;
    };
    let Some(v) = route::stored_hit(&shared.direct, &extra, req.path, req.query, req.credentials)
    else {
        return false;
    };
    // The compression setting is the server's for its whole life, as is
    // its cache: whether compression leaves this answer alone is decided
    // with its bytes, once.
    let Some(canned) = v.h1.get_or_init(|| {
        let alone = shared
            .direct
            .compression
            .as_ref()
            .is_none_or(|cfg| compress::leaves_alone(cfg, v.status, &v.headers, v.body.len()));
        if alone {
            (form.make)(v.status, &v.headers, &v.body)
        } else {
            None
        }
    }) else {
        return false;
    };
    conn.requests.fetch_add(1, Ordering::Relaxed);
    Stats::inc(&shared.stats.requests_total);
    Stats::inc(&shared.stats.direct_responses);
    Stats::inc(&shared.stats.stored_answers);
    (form.put)(canned, out);
    true
}

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

fn close_after(mut res: Response<ResBody>) -> Response<ResBody> {
    res.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    res
}

/// `head`: the own HTTP/1.1 driver's request, whose fields are the head's
/// bytes (`req` has none); a `HeaderMap` is built from them only where a
/// field is read by name (see `dispatch::head`).
async fn handle<B>(
    shared: Arc<Service>,
    conn: Arc<ConnInfo>,
    mut req: Request<B>,
    mut head: Option<RawHead>,
) -> Result<Response<ResBody>, Infallible>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    // Metrics, the access log and a head limit below the protocol's read
    // the request's fields before it is routed.
    if shared.observe.metrics.is_some()
        || shared.observe.access_log.is_some()
        || shared.config.max_header_size < MIN_PROTOCOL_HEAD
    {
        with_map(&mut req, &mut head);
    }
    let nth = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let _busy = conn.idle.busy();
    Stats::inc(&shared.stats.requests_total);
    let is_h1 = req.version() <= http::Version::HTTP_11;
    let is_h3 = req.version() == http::Version::HTTP_3;
    let limit = shared.config.max_keep_alive_requests;
    let mut probe = Probe::begin(
        &shared.observe,
        &shared.config.trust_proxy,
        conn.remote,
        &req,
    );
    let res = match scrape(shared.observe.metrics.as_deref(), &req) {
        Some(res) => {
            // The scrape is counted under its own path, not as a miss.
            if let (Some(p), Some(path)) = (
                probe.as_mut(),
                shared
                    .observe
                    .metrics
                    .as_ref()
                    .and_then(|m| m.path.as_deref()),
            ) {
                p.set_route(Some(Arc::from(path)));
            }
            res
        }
        None => match AssertUnwindSafe(route_and_answer(&shared, &conn, req, head, &mut probe))
            .catch_unwind()
            .await
        {
            Ok(res) => res,
            Err(_) => {
                Stats::inc(&shared.stats.panics);
                plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        },
    };
    if let Some(probe) = probe {
        probe.finish(&shared.observe, &res);
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

/// The multipart boundary of `req`'s `Content-Type` (its first), read
/// from the head's bytes when there is no map: no allocation unless the
/// field is there.
fn boundary_of<B>(req: &Request<B>, head: &Option<RawHead>) -> Option<String> {
    let Some(h) = head else {
        return multipart::boundary(req.headers().get(CONTENT_TYPE));
    };
    let mut found = None;
    h.each_field(|name, value| {
        if found.is_none() && name.eq_ignore_ascii_case(CONTENT_TYPE.as_str()) {
            found = Some(HeaderValue::from_bytes(value));
        }
    });
    multipart::boundary(found?.ok().as_ref())
}

/// Gives `req` the `HeaderMap` of `head`, when it came without one.
fn with_map<B>(req: &mut Request<B>, head: &mut Option<RawHead>) {
    if let Some(h) = head.take() {
        *req.headers_mut() = h.header_map();
    }
}

async fn route_and_answer<B>(
    shared: &Arc<Service>,
    conn: &ConnInfo,
    mut req: Request<B>,
    mut head: Option<RawHead>,
    probe: &mut Option<Probe>,
) -> Response<ResBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let started = Instant::now();
    let config = &shared.config;
    // An owned handle: a cached route may wait for another request's reply
    // while holding it.
    let router = shared.router.load_full();
    // An extended CONNECT on an HTTP/2 stream (RFC 8441) arrives as a
    // `GET` carrying the tunnel its stream will be handed over through.
    let tunnel = req.extensions().get::<ws::Tunnel>().cloned();
    let upgrade = tunnel.is_some() || is_ws_upgrade(&req);
    let method = if upgrade {
        ws::ROUTE_METHOD
    } else {
        req.method().as_str()
    };
    // The one lookup of this request; the metrics label reuses it, also
    // for the requests refused below.
    let matched = router.find(method, req.uri().path());
    if let (Match::Found { route, .. }, Some(p)) = (&matched, probe.as_mut()) {
        if p.wants_route() {
            p.set_route(router.pattern(*route));
        }
    }
    shared.faults.check(req.uri().path());
    let ambiguous = match &head {
        Some(h) => h.facts.ambiguous,
        None => ambiguous_h1(&req),
    };
    if ambiguous {
        return close_after(plain(
            StatusCode::BAD_REQUEST,
            "Bad Request: ambiguous message framing",
        ));
    }
    // The request record carries a method in a u16-length field; a longer
    // one (possible only with maxHeaderSize above 64 KiB) would reach the
    // handler cut short.
    if req.method().as_str().len() > crate::embedder::record::MAX_METHOD_LEN {
        return close_after(plain(
            StatusCode::NOT_IMPLEMENTED,
            "Not Implemented: method name too long",
        ));
    }
    // The protocol layers cannot bound a head below their 8 KiB buffer;
    // smaller limits are enforced here.
    if config.max_header_size < MIN_PROTOCOL_HEAD && head_size(&req) > config.max_header_size {
        return close_after(plain(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large",
        ));
    }
    let facts = match &head {
        Some(h) => h.req_facts(req.method()),
        None => ReqFacts::of(&req),
    };
    let mut fill = None;
    let found = match matched {
        // An upgrade to a path without a WebSocket route is a miss, even
        // when plain HTTP routes exist there.
        Match::MethodNotAllowed { .. } if upgrade => Match::NotFound,
        Match::MethodNotAllowed { mut allow } => {
            allow.retain(|m| m != ws::ROUTE_METHOD);
            if allow.is_empty() {
                // Only a WebSocket route lives here.
                Stats::inc(&shared.stats.direct_responses);
                return ws::upgrade_required();
            }
            Match::MethodNotAllowed { allow }
        }
        other => other,
    };
    let (route, params, allow) = match found {
        Match::Found { route, params } => {
            if let Some(extra) = router.extra(route) {
                // A cached or static route reads fields by name.
                with_map(&mut req, &mut head);
                let (path, query) = (req.uri().path(), req.uri().query().unwrap_or(""));
                match route::before_embedder(
                    &shared.direct,
                    &extra,
                    &params,
                    path,
                    query,
                    req.headers(),
                    &facts,
                )
                .await
                {
                    route::Pre::Done(res) => return res,
                    route::Pre::Continue(f) => fill = f,
                }
            }
            (Some(route), params, None)
        }
        Match::MethodNotAllowed { allow } => {
            if !config.js_handles_misses {
                Stats::inc(&shared.stats.direct_responses);
                let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                    res.headers_mut().insert(ALLOW, v);
                }
                return res;
            }
            (None, Vec::new(), Some(allow))
        }
        Match::NotFound => {
            if !config.js_handles_misses {
                Stats::inc(&shared.stats.direct_responses);
                return plain(StatusCode::NOT_FOUND, "Not Found");
            }
            (None, Vec::new(), None)
        }
    };
    let streaming = match route {
        Some(r) => router.streams_body(r),
        None => config
            .stream_miss_bodies
            .then_some(match config.miss_multipart {
                Some(limits) => BodyStreaming::RawOrParts(limits),
                None => BodyStreaming::Raw,
            }),
    };
    drop(router);
    // A multipart route reads the request's fields (its boundary). A fetch
    // handler's body (`RawOrParts`, `Raw`) needs only `Content-Type`, read
    // from the head's bytes: its bodiless and whole-bodied requests go to
    // the queue without a `HeaderMap`, as a routed request does (the map
    // is a few hundred ns of allocations per request; the extra parse of
    // the head, tens; docs/performance.md §13.7).
    let boundary = match streaming {
        Some(BodyStreaming::Multipart(limits)) => {
            with_map(&mut req, &mut head);
            multipart::boundary(req.headers().get(CONTENT_TYPE)).map(|b| (b, limits, false))
        }
        Some(BodyStreaming::RawOrParts(limits)) => {
            let b = boundary_of(&req, &head).map(|b| (b, limits, true));
            if b.is_some() {
                with_map(&mut req, &mut head);
            }
            b
        }
        _ => None,
    };

    // Overload: refuse at once rather than queue without bound.
    if shared.stats.pending.load(Ordering::Relaxed) >= config.max_pending_requests as u64 {
        Stats::inc(&shared.stats.rejected_overload);
        let mut res = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable: server overloaded",
        );
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return res;
    }

    let ws_key = if upgrade && route.is_some() {
        match ws::check_handshake(req.headers(), tunnel.is_some()) {
            Ok(hs) => Some(hs),
            // The client expected to switch protocols: do not keep the connection.
            Err(res) => return close_after(*res),
        }
    } else {
        None
    };

    let (mut parts, mut body) = req.into_parts();
    let on_upgrade = ws_key.as_ref().and_then(|_| match &tunnel {
        Some(t) => t.take().map(ws::Transport::Http2),
        None => parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .map(ws::Transport::Http1),
    });

    // Refuse an announced oversize body before reading any of it.
    let declared = match &head {
        Some(h) => h.facts.length,
        None => parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok()),
    };
    if declared.is_some_and(|n| n > config.max_body_size) {
        return close_after(plain(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"));
    }

    let deadline = started + config.request_timeout;
    let mut rest = None;
    // A multipart route parses `multipart/form-data` bodies, whatever their
    // length (other bodies stream raw).
    // A fetch route's multipart body waits, unread, for the embedder to
    // take it as bytes or as parts.
    let mut choose = None;
    let body = if let Some((boundary, limits, choosing)) = boundary {
        rest = Some(if choosing {
            let (tx, rx) = tokio::sync::oneshot::channel();
            choose = Some(tx);
            Rest::Choose(boundary, limits, body, rx)
        } else {
            Rest::Multipart(boundary, limits, body)
        });
        Bytes::new()
    } else if streaming.is_some() {
        // As below: no body, or one read with the head, is whole at the
        // first poll, and no `Sleep` is built for it.
        let now = {
            let read = upload::read_prefix(&mut body, config.max_body_size);
            tokio::pin!(read);
            match futures_util::poll!(read.as_mut()) {
                std::task::Poll::Ready(r) => Ok(r),
                std::task::Poll::Pending => tokio::time::timeout_at(deadline, read).await,
            }
        };
        match now {
            Ok(Ok(Prefix::Whole(b))) => b,
            Ok(Ok(Prefix::Partial(first))) => {
                rest = Some(Rest::Raw(first, body));
                Bytes::new()
            }
            Ok(Err(e)) => return refused(&e),
            Err(_) => return close_after(plain(StatusCode::REQUEST_TIMEOUT, "Request Timeout")),
        }
    } else {
        let read = read_body(body, config.max_body_size, declared);
        tokio::pin!(read);
        // A body already whole (none, or read with the head) is there at
        // the first poll: no `Sleep` is built for it (a runtime handle's
        // clone and drop per request).
        let now = match futures_util::poll!(read.as_mut()) {
            std::task::Poll::Ready(r) => Ok(r),
            std::task::Poll::Pending => tokio::time::timeout_at(deadline, read).await,
        };
        match now {
            Ok(Ok(b)) => b,
            Ok(Err(BodyError::TooLarge)) => {
                return close_after(plain(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"))
            }
            Ok(Err(BodyError::Broken)) => {
                return close_after(plain(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: malformed body",
                ))
            }
            Err(_) => return close_after(plain(StatusCode::REQUEST_TIMEOUT, "Request Timeout")),
        }
    };

    let (id, mut responder) = shared.queue.responder();
    if let Some(wanted) = parts.extensions.remove::<WatchWanted>() {
        responder.set_watch_wanted(wanted);
    }
    // The answer may be written from the embedder's thread when nothing
    // below changes it on its way out: no upload, upgrade, cache fill,
    // access log or metrics, `Alt-Svc`, nor the response that reaches the
    // keep-alive request limit (the driver checks the rest; compression is
    // judged on the reply, where it is written).
    // Armed, the request's deadline is the driver's to keep (it answers
    // 503 with `timed_out` below, as this function would): the wait below
    // then registers no timer (docs/performance.md §17.5).
    // Armed, the reply comes through the slot (no oneshot: its allocation,
    // the waker it clones and the atomics of both ends, per request).
    let mut armed = None;
    if let Some(slot) = conn.direct.get() {
        let limit = config.max_keep_alive_requests;
        if rest.is_none()
            && ws_key.is_none()
            && fill.is_none()
            && probe.is_none()
            && shared.alt_svc.is_none()
            && (limit == 0 || conn.requests.load(Ordering::Relaxed) < limit)
            && slot.arm(id, deadline)
        {
            responder.direct = Some((slot.clone(), id));
            armed = Some(slot);
        }
    }
    // The reply's way back: the slot, or a oneshot opened now.
    let way = match armed {
        Some(slot) => Ok(slot),
        None => Err(responder.open()),
    };
    let version = match parts.version {
        http::Version::HTTP_10 | http::Version::HTTP_09 => Version::Http10,
        http::Version::HTTP_2 => Version::Http2,
        http::Version::HTTP_3 => Version::Http3,
        _ => Version::Http11,
    };
    // Declared before the waits below, so dropped after them: a watcher
    // registered meanwhile finds the responder abandoned, or is told here.
    let mut watching = shared.aborts.guard(id);
    let upload = rest.map(|rest| {
        let (tx, rx) = upload::upload_channel();
        (rest, tx, shared.uploads.put(id, rx, choose.take()))
    });
    enqueue(
        &shared.queue,
        conn,
        Queued {
            id,
            route,
            allow,
            parts,
            head,
            params,
            body,
            streamed: upload.is_some(),
            multipart: matches!(upload, Some((Rest::Multipart(..), ..))),
            parts_on_ask: matches!(upload, Some((Rest::Choose(..), ..))),
            version,
        },
        responder,
    );

    let waited = match (upload, way) {
        (None, Ok(slot)) => match poll_fn(|cx| slot.poll_reply(cx)).await {
            Some(reply) => Waited::Reply(reply),
            None => Waited::Dropped,
        },
        // Not reached: a request with an upload is never armed.
        (Some(_), Ok(_)) => Waited::Dropped,
        (None, Err(rx)) => match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => Waited::Reply(reply),
            Ok(Err(_)) => Waited::Dropped,
            Err(_) => Waited::TimedOut,
        },
        // `_kept` forgets an upload nobody took once the request is over,
        // also when this future is dropped (the client left).
        (Some((rest, tx, _kept)), Err(rx)) => {
            let max = config.max_body_size;
            let progress = Progress::new(started);
            let w = match rest {
                Rest::Raw(first, body) => {
                    let pump = upload::pump(body, first, tx, max, &progress);
                    wait_streaming(shared, rx, pump, &progress, started).await
                }
                Rest::Multipart(boundary, limits, body) => {
                    let pump = multipart::pump(body, boundary, limits, max, tx, &progress);
                    wait_streaming(shared, rx, pump, &progress, started).await
                }
                Rest::Choose(boundary, limits, body, chosen) => {
                    let progress = &progress;
                    // Nothing is read before the embedder takes the body:
                    // parts when it asked for them, raw bytes otherwise.
                    let pump = async move {
                        match chosen.await {
                            Ok(()) => {
                                multipart::pump(body, boundary, limits, max, tx, progress).await
                            }
                            Err(_) => upload::pump(body, Bytes::new(), tx, max, progress).await,
                        }
                    };
                    wait_streaming(shared, rx, pump, progress, started).await
                }
            };
            w
        }
    };
    let reply = match waited {
        Waited::Reply(reply) => {
            watching.replied = true;
            reply
        }
        Waited::Refused(res) => return res,
        // The responder was dropped without an answer (the embedder failed
        // to produce one, or is shutting down).
        Waited::Dropped => {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        Waited::TimedOut => return timed_out(shared),
    };
    if reply.status == StatusCode::SWITCHING_PROTOCOLS {
        return match (ws_key, on_upgrade) {
            (Some(hs), Some(on_upgrade)) => {
                // An HTTP/2 connection keeps its slot for its other streams.
                let slot = match on_upgrade {
                    ws::Transport::Http1(_) => conn.slot.lock().take(),
                    ws::Transport::Http2(_) => None,
                };
                ws::switch(&shared.ws, id, &hs, reply, on_upgrade, slot)
            }
            _ => {
                shared.ws.hub.remove(id);
                plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        };
    }
    route::after_embedder(&shared.direct, reply, &facts, fill).await
}

/// The answer of a request whose handler did not reply within
/// `requestTimeout`, counted.
fn timed_out(shared: &Service) -> Response<ResBody> {
    Stats::inc(&shared.stats.timed_out);
    too_slow()
}

/// The 503 of a handler that did not reply within `requestTimeout`.
pub(crate) fn too_slow() -> Response<ResBody> {
    let mut res = plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service Unavailable: the handler did not answer within requestTimeout",
    );
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

/// A request on its way into the queue: what its record is made of.
struct Queued {
    id: u32,
    route: Option<u32>,
    allow: Option<Vec<String>>,
    parts: http::request::Parts,
    /// The own HTTP/1.1 driver's head, when no map was built.
    head: Option<RawHead>,
    params: Vec<String>,
    body: Bytes,
    streamed: bool,
    multipart: bool,
    parts_on_ask: bool,
    version: Version,
}

/// Queues a request for the embedder. A queue that encodes at the push
/// (the JS binding's) is given the request's parts as they are: its path
/// and query as slices of the URI and, from the own HTTP/1.1 driver, its
/// fields from the head's bytes (no `String`s, no `HeaderMap`:
/// docs/performance.md §17.4). What the record does not keep is dropped
/// here, before the wait for the reply, on the thread that allocated it.
fn enqueue(queue: &Queue, conn: &ConnInfo, q: Queued, responder: Responder) {
    let uri = &q.parts.uri;
    let (path, query) = match uri.path_and_query() {
        Some(pq) => (pq.path(), pq.query().unwrap_or("")),
        None => (uri.path(), ""),
    };
    if queue.encodes() {
        let headers = match &q.head {
            Some(h) => Source::Head(h),
            None => Source::Map(&q.parts.headers),
        };
        let fields = Fields {
            id: q.id,
            route: q.route,
            allow: q.allow.as_deref(),
            method: &q.parts.method,
            path,
            query,
            params: &q.params,
            headers,
            body: &q.body,
            streamed: q.streamed,
            multipart: q.multipart,
            parts_on_ask: q.parts_on_ask,
            remote: conn.remote,
            version: q.version,
            tls: conn.tls,
            tls_peer: conn.tls_peer.as_deref(),
        };
        queue.push_fields(&fields, responder);
        return;
    }
    let (path, query) = (path.to_string(), query.to_string());
    let headers = match q.head {
        Some(h) => h.header_map(),
        None => q.parts.headers,
    };
    queue.push(Incoming {
        id: q.id,
        route: q.route,
        allow: q.allow,
        method: q.parts.method,
        path,
        query,
        params: q.params,
        headers,
        body: q.body,
        streamed: q.streamed,
        multipart: q.multipart,
        parts_on_ask: q.parts_on_ask,
        remote: conn.remote,
        version: q.version,
        tls: conn.tls,
        // An atomic increment per request, only on TLS connections with SNI
        // or a client certificate.
        tls_peer: conn.tls_peer.clone(),
        responder,
    });
}

/// What remains of a streamed body once the request is queued.
enum Rest<B> {
    /// Raw bytes: the first ones read, then the body.
    Raw(Bytes, B),
    /// A `multipart/form-data` body with its boundary.
    Multipart(String, MultipartLimits, B),
    /// A `multipart/form-data` body the embedder takes as bytes or parts:
    /// `chosen` resolves when it asks for parts, fails when it takes bytes.
    Choose(
        String,
        MultipartLimits,
        B,
        tokio::sync::oneshot::Receiver<()>,
    ),
}

/// How the wait for the embedder's reply ended.
enum Waited {
    Reply(crate::embedder::reply::Reply),
    Dropped,
    TimedOut,
    /// The core answered itself (the upload failed).
    Refused(Response<ResBody>),
}

/// The answer to a body the core refused while reading it.
fn refused(e: &UploadError) -> Response<ResBody> {
    close_after(match e {
        UploadError::TooLarge(_) => plain(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"),
        UploadError::Broken(_) => plain(StatusCode::BAD_REQUEST, "Bad Request: malformed body"),
        UploadError::Refused {
            status, message, ..
        } => {
            let mut res = plain(
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
                "",
            );
            *res.body_mut() = ResBody::full(Bytes::from(message.clone()));
            res
        }
    })
}

/// Waits for the reply while pumping the rest of the body to the embedder.
/// `requestTimeout` counts from the last chunk received (a slow but steady
/// upload may take longer in total) and, once the body is in, from its end.
async fn wait_streaming(
    shared: &Service,
    mut rx: tokio::sync::oneshot::Receiver<crate::embedder::reply::Reply>,
    pump: impl Future<Output = PumpEnd>,
    progress: &Progress,
    started: Instant,
) -> Waited {
    let timeout = shared.config.request_timeout;
    tokio::pin!(pump);
    let sleep = tokio::time::sleep_until(started + timeout);
    tokio::pin!(sleep);
    let mut pumping = true;
    loop {
        tokio::select! {
            r = &mut rx => return match r {
                Ok(reply) => Waited::Reply(reply),
                Err(_) => Waited::Dropped,
            },
            end = &mut pump, if pumping => {
                pumping = false;
                if let PumpEnd::Failed(e) = end {
                    return Waited::Refused(refused(&e));
                }
                sleep.as_mut().reset(Instant::now() + timeout);
            }
            () = &mut sleep => {
                let next = progress.last() + timeout;
                if !pumping {
                    return Waited::TimedOut;
                }
                if next <= Instant::now() {
                    // The client stopped sending mid-body, as for a
                    // whole body read too slowly.
                    return Waited::Refused(close_after(plain(
                        StatusCode::REQUEST_TIMEOUT,
                        "Request Timeout",
                    )));
                }
                sleep.as_mut().reset(next);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::embedder::queue::CountingWaker;
    use crate::embedder::reply::Reply;
    use crate::lifecycle::Lifecycle;
    use crate::observe::metrics::Metrics;
    use crate::ws::Hub;
    use http_body_util::{BodyExt, Full};

    /// A service as `Server::start` builds it, without a socket or runtime.
    pub(crate) fn service(config: ServerConfig, router: Router) -> Arc<Service> {
        let config = Arc::new(config);
        let stats = Arc::new(Stats::default());
        let queue = Arc::new(Queue::new(
            Box::new(CountingWaker::default()),
            stats.clone(),
            crate::embedder::record::encode_fields,
        ));
        let metrics = config
            .metrics
            .as_ref()
            .map(|m| Arc::new(Metrics::new(m.path.clone())));
        Arc::new(Service {
            router: ArcSwap::from_pointee(router),
            queue: queue.clone(),
            direct: Direct::new(stats.clone(), None, config.request_timeout),
            faults: Faults::default(),
            ws: Arc::new(WsEnv {
                hub: Hub::default(),
                queue,
                stats: stats.clone(),
                metrics: metrics.clone(),
                life: Lifecycle::default(),
            }),
            observe: Observers {
                metrics,
                access_log: None,
            },
            stats,
            alt_svc: None,
            uploads: Default::default(),
            aborts: Default::default(),
            config,
        })
    }

    /// Stands in for the embedder: answers every queued request with its
    /// path and route id, until the test ends.
    fn stub_embedder(svc: &Arc<Service>) -> tokio::task::JoinHandle<()> {
        let svc = svc.clone();
        tokio::spawn(async move {
            loop {
                for req in svc.queue.take_batch() {
                    let body = format!("{} {:?} {:?}", req.path, req.route, req.params);
                    let reply = Reply::from_parts(200, "x-by\nembedder", body.into()).unwrap();
                    req.responder.send(reply);
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        })
    }

    fn get(path: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .uri(path)
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    async fn call(
        svc: &Arc<Service>,
        req: Request<Full<Bytes>>,
    ) -> (StatusCode, HeaderMapLite, String) {
        let conn = ConnInfo::new("127.0.0.1:5000".parse().unwrap(), false);
        let res = svc.call(conn, req).await.unwrap();
        let status = res.status();
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    type HeaderMapLite = Vec<(String, String)>;

    fn header<'a>(h: &'a HeaderMapLite, name: &str) -> Option<&'a str> {
        h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn router() -> Router {
        let mut r = Router::new();
        r.insert("GET", "/users/{id}", 3).unwrap();
        r.insert("POST", "/users/{id}", 4).unwrap();
        r
    }

    #[tokio::test]
    async fn routed_requests_go_to_the_embedder_and_come_back() {
        let svc = service(ServerConfig::default(), router());
        let embedder = stub_embedder(&svc);
        let (status, headers, body) = call(&svc, get("/users/7")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "x-by"), Some("embedder"));
        assert_eq!(body, "/users/7 Some(3) [\"7\"]");
        let s = svc.stats.snapshot();
        assert_eq!((s.requests_total, s.pending, s.direct_responses), (1, 0, 0));
        embedder.abort();
    }

    #[tokio::test]
    async fn misses_are_answered_directly() {
        let svc = service(ServerConfig::default(), router());
        let (status, _, _) = call(&svc, get("/nowhere")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let mut del = get("/users/7");
        *del.method_mut() = http::Method::DELETE;
        let (status, headers, _) = call(&svc, del).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(header(&headers, "allow"), Some("GET, HEAD, POST"));
        assert_eq!(svc.stats.snapshot().direct_responses, 2);
        assert!(
            svc.queue.take_batch().is_empty(),
            "nothing reached the embedder"
        );
    }

    #[tokio::test]
    async fn limits_refuse_before_the_embedder() {
        let config = ServerConfig {
            max_pending_requests: 0,
            ..Default::default()
        };
        let svc = service(config, router());
        let (status, headers, _) = call(&svc, get("/users/1")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&headers, "retry-after"), Some("1"));
        assert_eq!(svc.stats.snapshot().rejected_overload, 1);

        let svc = service(ServerConfig::default(), router());
        let no_host = Request::builder()
            .uri("/users/1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (status, headers, _) = call(&svc, no_host).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(header(&headers, "connection"), Some("close"));
    }

    #[tokio::test]
    async fn metrics_label_the_route_of_the_one_lookup() {
        let config = ServerConfig {
            metrics: Some(crate::MetricsConfig {
                path: Some("/metrics".into()),
            }),
            ..Default::default()
        };
        let svc = service(config, router());
        let embedder = stub_embedder(&svc);
        call(&svc, get("/users/7")).await;
        call(&svc, get("/users/8")).await;
        call(&svc, get("/nowhere")).await;
        // Refused before the embedder, still labelled with its route.
        let no_host = Request::builder()
            .uri("/users/9")
            .body(Full::new(Bytes::new()))
            .unwrap();
        call(&svc, no_host).await;
        let (status, _, text) = call(&svc, get("/metrics")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains(
            "http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "http_requests_total{method=\"GET\",route=\"<unmatched>\",status=\"404\"} 1\n"
        ));
        assert!(text.contains(
            "http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"400\"} 1\n"
        ));
        embedder.abort();
    }
}
