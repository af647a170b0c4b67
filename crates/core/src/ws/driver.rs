//! One upgraded connection's task: reads frames into events for the
//! embedder, writes what was queued for it, runs heartbeats and the closing
//! handshake, and stops with the server.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::deflate::{Agreed, CompressFailed, Deflater, COMPRESS_FAILED};
use super::events::WsEventKind;
use super::hub::{Hub, WsConn, WsOptions};
use super::inflate::{Fault, Inflating};
use crate::embedder::queue::Queue;
use crate::lifecycle::Lifecycle;
use crate::observe::metrics::{open_connection, websocket_message, Metrics, Protocol};
use crate::observe::stats::Stats;

/// How long one side of a closing connection waits for the other.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

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

/// The messages of one socket read for one connection, queued for the
/// embedder together ([`Hub::push_run`]) once the stream has no complete
/// frame left, or sooner when the run grows past a few hundred messages or
/// 64 KB. Holds no memory between reads (the vector goes with the run).
#[derive(Default)]
struct Run {
    events: Vec<(WsEventKind, Bytes)>,
    bytes: usize,
}

/// A run is handed over at this many messages or bytes at the latest.
const RUN_MAX_EVENTS: usize = 256;
const RUN_MAX_BYTES: usize = 64 * 1024;

impl Run {
    fn add(&mut self, shared: &WsEnv, conn: &Arc<WsConn>, kind: WsEventKind, data: Bytes) {
        self.bytes += data.len();
        self.events.push((kind, data));
        if self.events.len() >= RUN_MAX_EVENTS || self.bytes >= RUN_MAX_BYTES {
            self.flush(shared, conn);
        }
    }

    fn flush(&mut self, shared: &WsEnv, conn: &Arc<WsConn>) {
        if self.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.events);
        let bytes = std::mem::take(&mut self.bytes);
        if shared.hub.push_run(conn, events.into_iter(), bytes) {
            shared.hub.wake_soon(&shared.queue);
        }
    }
}

/// The stream's next item; whenever it has none ready, the run so far is
/// handed over first, so no message waits in it while the reader sleeps.
fn next_or_flush<'a, St: futures_util::Stream + Unpin>(
    stream: &'a mut St,
    run: &'a mut Run,
    shared: &'a WsEnv,
    conn: &'a Arc<WsConn>,
) -> impl std::future::Future<Output = Option<St::Item>> + 'a {
    std::future::poll_fn(move |cx| {
        let next = stream.poll_next_unpin(cx);
        if next.is_pending() {
            run.flush(shared, conn);
        }
        next
    })
}

fn event(shared: &WsEnv, conn: &Arc<WsConn>, kind: WsEventKind, data: Bytes) {
    // The embedder is woken once the I/O thread's turn is over rather than
    // at the first event: fewer, larger batches for the JS thread (less
    // sleeping and waking on both threads; docs/websocket.md).
    if shared.hub.push(conn, kind, data) {
        shared.hub.wake_soon(&shared.queue);
    }
}

