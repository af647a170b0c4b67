//! HTTP/2 through the `h2` crate (hyper has no server push), over plain TCP
//! (h2c with prior knowledge) or TLS (ALPN `h2`).
//!
//! What hyper did for us and this module does itself:
//! - every stream is a future polled by the connection's own task (a
//!   `FuturesUnordered`), not a task of its own: a response then wakes one
//!   task instead of two, and dropping the connection drops its streams;
//! - request bodies release flow-control capacity as they are consumed, so
//!   the window reopens and large uploads keep moving;
//! - response bodies are sent as the peer grants capacity (no unbounded
//!   buffering of a large body);
//! - graceful close and the idle timeout send GOAWAY and let open streams
//!   finish; `maxKeepAliveRequests` counts streams and then sends GOAWAY;
//!   once no stream is left, a peer that does not complete the exchange
//!   (the PING ack) is closed anyway after [`DRAIN_LIMIT`] (through TLS's
//!   close_notify, as every close is);
//! - limits: concurrent streams, header list size, pending-accept and
//!   locally-caused resets ("rapid reset"), both of which end the
//!   connection with GOAWAY(ENHANCE_YOUR_CALM) when exceeded.
//!
//! `h2` itself answers PINGs and SETTINGS (it reads no further frames while
//! an acknowledgement is waiting to be written, so a flooder that does not
//! read its acks stalls its own connection, which the write timeout then
//! cuts). A flooder that does read its acks would be answered for ever:
//! [`ControlBudget`] counts PING and SETTINGS frames on the way in and ends
//! the connection with GOAWAY(ENHANCE_YOUR_CALM) past a rate no ordinary
//! client comes near. `h2` also checks that DATA matches
//! `content-length`, bounds CONTINUATION sequences by the header list
//! limit, and answers malformed frames with GOAWAY and the right error code.
//!
//! WebSocket: the connection announces SETTINGS_ENABLE_CONNECT_PROTOCOL and
//! an extended CONNECT with `:protocol websocket` (RFC 8441) becomes a
//! WebSocket on that stream ([`websocket`], `ws/tunnel.rs`); any other
//! `:protocol` is answered `501`.
//!
//! Push: a response's push list (see [`PushList`]) becomes PUSH_PROMISEs
//! when the peer allows push, each resource produced by a synthetic GET
//! through the normal request path. Without push (disabled by the peer, or
//! refused), the list becomes `Link: rel=preload` headers on the response
//! and on a `103 Early Hints` sent just before it.

use bytes::Bytes;
use futures_util::future::{join_all, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use h2::server::{SendPushedResponse, SendResponse};
use h2::{RecvStream, SendStream};
use http::header::{HeaderValue, HOST};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty};
use parking_lot::Mutex;
use rustc_hash::FxHashSet;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{sleep, Instant};

use super::Env;
use crate::body::ResBody;
use crate::dispatch::ConnInfo;
use crate::dispatch::Dispatch;
use crate::embedder::reply::{add_preload_links, PushList};
use crate::proto::head::{add_date, set_content_length, strip_connection_headers};
use crate::ws;

/// Streams a client may reset before the server has accepted them; beyond
/// it the connection is closed (the "rapid reset" attack).
const MAX_PENDING_ACCEPT_RESETS: usize = 64;
/// Streams the server may reset because of client errors before closing.
const MAX_LOCAL_ERROR_RESETS: usize = 256;
/// Bytes buffered per stream for sending before waiting for capacity.
const MAX_SEND_BUFFER: usize = 256 * 1024;
/// Frame size we accept (the protocol's default is 16 KiB).
const MAX_FRAME_SIZE: u32 = 64 * 1024;
/// PING and SETTINGS frames (acks included) a peer may send in a burst, and
/// per second after it, before the connection is closed as a flood. A
/// browser sends a handful per connection; gRPC keepalive and
/// bandwidth-probe pings stay far below this.
const CONTROL_BURST: u32 = 10_000;
const CONTROL_PER_SECOND: u32 = 1_000;
/// How long a draining connection with no stream left may take to finish
/// the graceful GOAWAY exchange (GOAWAY, PING, the peer's PING ack, the
/// final GOAWAY, then close_notify over TLS and the FIN). A peer that never
/// acks the PING would otherwise hold the connection past its idle
/// timeout for ever; after this the GOAWAY is made final at once, and
/// after as long again the connection is dropped.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Facts shared by the streams of one connection.
struct ConnState {
    /// Paths already pushed on this connection: each is pushed at most once.
    pushed: Mutex<FxHashSet<String>>,
}

