//! WebSocket connections, after the HTTP upgrade: one task per connection
//! reads frames into a batched event queue for the embedder and writes what
//! the embedder (or a pub/sub publish) queued for it.
//!
//! The transport is whatever hyper hands over on upgrade (plain TCP or TLS),
//! so nothing here depends on it. Flow control both ways:
//! - outbound, every connection counts the bytes queued for it; the embedder
//!   is told when the count falls back under the high-water mark (a `Drain`
//!   event) and a peer that lets the count pass `max_backpressure` is closed
//!   with 1008, so a slow reader cannot make the server buffer without bound;
//! - inbound, the reader stops reading the socket (TCP pushes back on the
//!   peer) while the embedder has paused the connection or has not yet taken
//!   a high-water mark's worth of events.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use parking_lot::{Mutex, RwLock};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::body::ResBody;
use crate::embedder::queue::Queue;
use crate::lifecycle::Lifecycle;
use crate::observe::metrics::{open_connection, websocket_message, Metrics, Protocol};
use crate::observe::stats::Stats;
use crate::respond::plain;

/// How long one side of a closing connection waits for the other.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Settings of one WebSocket connection (per route, defaults per server).
///
/// ```
/// let o = httpy_core::WsOptions { heartbeat: Some(std::time::Duration::from_secs(30)), ..Default::default() };
/// assert_eq!(o.max_message_size, 16 * 1024 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct WsOptions {
    /// Largest message (and frame) accepted; a larger one closes with 1009.
    pub max_message_size: usize,
    /// Close (1001) a connection that receives nothing for this long.
    pub idle_timeout: Option<Duration>,
    /// Ping this often; a peer that has not answered by the next ping is dropped.
    pub heartbeat: Option<Duration>,
    /// Queued outbound bytes above which the embedder should wait for `Drain`.
    pub high_water_mark: usize,
    /// Queued outbound bytes beyond which the connection is closed (1008).
    pub max_backpressure: usize,
}

impl Default for WsOptions {
    fn default() -> Self {
        Self {
            max_message_size: 16 * 1024 * 1024,
            idle_timeout: Some(Duration::from_secs(120)),
            heartbeat: None,
            high_water_mark: 1024 * 1024,
            max_backpressure: 64 * 1024 * 1024,
        }
    }
}

/// Kind of a [`WsEvent`]; the numbers are part of the record layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WsEventKind {
    Text = 0,
    Binary = 1,
    /// The connection is over; `data` is the close code (u16 LE) then the reason.
    Close = 2,
    /// Queued outbound bytes fell back under the high-water mark.
    Drain = 3,
}

/// Something that happened on a WebSocket connection, for the embedder.
pub struct WsEvent {
    pub id: u32,
    pub kind: WsEventKind,
    pub data: Bytes,
    conn: Arc<WsConn>,
}

/// What the embedder can send.
pub enum WsFrame {
    Text(String),
    Binary(Bytes),
    Ping(Bytes),
}

impl WsFrame {
    fn into_message(self) -> Message {
        match self {
            WsFrame::Text(s) => Message::Text(s.into()),
            WsFrame::Binary(b) => Message::Binary(b),
            WsFrame::Ping(b) => Message::Ping(b),
        }
    }
}

/// Result of queueing a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued; the connection's outbound buffer is under the high-water mark.
    Queued,
    /// Queued, but the buffer is above the high-water mark: a `Drain` event
    /// will follow once it is back under.
    Backpressure,
    /// The connection is closed (or unknown); nothing was queued.
    Closed,
}

struct Outbound {
    frames: VecDeque<(Message, usize)>,
    /// A close frame is queued; nothing more is accepted.
    closing: bool,
}