/// Queues the connection's one and only `Close` event.
pub(super) fn report_close(shared: &WsEnv, conn: &Arc<WsConn>, code: u16, reason: &str) {
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
    // Called once reading was seen paused; it may have resumed since (two
    // atomic loads), and then no `Notified` is built, enabled and dropped
    // (when this ran per message, that took ~4% of the I/O thread in a
    // WebSocket echo profile).
    if !conn.reading_paused() {
        return;
    }
    loop {
        let resumed = conn.resume.notified();
        tokio::pin!(resumed);
        resumed.as_mut().enable();
        // A closing connection reads on: the peer's close reply must be seen.
        if !conn.reading_paused() || conn.is_closing() {
            // Time spent paused for the embedder is not the peer's silence:
            // the idle clock starts again from here.
            conn.touch();
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
/// With permessage-deflate agreed, the transport is wrapped to inflate what
/// arrives and the writer deflates what leaves.
pub(crate) async fn run<S>(shared: Arc<WsEnv>, conn: Arc<WsConn>, io: S, deflate: Option<Agreed>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Stats::inc(&shared.stats.websockets_open);
    Stats::inc(&shared.stats.websockets_total);
    let _open = open_connection(&shared.metrics, Protocol::WebSocket);
    let cfg = Some(config(&conn.opts));
    match deflate {
        Some(agreed) => {
            let fault = Fault::default();
            let io = Inflating::new(
                io,
                agreed.client_takeover,
                conn.opts.max_message_size,
                fault.clone(),
            );
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, cfg).await;
            conn.touch();
            let deflater = Deflater::new(
                agreed,
                conn.opts.compression_threshold,
                conn.opts.compression_level,
            );
            drive(&shared, &conn, ws, Some(deflater), &fault).await;
        }
        None => {
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, cfg).await;
            conn.touch();
            drive(&shared, &conn, ws, None, &Fault::default()).await;
        }
    }
    report_close(&shared, &conn, 1006, "connection lost");
    shared.hub.remove(conn.id);
    Stats::dec(&shared.stats.websockets_open);
}

async fn drive<S>(
    shared: &Arc<WsEnv>,
    conn: &Arc<WsConn>,
    ws: WebSocketStream<S>,
    mut deflater: Option<Deflater>,
    fault: &Fault,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let reader = async {
        // One timer for the connection's life, moved only when it fires: a
        // `timeout` around each read registered and removed a timer entry
        // (and read the clock twice) per message. When it fires, the time
        // since the last frame (`touch`) says whether the socket really was
        // idle that long, or how much longer to wait.
        let idle = conn.opts.idle_timeout;
        let mut idle_timer = idle.map(|d| Box::pin(tokio::time::sleep(d)));
        let mut run = Run::default();
        loop {
            // Only a paused reader waits, and its run is handed over first.
            if conn.reading_paused() {
                run.flush(shared, conn);
                wait_for_credit(conn).await;
            }
            let next = match (&mut idle_timer, idle) {
                (Some(timer), Some(d)) => loop {
                    tokio::select! {
                        biased;
                        n = next_or_flush(&mut stream, &mut run, shared, conn) => break n,
                        _ = timer.as_mut() => {
                            let silent = conn.silent_for();
                            if silent >= d {
                                run.flush(shared, conn);
                                if conn.enqueue_close(1001, "idle timeout") {
                                    report_close(shared, conn, 1001, "idle timeout");
                                }
                                return ReadEnd::Closing;
                            }
                            timer.as_mut().reset(tokio::time::Instant::now() + (d - silent));
                        }
                    }
                },
                _ => next_or_flush(&mut stream, &mut run, shared, conn).await,
            };
            if !matches!(next, Some(Ok(Message::Text(_) | Message::Binary(_)))) {
                // Whatever ends or closes the connection comes after the
                // messages read before it.
                run.flush(shared, conn);
            }
            match next {
                None => return ReadEnd::Gone,
                Some(Err(e)) => {
                    // The inflating wrapper says why it failed the read.
                    let why = fault.lock().take().or_else(|| error_close(&e));
                    return match why {
                        Some((code, reason)) => {
                            conn.enqueue_close(code, reason);
                            report_close(shared, conn, code, reason);
                            ReadEnd::Closing
                        }
                        None => ReadEnd::Gone,
                    };
                }
                Some(Ok(msg)) => {
                    // The messages of one run came with one socket read:
                    // the clock is read for its first (a vDSO clock read
                    // per message was ~3% of a 32-byte echo's server CPU).
                    if run.events.is_empty() {
                        conn.touch();
                    }
                    websocket_message(shared.metrics.as_deref(), &msg, true);
                    match msg {
                        Message::Text(t) => run.add(shared, conn, WsEventKind::Text, t.into()),
                        Message::Binary(b) => run.add(shared, conn, WsEventKind::Binary, b),
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
        // Swapped with the connection's queue each turn, so the queue's
        // storage is reused both ways: no allocation and no copy per batch.
        let mut batch = std::collections::VecDeque::new();
        loop {
            let ready = conn.out_ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            std::mem::swap(&mut batch, &mut conn.out.lock().frames);
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
            // The whole batch leaves the count, sent or dropped.
            let bytes: usize = batch.iter().map(|q| q.1).sum();
            let mut closed = false;
            for (msg, _, packed) in batch.drain(..) {
                websocket_message(shared.metrics.as_deref(), &msg, false);
                closed |= matches!(msg, Message::Close(_));
                let msg = match &mut deflater {
                    Some(d) => match d.pack(msg, packed.as_deref()) {
                        Ok(m) => m,
                        Err(CompressFailed) => {
                            // Nothing of this message went out: the
                            // connection is failed (RFC 6455 7.1.7), its
                            // close frame the next thing written.
                            let (code, reason) = COMPRESS_FAILED;
                            if conn.fail(code, reason) {
                                report_close(shared, conn, code, reason);
                            }
                            break;
                        }
                    },
                    None => msg,
                };
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