/// Serves HTTP/2 on `io` (whose first bytes are the client preface).
pub(crate) async fn serve<D: Dispatch, T>(shared: Arc<Env<D>>, info: Arc<ConnInfo>, io: T)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = &shared.config;
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(cfg.h2_max_concurrent_streams)
        .initial_window_size(cfg.h2_stream_window)
        .initial_connection_window_size(cfg.h2_connection_window)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_header_list_size(cfg.max_header_size as u32)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .max_send_buffer_size(MAX_SEND_BUFFER)
        // SETTINGS_ENABLE_CONNECT_PROTOCOL: WebSocket over a stream (RFC 8441).
        .enable_connect_protocol();
    let idle = cfg.keep_alive_timeout;
    let flood = Arc::new(Notify::new());
    let io = ControlBudget::new(io, flood.clone());
    let handshake = tokio::time::timeout(
        idle.min(cfg.request_timeout),
        builder.handshake::<_, Bytes>(io),
    );
    let mut conn = tokio::select! {
        r = handshake => match r {
            Ok(Ok(c)) => c,
            _ => return,
        },
        _ = shared.life.force.cancelled() => return,
    };
    let state = Arc::new(ConnState {
        pushed: Mutex::new(FxHashSet::default()),
    });
    let limit = cfg.max_keep_alive_requests;
    let mut streams = FuturesUnordered::new();
    let mut accepted: u64 = 0;
    let mut draining = false;
    let mut flooded = false;
    let idle_timer = sleep(idle);
    tokio::pin!(idle_timer);
    // Armed (DRAIN_LIMIT ahead) whenever the connection drains with no
    // stream left; `finalised` once the GOAWAY was made final.
    let drain_timer = sleep(DRAIN_LIMIT);
    tokio::pin!(drain_timer);
    let mut finalised = false;
    'conn: loop {
        tokio::select! {
            biased;
            _ = shared.life.force.cancelled() => return,
            _ = flood.notified(), if !flooded => {
                // GOAWAY(ENHANCE_YOUR_CALM), then the connection closes once
                // it is written; the budget reads nothing more meanwhile.
                flooded = true;
                draining = true;
                finalised = true;
                drain_timer.as_mut().reset(Instant::now() + DRAIN_LIMIT);
                conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
            }
            _ = shared.life.shutdown.cancelled(), if !draining => {
                draining = true;
                drain_timer.as_mut().reset(Instant::now() + DRAIN_LIMIT);
                conn.graceful_shutdown();
            }
            Some(()) = streams.next(), if !streams.is_empty() => {
                // Finish every stream that is ready now before `accept`
                // polls the connection again (see below).
                while let Some(Some(())) = streams.next().now_or_never() {}
                if streams.is_empty() {
                    idle_timer.as_mut().reset(Instant::now() + idle);
                    // Only a draining connection needs it: a reset registers
                    // the timer in Tokio's wheel (a lock), which every
                    // request burst of a live connection would pay.
                    if draining {
                        drain_timer.as_mut().reset(Instant::now() + DRAIN_LIMIT);
                    }
                }
            }
            _ = &mut idle_timer, if streams.is_empty() && !draining => {
                draining = true;
                drain_timer.as_mut().reset(Instant::now() + DRAIN_LIMIT);
                conn.graceful_shutdown();
            }
            _ = &mut drain_timer, if draining && streams.is_empty() => {
                if finalised {
                    return;
                }
                // The peer has not completed the graceful exchange: the
                // final GOAWAY now (streams it opened meanwhile are refused,
                // safe to retry: RFC 9113 §6.8), then the close.
                finalised = true;
                drain_timer.as_mut().reset(Instant::now() + DRAIN_LIMIT);
                conn.abrupt_shutdown(h2::Reason::NO_ERROR);
            }
            r = conn.accept() => {
                // Take every stream whose request has already been read, then
                // let them all answer before the connection is polled again:
                // each poll of the connection flushes what the streams have
                // queued, so accepting and answering one stream at a time cost
                // a `writev` per response (h2load -c64 -m10 on a route-cache
                // hit: 7.3 `writev`s for every one of the JS-handled route,
                // whose answers arrive together).
                let mut next = Some(r);
                while let Some(r) = next.take() {
                    match r {
                        Some(Ok((req, respond))) => {
                            accepted += 1;
                            if limit > 0 && accepted >= limit && !draining {
                                // This stream is still served; GOAWAY refuses later ones.
                                // (The drain timer is armed once it is done.)
                                draining = true;
                                conn.graceful_shutdown();
                            }
                            streams.push(stream(shared.clone(), info.clone(), state.clone(), req, respond));
                            next = conn.accept().now_or_never();
                        }
                        // Protocol errors have already been answered with GOAWAY by h2.
                        Some(Err(_)) | None => break 'conn,
                    }
                }
            },
        }
    }
    // The connection is finished; any stream task still running can no
    // longer write and is aborted when `streams` drops.
}