pub(crate) struct WsConn {
    id: u32,
    opts: WsOptions,
    out: Mutex<Outbound>,
    buffered: AtomicUsize,
    out_ready: Notify,
    want_drain: AtomicBool,
    paused: AtomicBool,
    /// Bytes of events queued for the embedder and not yet taken.
    undrained: AtomicUsize,
    resume: Notify,
    /// The single `Close` event has been queued.
    reported: AtomicBool,
    /// Frames were queued without waking the writer; it is in `Hub::dirty`.
    wake_pending: AtomicBool,
    topics: Mutex<FxHashSet<Arc<str>>>,
    /// Code and reason of the close frame we queued, if any.
    sent_close: Mutex<Option<(u16, String)>>,
    /// Milliseconds since `born` at which the last frame arrived.
    last_seen: AtomicU64,
    born: Instant,
}

impl WsConn {
    fn touch(&self) {
        self.last_seen
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let now = self.born.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_seen.load(Ordering::Relaxed)))
    }

    fn reading_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
            || self.undrained.load(Ordering::Acquire) > self.opts.high_water_mark
    }

    fn is_closing(&self) -> bool {
        self.out.lock().closing
    }

    /// Queues a frame unless a close is already queued; `wake` tells the
    /// writer at once (otherwise [`Hub::flush`] does, for a whole burst).
    fn enqueue(&self, msg: Message, wake: bool) -> SendStatus {
        let len = msg.len();
        {
            let mut out = self.out.lock();
            if out.closing {
                return SendStatus::Closed;
            }
            out.frames.push_back((msg, len));
        }
        let now = self.buffered.fetch_add(len, Ordering::AcqRel) + len;
        if wake {
            self.out_ready.notify_one();
        }
        if now > self.opts.max_backpressure {
            self.enqueue_close(1008, "backpressure limit exceeded");
            return SendStatus::Closed;
        }
        if now > self.opts.high_water_mark {
            self.want_drain.store(true, Ordering::Release);
            // The writer may have emptied the queue between the add and the
            // flag; re-check so a Drain is never missed.
            if self.buffered.load(Ordering::Acquire) <= self.opts.high_water_mark
                && self.want_drain.swap(false, Ordering::AcqRel)
            {
                return SendStatus::Queued;
            }
            return SendStatus::Backpressure;
        }
        SendStatus::Queued
    }

    /// Queues a close frame (first one wins). Returns false if one was queued already.
    fn enqueue_close(&self, code: u16, reason: &str) -> bool {
        {
            let mut out = self.out.lock();
            if out.closing {
                return false;
            }
            out.closing = true;
            *self.sent_close.lock() = Some((code, reason.to_string()));
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_string().into(),
            };
            out.frames.push_back((Message::Close(Some(frame)), 0));
        }
        self.out_ready.notify_one();
        self.resume.notify_one();
        true
    }

    fn stop_sending(&self) {
        self.out.lock().closing = true;
    }
}

/// The connections subscribed to one topic.
type Subscribers = FxHashMap<u32, Arc<WsConn>>;

/// What the WebSocket layer needs from the server: the hub of open
/// connections, the queue whose waker tells the embedder about events, the
/// counters and the close signals.
pub(crate) struct WsEnv {
    pub(crate) hub: Hub,
    pub(crate) queue: Arc<Queue>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) metrics: Option<Arc<Metrics>>,
    pub(crate) life: Lifecycle,
}

/// Every live WebSocket connection of a server, its topics, and the event
/// queue towards the embedder.
#[derive(Default)]
pub(crate) struct Hub {
    conns: RwLock<FxHashMap<u32, Arc<WsConn>>>,
    topics: RwLock<FxHashMap<Arc<str>, Subscribers>>,
    events: Mutex<Vec<WsEvent>>,
    /// Connections with frames queued by `send_deferred` and no wake-up yet.
    dirty: Mutex<Vec<Arc<WsConn>>>,
    scheduled: AtomicBool,
}

impl Hub {
    /// Registers a connection that is about to be upgraded, so the embedder
    /// can send to it before the upgrade has completed.
    pub(crate) fn register(&self, id: u32, opts: WsOptions) -> Arc<WsConn> {
        let conn = Arc::new(WsConn {
            id,
            opts,
            out: Mutex::new(Outbound {
                frames: VecDeque::new(),
                closing: false,
            }),
            buffered: AtomicUsize::new(0),
            out_ready: Notify::new(),
            want_drain: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            undrained: AtomicUsize::new(0),
            resume: Notify::new(),
            reported: AtomicBool::new(false),
            wake_pending: AtomicBool::new(false),
            topics: Mutex::new(FxHashSet::default()),
            sent_close: Mutex::new(None),
            last_seen: AtomicU64::new(0),
            born: Instant::now(),
        });
        self.conns.write().insert(id, conn.clone());
        conn
    }

    pub(crate) fn get(&self, id: u32) -> Option<Arc<WsConn>> {
        self.conns.read().get(&id).cloned()
    }

    /// Forgets a connection and its subscriptions.
    pub(crate) fn remove(&self, id: u32) {
        let Some(conn) = self.conns.write().remove(&id) else {
            return;
        };
        let topics: Vec<Arc<str>> = conn.topics.lock().drain().collect();
        if !topics.is_empty() {
            let mut map = self.topics.write();
            for t in topics {
                if let Some(subs) = map.get_mut(&t) {
                    subs.remove(&id);
                    if subs.is_empty() {
                        map.remove(&t);
                    }
                }
            }
        }
    }

    pub(crate) fn send(&self, id: u32, frame: WsFrame) -> SendStatus {
        match self.get(id) {
            Some(c) => c.enqueue(frame.into_message(), true),
            None => SendStatus::Closed,
        }
    }

    /// Like `send`, but the writer is only woken by the next [`Hub::flush`]:
    /// a burst of sends from one embedder turn costs one wake-up per
    /// connection instead of one per frame.
    pub(crate) fn send_deferred(&self, id: u32, frame: WsFrame) -> SendStatus {
        let Some(c) = self.get(id) else {
            return SendStatus::Closed;
        };
        let status = c.enqueue(frame.into_message(), false);
        if status != SendStatus::Closed && !c.wake_pending.swap(true, Ordering::AcqRel) {
            self.dirty.lock().push(c);
        }
        status
    }

    /// Wakes the writers of every connection `send_deferred` queued for.
    pub(crate) fn flush(&self) {
        let dirty = std::mem::take(&mut *self.dirty.lock());
        for c in dirty {
            c.wake_pending.store(false, Ordering::Release);
            c.out_ready.notify_one();
        }
    }

    /// Starts the closing handshake. False when already closing or gone.
    pub(crate) fn close(&self, id: u32, code: u16, reason: &str) -> bool {
        self.get(id).is_some_and(|c| c.enqueue_close(code, reason))
    }

    pub(crate) fn set_paused(&self, id: u32, paused: bool) {
        if let Some(c) = self.get(id) {
            c.paused.store(paused, Ordering::Release);
            if !paused {
                c.resume.notify_one();
            }
        }
    }

    pub(crate) fn subscribe(&self, id: u32, topic: &str) -> bool {
        let Some(conn) = self.get(id) else {
            return false;
        };
        if conn.is_closing() {
            return false;
        }
        let topic: Arc<str> = Arc::from(topic);
        if !conn.topics.lock().insert(topic.clone()) {
            return true;
        }
        self.topics
            .write()
            .entry(topic)
            .or_default()
            .insert(id, conn);
        true
    }

    pub(crate) fn unsubscribe(&self, id: u32, topic: &str) -> bool {
        let Some(conn) = self.get(id) else {
            return false;
        };
        if !conn.topics.lock().remove(topic) {
            return false;
        }
        let mut map = self.topics.write();
        if let Some(subs) = map.get_mut(topic) {
            subs.remove(&id);
            if subs.is_empty() {
                map.remove(topic);
            }
        }
        true
    }

    /// Queues `frame` for every subscriber of `topic`; returns how many got it.
    pub(crate) fn publish(&self, topic: &str, frame: WsFrame) -> usize {
        let msg = frame.into_message();
        let subs: Vec<Arc<WsConn>> = match self.topics.read().get(topic) {
            Some(s) => s.values().cloned().collect(),
            None => return 0,
        };
        // Message clones share the payload (`Bytes`), so fan-out copies nothing.
        subs.iter()
            .filter(|c| c.enqueue(msg.clone(), true) != SendStatus::Closed)
            .count()
    }