const FRAME_PING: u8 = 0x6;
const FRAME_SETTINGS: u8 = 0x4;
const PREFACE_LEN: usize = 24;

/// Follows the frame boundaries of the bytes `h2` reads (headers only, no
/// copy) and spends a token for each PING or SETTINGS frame. The bucket
/// holds [`CONTROL_BURST`] tokens and refills at [`CONTROL_PER_SECOND`].
/// Once it is empty, `notify` fires and reading stops for good.
struct ControlBudget<T> {
    inner: T,
    /// Bytes still to pass before the next frame header (the client
    /// preface first, then each frame's payload).
    skip: usize,
    head: [u8; 9],
    head_len: usize,
    tokens: f64,
    refilled: Instant,
    tripped: bool,
    notify: Arc<Notify>,
}

impl<T> ControlBudget<T> {
    fn new(inner: T, notify: Arc<Notify>) -> Self {
        Self {
            inner,
            skip: PREFACE_LEN,
            head: [0; 9],
            head_len: 0,
            tokens: CONTROL_BURST as f64,
            refilled: Instant::now(),
            tripped: false,
            notify,
        }
    }

    /// Walks newly read bytes; returns how many control frames began in them.
    fn scan(&mut self, mut data: &[u8]) -> u32 {
        let mut control = 0;
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let n = (9 - self.head_len).min(data.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&data[..n]);
            self.head_len += n;
            data = &data[n..];
            if self.head_len == 9 {
                self.head_len = 0;
                let h = &self.head;
                self.skip = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
                if h[3] == FRAME_PING || h[3] == FRAME_SETTINGS {
                    control += 1;
                }
            }
        }
        control
    }

    fn spend(&mut self, control: u32) {
        if control == 0 || self.tripped {
            return;
        }
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * CONTROL_PER_SECOND as f64;
        self.tokens = (self.tokens + earned).min(CONTROL_BURST as f64) - control as f64;
        self.refilled = now;
        if self.tokens < 0.0 {
            self.tripped = true;
            self.notify.notify_one();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ControlBudget<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.tripped {
            // The flood is over for this connection: what it sends next is
            // never parsed (the close drains it without looking).
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let control = self.scan(&buf.filled()[before..]);
            self.spend(control);
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ControlBudget<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that hands flow-control capacity back as it is read.
struct H2Body(RecvStream);

impl Body for H2Body {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        match self.0.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                let _ = self.0.flow_control().release_capacity(data.len());
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}

fn has_no_body(status: StatusCode, method: &Method) -> bool {
    method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
}

async fn stream<D: Dispatch>(
    shared: Arc<Env<D>>,
    info: Arc<ConnInfo>,
    state: Arc<ConnState>,
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    if req.method() == Method::CONNECT {
        if let Some(p) = req.extensions().get::<h2::ext::Protocol>() {
            if p.as_str().eq_ignore_ascii_case("websocket") {
                return websocket(shared, info, req, respond).await;
            }
            let mut res = Response::new(());
            *res.status_mut() = StatusCode::NOT_IMPLEMENTED;
            let _ = respond.send_response(res, true);
            return;
        }
    }
    let method = req.method().clone();
    let authority = req.uri().authority().cloned();
    let scheme = req.uri().scheme().cloned();
    let mut req = req.map(H2Body);
    // Handlers written for HTTP/1.1 read `host`; HTTP/2 carries it in
    // `:authority`.
    if let Some(a) = &authority {
        if !req.headers().contains_key(HOST) {
            if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                req.headers_mut().insert(HOST, v);
            }
        }
    }
    let work = shared.dispatch.call(info.clone(), req);
    // A client that resets the stream no longer wants the answer: stop
    // waiting (dropping the work drops the request's responder).
    let res = tokio::select! {
        r = work => match r { Ok(r) => r, Err(never) => match never {} },
        _ = poll_fn(|cx| respond.poll_reset(cx)) => return,
    };
    let (mut parts, body) = res.into_parts();
    let push = parts.extensions.remove::<PushList>();
    strip_connection_headers(&mut parts.headers);
    add_date(&mut parts.headers);

    let mut promised: Vec<(Uri, SendPushedResponse<Bytes>)> = Vec::new();
    if let Some(PushList(list)) = push {
        let mut fallback = Vec::new();
        for (path, as_) in list {
            if !state.pushed.lock().insert(path.clone()) {
                continue; // already pushed on this connection
            }
            match push_uri(scheme.as_ref(), authority.as_ref(), &path)
                .and_then(|uri| promise(&mut respond, uri))
            {
                Some(p) => promised.push(p),
                None => {
                    // Push disabled by the peer or refused: announce instead.
                    state.pushed.lock().remove(&path);
                    fallback.push((path, as_));
                }
            }
        }
        if !fallback.is_empty() {
            add_preload_links(&mut parts.headers, &fallback);
            let mut hints = Response::new(());
            *hints.status_mut() = StatusCode::EARLY_HINTS;
            add_preload_links(hints.headers_mut(), &fallback);
            let _ = respond.send_informational(hints);
        }
    }

    let main = async move {
        let _ = send(&mut respond, &method, Response::from_parts(parts, body)).await;
    };
    let pushes = promised
        .into_iter()
        .map(|(uri, p)| produce_pushed(shared.clone(), info.clone(), uri, p));
    futures_util::future::join(main, join_all(pushes)).await;
}

/// An extended CONNECT with `:protocol websocket` (RFC 8441): dispatched as
/// a WebSocket upgrade (a `GET` with `Upgrade: websocket`, so routes and
/// middleware see what an HTTP/1.1 upgrade shows them, `httpVersion` aside);
/// when the route accepts it, the `200` goes out without ending the stream
/// and the stream becomes the connection's transport. This future lasts as
/// long as the WebSocket, so the connection's idle timer stays off meanwhile.
async fn websocket<D: Dispatch>(
    shared: Arc<Env<D>>,
    info: Arc<ConnInfo>,
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let (mut parts, recv) = req.into_parts();
    parts.method = Method::GET;
    parts
        .headers
        .insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Some(a) = parts.uri.authority() {
        if !parts.headers.contains_key(HOST) {
            if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                parts.headers.insert(HOST, v);
            }
        }
    }
    let (tunnel, deliver) = ws::Tunnel::new();
    parts.extensions.insert(tunnel);
    let req = Request::from_parts(parts, Empty::<Bytes>::new());
    let res = tokio::select! {
        r = shared.dispatch.call(info, req) => match r { Ok(r) => r, Err(never) => match never {} },
        _ = poll_fn(|cx| respond.poll_reset(cx)) => return,
    };
    let (mut parts, body) = res.into_parts();
    // A refusal closes an HTTP/1.1 connection (`Connection: close`), a
    // header HTTP/2 forbids.
    strip_connection_headers(&mut parts.headers);
    add_date(&mut parts.headers);
    // Accepted: a `200` from the switch, whose task now waits for the stream.
    if parts.status != StatusCode::OK || deliver.is_closed() {
        let _ = send(
            &mut respond,
            &Method::GET,
            Response::from_parts(parts, body),
        )
        .await;
        return;
    }
    let Ok(out) = respond.send_response(Response::from_parts(parts, ()), false) else {
        return;
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    if deliver.send(ws::H2Stream::new(out, recv, done_tx)).is_ok() {
        // Ends (with an error) when the WebSocket drops the stream.
        let _ = done_rx.await;
    }
}

fn push_uri(
    scheme: Option<&http::uri::Scheme>,
    authority: Option<&http::uri::Authority>,
    path: &str,
) -> Option<Uri> {
    Uri::builder()
        .scheme(scheme?.clone())
        .authority(authority?.clone())
        .path_and_query(path)
        .build()
        .ok()
}

fn promise(
    respond: &mut SendResponse<Bytes>,
    uri: Uri,
) -> Option<(Uri, SendPushedResponse<Bytes>)> {
    let req = Request::builder()
        .method(Method::GET)
        .uri(uri.clone())
        .body(())
        .ok()?;
    respond.push_request(req).ok().map(|p| (uri, p))
}

/// Produces a pushed resource through the normal request path (routing,
/// middleware, handler) and writes it on the promised stream.
async fn produce_pushed<D: Dispatch>(
    shared: Arc<Env<D>>,
    info: Arc<ConnInfo>,
    uri: Uri,
    mut pushed: SendPushedResponse<Bytes>,
) {
    let mut req = Request::new(Empty::<Bytes>::new());
    *req.uri_mut() = uri;
    *req.version_mut() = http::Version::HTTP_2;
    if let Some(a) = req.uri().authority().cloned() {
        if let Ok(v) = HeaderValue::from_str(a.as_str()) {
            req.headers_mut().insert(HOST, v);
        }
    }
    let res = tokio::select! {
        r = shared.dispatch.call(info, req) => match r { Ok(r) => r, Err(never) => match never {} },
        _ = poll_fn(|cx| pushed.poll_reset(cx)) => return,
    };
    let (mut parts, body) = res.into_parts();
    // No pushes from a pushed response.
    parts.extensions.remove::<PushList>();
    strip_connection_headers(&mut parts.headers);
    add_date(&mut parts.headers);
    let _ = send_pushed(&mut pushed, Response::from_parts(parts, body)).await;
}

/// Either kind of response handle: the client's stream or a pushed one.
trait Respond {
    fn send_head(&mut self, head: Response<()>, end: bool) -> Result<SendStream<Bytes>, h2::Error>;
}

impl Respond for SendResponse<Bytes> {
    fn send_head(&mut self, head: Response<()>, end: bool) -> Result<SendStream<Bytes>, h2::Error> {
        self.send_response(head, end)
    }
}

impl Respond for SendPushedResponse<Bytes> {
    fn send_head(&mut self, head: Response<()>, end: bool) -> Result<SendStream<Bytes>, h2::Error> {
        self.send_response(head, end)
    }
}

async fn send_pushed(
    pushed: &mut SendPushedResponse<Bytes>,
    res: Response<ResBody>,
) -> Result<(), h2::Error> {
    send(pushed, &Method::GET, res).await
}

/// Writes head and body, sending data only as the peer grants capacity.
async fn send<R: Respond>(
    respond: &mut R,
    method: &Method,
    res: Response<ResBody>,
) -> Result<(), h2::Error> {
    let (mut parts, mut body) = res.into_parts();
    let no_body = has_no_body(parts.status, method);
    set_content_length(
        &mut parts.headers,
        parts.status,
        method == Method::HEAD,
        body.size_hint().exact(),
    );
    let end = no_body || body.is_end_stream();
    let mut out = respond.send_head(Response::from_parts(parts, ()), end)?;
    if end {
        return Ok(());
    }
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // The body failed midway (a stream that threw): reset the
            // stream so the client cannot take the part for the whole.
            out.send_reset(h2::Reason::INTERNAL_ERROR);
            return Ok(());
        };
        if let Ok(data) = frame.into_data() {
            let last = body.is_end_stream();
            send_data(&mut out, data, last).await?;
            if last {
                return Ok(());
            }
        }
    }
    out.send_data(Bytes::new(), true)
}