    pub(crate) fn open_count(&self) -> usize {
        self.conns.read().len()
    }

    /// Queues an event; true when the embedder must be woken.
    fn push(&self, conn: &Arc<WsConn>, kind: WsEventKind, data: Bytes) -> bool {
        conn.undrained.fetch_add(data.len(), Ordering::AcqRel);
        self.events.lock().push(WsEvent {
            id: conn.id,
            kind,
            data,
            conn: conn.clone(),
        });
        !self.scheduled.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn take_events(&self) -> Vec<WsEvent> {
        self.scheduled.store(false, Ordering::Release);
        let events = std::mem::take(&mut *self.events.lock());
        for ev in &events {
            let before = ev.conn.undrained.fetch_sub(ev.data.len(), Ordering::AcqRel);
            if before > ev.conn.opts.high_water_mark {
                ev.conn.resume.notify_one();
            }
        }
        events
    }
}

fn event(shared: &WsEnv, conn: &Arc<WsConn>, kind: WsEventKind, data: Bytes) {
    if shared.hub.push(conn, kind, data) {
        shared.queue.wake_ws();
    }
}

/// Queues the connection's one and only `Close` event.
fn report_close(shared: &WsEnv, conn: &Arc<WsConn>, code: u16, reason: &str) {
    if conn.reported.swap(true, Ordering::AcqRel) {
        return;
    }
    conn.stop_sending();
    let mut data = Vec::with_capacity(2 + reason.len());
    data.extend_from_slice(&code.to_le_bytes());
    data.extend_from_slice(reason.as_bytes());
    event(shared, conn, WsEventKind::Close, Bytes::from(data));
}

/// Close code for a read error, per RFC 6455 section 7.4.1.
fn error_close(e: &WsError) -> Option<(u16, &'static str)> {
    match e {
        WsError::Utf8(_) => Some((1007, "invalid UTF-8 in text message")),
        WsError::Capacity(_) => Some((1009, "message too big")),
        WsError::Protocol(p) => {
            use tokio_tungstenite::tungstenite::error::ProtocolError as P;
            match p {
                P::ResetWithoutClosingHandshake => None,
                _ => Some((1002, "protocol error")),
            }
        }
        WsError::AttackAttempt => Some((1008, "policy violation")),
        _ => None,
    }
}

/// Lets the reader go on only while the embedder keeps up.
async fn wait_for_credit(conn: &WsConn) {
    loop {
        let resumed = conn.resume.notified();
        tokio::pin!(resumed);
        resumed.as_mut().enable();
        // A closing connection reads on: the peer's close reply must be seen.
        if !conn.reading_paused() || conn.is_closing() {
            return;
        }
        resumed.await;
    }
}

enum ReadEnd {
    /// Close frame received (and answered by tungstenite).
    PeerClosed,
    /// We decided to close (bad input, idle): a close frame is queued.
    Closing,
    /// The transport is gone.
    Gone,
}

enum WriteEnd {
    /// Our close frame went out.
    CloseSent,
    /// Writing failed (transport gone, or the connection already closing).
    Failed,
    /// The peer stopped answering pings: drop it now.
    Dead,
}

/// The WebSocket settings tungstenite applies to a connection.
fn config(opts: &WsOptions) -> WebSocketConfig {
    WebSocketConfig::default()
        // Small buffers: idle connections should cost little; a batch is
        // flushed at once anyway.
        .read_buffer_size(8 * 1024)
        .write_buffer_size(16 * 1024)
        .max_message_size(Some(opts.max_message_size))
        .max_frame_size(Some(opts.max_message_size))
}

/// Runs one upgraded connection to its end, then frees everything it held.
pub(crate) async fn run<S>(shared: Arc<WsEnv>, conn: Arc<WsConn>, io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Stats::inc(&shared.stats.websockets_open);
    Stats::inc(&shared.stats.websockets_total);
    let _open = open_connection(&shared.metrics, Protocol::WebSocket);
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config(&conn.opts))).await;
    conn.touch();
    drive(&shared, &conn, ws).await;
    report_close(&shared, &conn, 1006, "connection lost");
    shared.hub.remove(conn.id);
    Stats::dec(&shared.stats.websockets_open);
}

async fn drive<S>(shared: &Arc<WsEnv>, conn: &Arc<WsConn>, ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let reader = async {
        loop {
            wait_for_credit(conn).await;
            let next = match conn.opts.idle_timeout {
                Some(d) => match tokio::time::timeout(d, stream.next()).await {
                    Ok(n) => n,
                    Err(_) => {
                        if conn.enqueue_close(1001, "idle timeout") {
                            report_close(shared, conn, 1001, "idle timeout");
                        }
                        return ReadEnd::Closing;
                    }
                },
                None => stream.next().await,
            };
            match next {
                None => return ReadEnd::Gone,
                Some(Err(e)) => {
                    return match error_close(&e) {
                        Some((code, reason)) => {
                            conn.enqueue_close(code, reason);
                            report_close(shared, conn, code, reason);
                            ReadEnd::Closing
                        }
                        None => ReadEnd::Gone,
                    }
                }
                Some(Ok(msg)) => {
                    conn.touch();
                    websocket_message(shared.metrics.as_deref(), &msg, true);
                    match msg {
                        Message::Text(t) => event(shared, conn, WsEventKind::Text, t.into()),
                        Message::Binary(b) => event(shared, conn, WsEventKind::Binary, b),
                        Message::Close(frame) => {
                            let (code, reason) = match &frame {
                                Some(f) => (u16::from(f.code), f.reason.as_str().to_string()),
                                None => (1005, String::new()),
                            };
                            report_close(shared, conn, code, &reason);
                            // Keep reading: that flushes tungstenite's close
                            // reply, then the stream ends.
                            let rest = async { while let Some(Ok(_)) = stream.next().await {} };
                            let _ = tokio::time::timeout(CLOSE_GRACE, rest).await;
                            return ReadEnd::PeerClosed;
                        }
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                    }
                }
            }
        }
    };
    let writer = async {
        let mut beat = conn.opts.heartbeat.map(|d| {
            let mut i = tokio::time::interval_at(Instant::now() + d, d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            (i, d)
        });
        loop {
            let ready = conn.out_ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            let batch: Vec<(Message, usize)> = conn.out.lock().frames.drain(..).collect();
            if batch.is_empty() {
                match &mut beat {
                    Some((tick, every)) => {
                        tokio::select! {
                            _ = &mut ready => {}
                            _ = tick.tick() => {
                                // While reading is paused for the embedder, pongs sit
                                // unread: silence then proves nothing.
                                if conn.reading_paused() {
                                    conn.touch();
                                }
                                // No frame since the previous ping: the peer is gone.
                                if conn.silent_for() > *every + Duration::from_millis(50) {
                                    report_close(shared, conn, 1006, "heartbeat timeout");
                                    return WriteEnd::Dead;
                                }
                                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                                    return WriteEnd::Failed;
                                }
                            }
                        }
                    }
                    None => ready.await,
                }
                continue;
            }
            let mut bytes = 0;
            let mut closed = false;
            for (msg, len) in batch {
                websocket_message(shared.metrics.as_deref(), &msg, false);
                bytes += len;
                closed |= matches!(msg, Message::Close(_));
                if sink.feed(msg).await.is_err() {
                    return WriteEnd::Failed;
                }
                if closed {
                    break;
                }
            }
            if sink.flush().await.is_err() {
                return WriteEnd::Failed;
            }
            let left = conn.buffered.fetch_sub(bytes, Ordering::AcqRel) - bytes;
            if left <= conn.opts.high_water_mark && conn.want_drain.swap(false, Ordering::AcqRel) {
                event(shared, conn, WsEventKind::Drain, Bytes::new());
            }
            if closed {
                return WriteEnd::CloseSent;
            }
        }
    };
    tokio::pin!(reader, writer);
    let mut read_end: Option<ReadEnd> = None;
    let mut writer_done = false;
    let mut draining = false;
    // Once a side has finished, the other gets this long to complete the
    // closing handshake.
    let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            r = &mut reader, if read_end.is_none() => {
                match r {
                    ReadEnd::Gone | ReadEnd::PeerClosed => return,
                    ReadEnd::Closing => {
                        read_end = Some(r);
                        if writer_done { return; }
                        grace.get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_GRACE)));
                    }
                }
            }
            w = &mut writer, if !writer_done => {
                writer_done = true;
                match w {
                    WriteEnd::Dead => return,
                    WriteEnd::CloseSent => report_close_local(shared, conn),
                    WriteEnd::Failed => {}
                }
                if read_end.is_some() { return; }
                grace.get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_GRACE)));
            }
            _ = async { grace.as_mut().expect("guarded").await }, if grace.is_some() => return,
            _ = shared.life.shutdown.cancelled(), if !draining => {
                draining = true;
                if conn.enqueue_close(1001, "server shutting down") {
                    report_close(shared, conn, 1001, "server shutting down");
                }
            }
            _ = shared.life.force.cancelled() => return,
        }
    }
}