async fn send_data(
    out: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    if data.is_empty() {
        return out.send_data(data, end);
    }
    while !data.is_empty() {
        out.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| out.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(e),
            // The stream can no longer send (reset, or connection gone).
            None => return Err(h2::Error::from(h2::Reason::CANCEL)),
        };
        if granted == 0 {
            continue;
        }
        let chunk = data.split_to(granted.min(data.len()));
        out.send_data(chunk, end && data.is_empty())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ty: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut f = vec![
            (n >> 16) as u8,
            (n >> 8) as u8,
            n as u8,
            ty,
            flags,
            0,
            0,
            0,
            0,
        ];
        f.extend_from_slice(payload);
        f
    }

    #[tokio::test]
    async fn control_frames_are_counted_across_read_boundaries() {
        let mut b = ControlBudget::new((), Arc::new(Notify::new()));
        let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        wire.extend(frame(FRAME_SETTINGS, 0, &[0; 6]));
        // A DATA frame whose payload looks like PING headers is not a PING.
        wire.extend(frame(0x0, 0, &frame(FRAME_PING, 0, &[0; 8])));
        wire.extend(frame(FRAME_PING, 0, &[0; 8]));
        wire.extend(frame(FRAME_PING, 1, &[0; 8]));
        wire.extend(frame(0x1, 4, &[0x82, 0x86, 0x84]));
        // Byte by byte, then all at once: the same count.
        let total: u32 = wire.chunks(1).map(|c| b.scan(c)).sum();
        assert_eq!(total, 3);
        let mut b = ControlBudget::new((), Arc::new(Notify::new()));
        assert_eq!(b.scan(&wire), 3);
        assert_eq!((b.skip, b.head_len), (0, 0));
    }

    #[tokio::test]
    async fn the_budget_trips_past_the_burst_and_notifies() {
        let notify = Arc::new(Notify::new());
        let mut b = ControlBudget::new((), notify.clone());
        b.spend(CONTROL_BURST);
        assert!(!b.tripped);
        b.spend(2);
        assert!(b.tripped);
        // The permit is stored: a later waiter sees it at once.
        tokio::time::timeout(std::time::Duration::from_millis(100), notify.notified())
            .await
            .expect("notified");
    }

    #[tokio::test]
    async fn the_budget_refills_with_time() {
        let mut b = ControlBudget::new((), Arc::new(Notify::new()));
        b.spend(CONTROL_BURST);
        // Two seconds later (moved back rather than waited for).
        b.refilled -= std::time::Duration::from_secs(2);
        b.spend(2 * CONTROL_PER_SECOND - 1);
        assert!(!b.tripped);
        b.spend(2);
        assert!(b.tripped);
    }
}