/// After a locally started close frame went out: report it with the code
/// that was sent (unless something was reported already).
fn report_close_local(shared: &WsEnv, conn: &Arc<WsConn>) {
    let (code, reason) = conn
        .sent_close
        .lock()
        .clone()
        .unwrap_or((1000, String::new()));
    report_close(shared, conn, code, &reason);
}

/// Appends the events of one batch to `out` (layout in `ts/websocket.ts`):
/// `u8 kind | u32 id | u32 len | u8 placement | inline bytes or u32 index`.
pub fn encode_events(events: &[WsEvent], out: &mut Vec<u8>, external: &mut Vec<Bytes>) {
    for ev in events {
        out.push(ev.kind as u8);
        out.extend_from_slice(&ev.id.to_le_bytes());
        out.extend_from_slice(&(ev.data.len() as u32).to_le_bytes());
        if ev.data.len() >= crate::embedder::record::EXTERNAL_BODY_MIN {
            out.push(1);
            out.extend_from_slice(&(external.len() as u32).to_le_bytes());
            external.push(ev.data.clone());
        } else {
            out.push(0);
            out.extend_from_slice(&ev.data);
        }
    }
}

/// Answers the handshake key (RFC 6455 section 4.2.2).
pub(crate) fn accept_key(key: &[u8]) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key)
}

/// The method name under which WebSocket routes live in the route table.
pub const ROUTE_METHOD: &str = "WEBSOCKET";

/// `426` for a plain request to a path that only has a WebSocket route.
pub(crate) fn upgrade_required() -> Response<ResBody> {
    let mut res = plain(
        StatusCode::UPGRADE_REQUIRED,
        "Upgrade Required: this path speaks WebSocket",
    );
    res.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    res
}

/// Checks the client's half of the opening handshake (RFC 6455 section
/// 4.2.1) and returns its key, or the response refusing it.
pub(crate) fn check_handshake(headers: &HeaderMap) -> Result<String, Box<Response<ResBody>>> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    if !connection_upgrade {
        return Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            "Bad Request: missing Connection: upgrade",
        )));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        let mut res = plain(
            StatusCode::UPGRADE_REQUIRED,
            "Upgrade Required: WebSocket version 13",
        );
        res.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(Box::new(res));
    }
    // A key is 16 random bytes in base64: 24 characters ending in "==".
    match headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
    {
        Some(k) if k.len() == 24 && k.ends_with("==") => Ok(k.to_string()),
        _ => Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            "Bad Request: invalid Sec-WebSocket-Key",
        ))),
    }
}

/// Builds the `101` response for an accepted upgrade and starts the
/// connection's task, which runs once hyper hands the transport over and
/// holds the connection's `maxConnections` slot (`slot`) until it ends.
pub(crate) fn switch(
    shared: &Arc<WsEnv>,
    id: u32,
    key: &str,
    reply: crate::Reply,
    on_upgrade: hyper::upgrade::OnUpgrade,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Response<ResBody> {
    let Some(conn) = shared.hub.get(id) else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let mut res = Response::new(ResBody::full(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *res.headers_mut() = reply.headers;
    let h = res.headers_mut();
    h.remove(header::CONTENT_LENGTH);
    h.remove(header::CONTENT_TYPE);
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    let task_shared = shared.clone();
    shared.life.tracker.spawn(async move {
        // Held until the WebSocket ends: it still occupies a connection.
        let _slot = slot;
        match on_upgrade.await {
            Ok(upgraded) => run(task_shared, conn, TokioIo::new(upgraded)).await,
            Err(_) => {
                report_close(&task_shared, &conn, 1006, "upgrade failed");
                task_shared.hub.remove(conn.id);
            }
        }
    });
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn handshake_checks_version_and_key() {
        let good = [
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        assert_eq!(
            check_handshake(&headers(&good)).ok().unwrap_or_default(),
            "dGhlIHNhbXBsZSBub25jZQ=="
        );
        // The example of RFC 6455 section 1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let mut v8 = good;
        v8[1].1 = "8";
        assert_eq!(
            check_handshake(&headers(&v8))
                .err()
                .map(|r| r.status())
                .unwrap(),
            426
        );
        let mut short = good;
        short[2].1 = "abc";
        assert_eq!(
            check_handshake(&headers(&short))
                .err()
                .map(|r| r.status())
                .unwrap(),
            400
        );
        assert_eq!(
            check_handshake(&headers(&good[1..]))
                .err()
                .map(|r| r.status())
                .unwrap(),
            400
        );
    }

    #[test]
    fn events_encode_inline_and_external() {
        let hub = Hub::default();
        let conn = hub.register(7, WsOptions::default());
        hub.push(&conn, WsEventKind::Text, Bytes::from_static(b"hi"));
        hub.push(
            &conn,
            WsEventKind::Binary,
            Bytes::from(vec![1u8; crate::embedder::record::EXTERNAL_BODY_MIN]),
        );
        let events = hub.take_events();
        assert_eq!(conn.undrained.load(Ordering::Relaxed), 0);
        let (mut out, mut ext) = (Vec::new(), Vec::new());
        encode_events(&events, &mut out, &mut ext);
        assert_eq!(&out[..12], &[0, 7, 0, 0, 0, 2, 0, 0, 0, 0, b'h', b'i']);
        assert_eq!(out[12], 1);
        assert_eq!(out[21], 1, "large payloads travel as their own buffer");
        assert_eq!(ext.len(), 1);
    }

    #[test]
    fn backpressure_and_pubsub_bookkeeping() {
        let hub = Hub::default();
        let opts = WsOptions {
            high_water_mark: 10,
            max_backpressure: 30,
            ..Default::default()
        };
        hub.register(1, opts.clone());
        hub.register(2, opts);
        assert_eq!(
            hub.send(1, WsFrame::Binary(Bytes::from_static(&[0; 8]))),
            SendStatus::Queued
        );
        assert_eq!(
            hub.send(1, WsFrame::Binary(Bytes::from_static(&[0; 8]))),
            SendStatus::Backpressure
        );
        assert!(hub.subscribe(1, "t") && hub.subscribe(2, "t"));
        assert_eq!(hub.publish("t", WsFrame::Text("x".repeat(5))), 2);
        // Connection 1 passes max_backpressure: it is closed and counted out.
        assert_eq!(hub.publish("t", WsFrame::Text("y".repeat(20))), 1);
        assert_eq!(hub.send(1, WsFrame::Text("z".into())), SendStatus::Closed);
        assert!(hub.unsubscribe(2, "t"));
        assert_eq!(hub.publish("t", WsFrame::Text("z".into())), 0);
        hub.remove(1);
        hub.remove(2);
        assert_eq!(hub.open_count(), 0);
        assert!(hub.topics.read().is_empty());
    }
}
