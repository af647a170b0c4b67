//! The hub: every live WebSocket connection of a server with its outbound
//! queue and backpressure account, the pub/sub topics, and the event queue
//! towards the embedder. The embedder's calls (`Server::ws_*`) land here.

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::deflate::{Packed, WsCompression};
use super::events::{WsEventKind, WsEvents};

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
    /// Whether and how permessage-deflate is offered.
    pub compression: WsCompression,
    /// Messages shorter than this are sent uncompressed.
    pub compression_threshold: usize,
    /// zlib level for what is sent, 1 (fastest) to 9 (smallest).
    pub compression_level: u8,
}

impl Default for WsOptions {
    fn default() -> Self {
        Self {
            max_message_size: 16 * 1024 * 1024,
            idle_timeout: Some(Duration::from_secs(120)),
            heartbeat: None,
            high_water_mark: 1024 * 1024,
            max_backpressure: 64 * 1024 * 1024,
            compression: WsCompression::Shared,
            compression_threshold: 128,
            compression_level: super::deflate::DEFAULT_LEVEL,
        }
    }
}

/// What the embedder can send.
pub enum WsFrame {
    Text(String),
    /// Text as bytes checked to be UTF-8 ([`WsFrame::text_bytes`]), so
    /// that several messages can share one allocation.
    TextBytes(CheckedText),
    Binary(Bytes),
    Ping(Bytes),
}

/// Bytes known to be UTF-8 (made by [`WsFrame::text_bytes`]).
pub struct CheckedText(Utf8Bytes);

impl WsFrame {
    /// A text message from bytes, or the UTF-8 error that keeps them from
    /// being one. The bytes are not copied: the binding cuts the messages
    /// of one batch for one connection from a single buffer.
    pub fn text_bytes(data: Bytes) -> Result<Self, std::str::Utf8Error> {
        Utf8Bytes::try_from(data).map(|t| WsFrame::TextBytes(CheckedText(t)))
    }

    fn into_message(self) -> Message {
        match self {
            WsFrame::Text(s) => Message::Text(s.into()),
            WsFrame::TextBytes(CheckedText(t)) => Message::Text(t),
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

/// A queued frame, its length, and for a published message the
/// compressed copy its subscribers share.
pub(super) type Queued = (Message, usize, Option<Arc<Packed>>);

pub(super) struct Outbound {
    pub(super) frames: VecDeque<Queued>,
    /// A close frame is queued; nothing more is accepted.
    closing: bool,
}

pub(crate) struct WsConn {
    pub(super) id: u32,
    pub(super) opts: WsOptions,
    pub(super) out: Mutex<Outbound>,
    pub(super) buffered: AtomicUsize,
    pub(super) out_ready: Notify,
    pub(super) want_drain: AtomicBool,
    pub(super) paused: AtomicBool,
    /// Bytes of events queued for the embedder and not yet taken.
    pub(super) undrained: AtomicUsize,
    pub(super) resume: Notify,
    /// The single `Close` event has been queued.
    pub(super) reported: AtomicBool,
    /// Frames were queued without waking the writer; it is in `Hub::dirty`.
    pub(super) wake_pending: AtomicBool,
    pub(super) topics: Mutex<FxHashSet<Arc<str>>>,
    /// Code and reason of the close frame we queued, if any.
    pub(super) sent_close: Mutex<Option<(u16, String)>>,
    /// Milliseconds since `born` at which the last frame arrived.
    pub(super) last_seen: AtomicU64,
    pub(super) born: Instant,
}

impl WsConn {
    pub(super) fn touch(&self) {
        self.last_seen
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub(super) fn silent_for(&self) -> Duration {
        let now = self.born.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_seen.load(Ordering::Relaxed)))
    }

    pub(super) fn reading_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
            || self.undrained.load(Ordering::Acquire) > self.opts.high_water_mark
    }

    pub(super) fn is_closing(&self) -> bool {
        self.out.lock().closing
    }

    /// Queues a frame unless a close is already queued; `wake` tells the
    /// writer at once (otherwise [`Hub::flush`] does, for a whole burst).
    pub(super) fn enqueue(
        &self,
        msg: Message,
        packed: Option<Arc<Packed>>,
        wake: bool,
    ) -> SendStatus {
        let len = msg.len();
        {
            let mut out = self.out.lock();
            if out.closing {
                return SendStatus::Closed;
            }
            out.frames.push_back((msg, len, packed));
        }
        let now = self.buffered.fetch_add(len, Ordering::AcqRel) + len;
        if wake {
            self.out_ready.notify_one();
        }
        self.settle(now)
    }

    /// `enqueue` (without waking the writer) for a run of messages to this
    /// connection: one lock of the queue and one update of the byte count
    /// for the run instead of one of each per message. The lock is shared
    /// with the writer on the I/O thread, so each of those atomic
    /// operations moved a contended cache line: they were ~4% of a 32-byte
    /// echo's server CPU. The limits are checked once the run is queued, so
    /// `max_backpressure` can be passed by at most one run (one JS turn's
    /// batch, 64 KB at most) before the connection is closed.
    pub(super) fn enqueue_run(&self, msgs: impl Iterator<Item = Message>) -> SendStatus {
        let mut len = 0;
        {
            let mut out = self.out.lock();
            if out.closing {
                return SendStatus::Closed;
            }
            for msg in msgs {
                let n = msg.len();
                len += n;
                out.frames.push_back((msg, n, None));
            }
        }
        let now = self.buffered.fetch_add(len, Ordering::AcqRel) + len;
        self.settle(now)
    }

    /// The status of a connection whose queue now holds `now` bytes.
    fn settle(&self, now: usize) -> SendStatus {
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
    pub(super) fn enqueue_close(&self, code: u16, reason: &str) -> bool {
        self.close_with(code, reason, false)
    }

    /// Fails the connection (RFC 6455 section 7.1.7): whatever is still
    /// queued is dropped and a close frame with `code` is the next and
    /// last thing the writer sends. False if a close was queued already
    /// (that one stands, and what precedes it still goes out).
    pub(super) fn fail(&self, code: u16, reason: &str) -> bool {
        self.close_with(code, reason, true)
    }

    fn close_with(&self, code: u16, reason: &str, drop_queued: bool) -> bool {
        {
            let mut out = self.out.lock();
            if out.closing {
                return false;
            }
            out.closing = true;
            if drop_queued {
                let dropped: usize = out.frames.drain(..).map(|q| q.1).sum();
                self.buffered.fetch_sub(dropped, Ordering::AcqRel);
            }
            *self.sent_close.lock() = Some((code, reason.to_string()));
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_string().into(),
            };
            out.frames.push_back((Message::Close(Some(frame)), 0, None));
        }
        self.out_ready.notify_one();
        self.resume.notify_one();
        true
    }

    pub(super) fn stop_sending(&self) {
        self.out.lock().closing = true;
    }
}

/// Sends a burst of frames from one embedder turn, remembering the last
/// connection it sent to: consecutive frames for the same connection (the
/// usual case, as one socket read brings several of a client's messages
/// and the handler answers them in order) skip the connection table's
/// read lock, its hash lookup and an `Arc` clone and drop, four atomic
/// operations of the ~7% of the JavaScript thread that queueing a send
/// took in the uncompressed echo. Cost for alternating connections: one
/// comparison. Holds no lock between sends. Dropping it wakes the writers
/// of every connection it queued for ([`Hub::flush`]).
pub struct WsSender<'a> {
    hub: &'a Hub,
    last: Option<Arc<WsConn>>,
}

impl WsSender<'_> {
    /// Queues `frame` for connection `id`, as `send_deferred`.
    pub fn send(&mut self, id: u32, frame: WsFrame) -> SendStatus {
        let c = match &self.last {
            Some(c) if c.id == id => c,
            _ => match self.hub.get(id) {
                Some(c) => self.last.insert(c),
                None => return SendStatus::Closed,
            },
        };
        self.hub.enqueue_deferred(c, frame)
    }

    /// Queues consecutive frames for connection `id` as one run
    /// ([`WsConn::enqueue_run`]); the status after the last.
    pub fn send_run(&mut self, id: u32, frames: impl Iterator<Item = WsFrame>) -> SendStatus {
        let c = match &self.last {
            Some(c) if c.id == id => c,
            _ => match self.hub.get(id) {
                Some(c) => self.last.insert(c),
                None => return SendStatus::Closed,
            },
        };
        let status = c.enqueue_run(frames.map(WsFrame::into_message));
        self.hub.mark_dirty(c, status);
        status
    }
}

impl Drop for WsSender<'_> {
    fn drop(&mut self) {
        self.hub.flush();
    }
}

/// The connections subscribed to one topic.
type Subscribers = FxHashMap<u32, Arc<WsConn>>;

/// Told how many local subscribers a topic has after every change (the
/// pub/sub layer: it tells sibling workers, and subscribes to the broker at
/// the first and unsubscribes after the last). Called with the topics lock
/// held, so the calls for one topic arrive in the order the changes were
/// made; an implementation must only queue work, never block.
pub(crate) trait TopicWatch: Send + Sync {
    fn changed(&self, topic: &Arc<str>, local: usize);
}

/// The events queued for the embedder, already encoded, and the runs
/// they came in: each run's connection and bytes, whose unread count is
/// settled when the batch is taken.
#[derive(Default)]
struct Pending {
    batch: WsEvents,
    runs: Vec<(Arc<WsConn>, usize)>,
}

/// Every live WebSocket connection of a server, its topics, and the event
/// queue towards the embedder.
#[derive(Default)]
pub(crate) struct Hub {
    conns: RwLock<FxHashMap<u32, Arc<WsConn>>>,
    topics: RwLock<FxHashMap<Arc<str>, Subscribers>>,
    events: Mutex<Pending>,
    /// Connections with frames queued by `send_deferred` and no wake-up yet.
    dirty: Mutex<Vec<Arc<WsConn>>>,
    scheduled: AtomicBool,
    /// The pub/sub layer, when messages cross processes.
    watch: OnceLock<Arc<dyn TopicWatch>>,
    /// Tells the task that wakes the embedder at the end of the I/O
    /// thread's turn (`wake_soon`); whether that task could be started.
    soon: Arc<Notify>,
    soon_task: OnceLock<bool>,
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
                    let left = subs.len();
                    if left == 0 {
                        map.remove(&t);
                    }
                    self.notify(&t, left);
                }
            }
        }
    }

    pub(crate) fn send(&self, id: u32, frame: WsFrame) -> SendStatus {
        match self.get(id) {
            Some(c) => c.enqueue(frame.into_message(), None, true),
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
        self.enqueue_deferred(&c, frame)
    }

    fn enqueue_deferred(&self, c: &Arc<WsConn>, frame: WsFrame) -> SendStatus {
        let status = c.enqueue(frame.into_message(), None, false);
        self.mark_dirty(c, status);
        status
    }

    /// Puts `c` on the list of writers the next flush wakes, once.
    fn mark_dirty(&self, c: &Arc<WsConn>, status: SendStatus) {
        // A plain load first: after a connection's first frame of a turn
        // the flag is set, and a load is cheaper than the swap's locked
        // read-modify-write on every later frame.
        if status != SendStatus::Closed
            && !c.wake_pending.load(Ordering::Acquire)
            && !c.wake_pending.swap(true, Ordering::AcqRel)
        {
            self.dirty.lock().push(c.clone());
        }
    }

    /// A sender for one embedder turn's burst of frames (`send_deferred`
    /// each), which wakes their writers when dropped.
    pub(crate) fn sender(&self) -> WsSender<'_> {
        WsSender {
            hub: self,
            last: None,
        }
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
        let mut map = self.topics.write();
        let subs = map.entry(topic.clone()).or_default();
        subs.insert(id, conn);
        let now = subs.len();
        self.notify(&topic, now);
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
        let key = map.get_key_value(topic).map(|(k, _)| k.clone());
        if let (Some(key), Some(subs)) = (key, map.get_mut(topic)) {
            subs.remove(&id);
            let left = subs.len();
            if left == 0 {
                map.remove(topic);
            }
            self.notify(&key, left);
        }
        true
    }

    fn notify(&self, topic: &Arc<str>, local: usize) {
        if let Some(w) = self.watch.get() {
            w.changed(topic, local);
        }
    }

    /// Installs the pub/sub layer (once); `snapshot` then sees every topic
    /// with local subscribers, under the same lock as later changes, so
    /// nothing falls between the snapshot and the first `changed` call.
    pub(crate) fn set_watch(&self, watch: Arc<dyn TopicWatch>) {
        let map = self.topics.read();
        let _ = self.watch.set(watch.clone());
        for (t, subs) in map.iter() {
            watch.changed(t, subs.len());
        }
    }

    /// Runs `f` over every topic with local subscribers and its count, with
    /// the topics lock held (so no change lands in between; `f` must only
    /// queue work).
    pub(crate) fn with_topics(&self, f: impl FnOnce(&mut dyn Iterator<Item = (&Arc<str>, usize)>)) {
        let map = self.topics.read();
        f(&mut map.iter().map(|(t, s)| (t, s.len())));
    }

    /// Local subscribers of `topic`.
    pub(crate) fn subscriber_count(&self, topic: &str) -> usize {
        self.topics.read().get(topic).map_or(0, |s| s.len())
    }

    /// Queues an already built message for every local subscriber of
    /// `topic` without waking their writers: the caller ends its burst with
    /// [`Hub::flush`], so a batch of messages from a peer costs one wake-up
    /// per connection instead of one per message.
    pub(crate) fn publish_deferred(&self, topic: &str, msg: &Message) -> usize {
        let subs: Vec<Arc<WsConn>> = match self.topics.read().get(topic) {
            Some(s) => s.values().cloned().collect(),
            None => return 0,
        };
        // One compressed copy per message, shared by every subscriber.
        let packed = Arc::new(Packed::default());
        let mut n = 0;
        for c in subs {
            if c.enqueue(msg.clone(), Some(packed.clone()), false) == SendStatus::Closed {
                continue;
            }
            n += 1;
            if !c.wake_pending.swap(true, Ordering::AcqRel) {
                self.dirty.lock().push(c);
            }
        }
        n
    }

    /// Queues `frame` for every subscriber of `topic`; returns how many got it.
    pub(crate) fn publish(&self, topic: &str, frame: WsFrame) -> usize {
        self.publish_message(topic, frame).0
    }

    /// `publish`, also giving back the message (for the pub/sub layer to
    /// send on; it shares the payload).
    pub(crate) fn publish_message(&self, topic: &str, frame: WsFrame) -> (usize, Message) {
        let msg = frame.into_message();
        let subs: Vec<Arc<WsConn>> = match self.topics.read().get(topic) {
            Some(s) => s.values().cloned().collect(),
            None => return (0, msg),
        };
        // Message clones share the payload (`Bytes`), so fan-out copies
        // nothing; `packed` makes the compressed copy shared too.
        let packed = Arc::new(Packed::default());
        let n = subs
            .iter()
            .filter(|c| c.enqueue(msg.clone(), Some(packed.clone()), true) != SendStatus::Closed)
            .count();
        (n, msg)
    }

    pub(crate) fn open_count(&self) -> usize {
        self.conns.read().len()
    }

    /// Queues an event; true when the embedder must be woken.
    pub(super) fn push(&self, conn: &Arc<WsConn>, kind: WsEventKind, data: Bytes) -> bool {
        let bytes = data.len();
        self.push_run(conn, std::iter::once((kind, data)), bytes)
    }

    /// Queues a run of one connection's events (`bytes` of data in all);
    /// true when the embedder must be woken. One count update, one lock,
    /// one connection reference and one wake check for the run: per event,
    /// each of those was an atomic operation on a cache line the JS thread
    /// also writes (taking the events, dropping the reference), together
    /// ~5% of a 32-byte echo's server CPU. The events are written in the
    /// embedder's layout here, on the I/O thread ([`WsEvents`]): their
    /// payloads' references are dropped on the thread that made them.
    pub(super) fn push_run(
        &self,
        conn: &Arc<WsConn>,
        events: impl Iterator<Item = (WsEventKind, Bytes)>,
        bytes: usize,
    ) -> bool {
        conn.undrained.fetch_add(bytes, Ordering::AcqRel);
        let mut queue = self.events.lock();
        for (kind, data) in events {
            queue.batch.push(conn.id, kind, &data);
        }
        queue.runs.push((conn.clone(), bytes));
        drop(queue);
        !self.scheduled.swap(true, Ordering::AcqRel)
    }

    /// Wakes the embedder for the events just queued, once the I/O thread
    /// has run out of other ready work (or after Tokio's event interval when
    /// it never does), rather than at once: the events of the whole turn
    /// then reach JavaScript in one batch. Cost: a `notify_one` and one
    /// poll of the waking task per batch (only the event that starts a
    /// batch calls this), against a JS-thread wake-up (eventfd, epoll, a
    /// context switch: several µs) saved for each batch merged; in the
    /// level-6 echo wake-ups went from one per 12.5 messages to one per 110.
    pub(super) fn wake_soon(&self, queue: &Arc<crate::embedder::queue::Queue>) {
        let started = *self.soon_task.get_or_init(|| {
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                return false;
            };
            let (soon, queue) = (self.soon.clone(), queue.clone());
            rt.spawn(async move {
                loop {
                    soon.notified().await;
                    // Deferred by the scheduler until its run queue is empty
                    // or its driver is polled.
                    tokio::task::yield_now().await;
                    queue.wake_ws();
                }
            });
            true
        });
        if started {
            self.soon.notify_one();
        } else {
            queue.wake_ws();
        }
    }

    pub(crate) fn take_events(&self) -> WsEvents {
        self.scheduled.store(false, Ordering::Release);
        let (batch, runs) = {
            let mut q = self.events.lock();
            (q.batch.take(), std::mem::take(&mut q.runs))
        };
        for (conn, bytes) in &runs {
            let before = conn.undrained.fetch_sub(*bytes, Ordering::AcqRel);
            if before > conn.opts.high_water_mark {
                conn.resume.notify_one();
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_encode_inline_and_external() {
        let hub = Hub::default();
        let conn = hub.register(7, WsOptions::default());
        hub.push(&conn, WsEventKind::Text, Bytes::from_static(b"hi"));
        let big = Bytes::from(vec![1u8; crate::embedder::record::EXTERNAL_BODY_MIN]);
        hub.push(&conn, WsEventKind::Binary, big.clone());
        let events = hub.take_events();
        assert_eq!(conn.undrained.load(Ordering::Relaxed), 0);
        assert_eq!(events.len(), 2);
        let out = &events.records;
        assert_eq!(&out[..12], &[0, 7, 0, 0, 0, 2, 0, 0, 0, 0, b'h', b'i']);
        assert_eq!(out[12], 1);
        assert_eq!(out[21], 1, "large payloads travel as their own buffer");
        assert_eq!(events.external.len(), 1);
        let decoded: Vec<super::super::events::WsEvent> = events.iter().collect();
        assert_eq!(decoded.len(), 2);
        assert_eq!(
            (decoded[0].id, decoded[0].kind, &decoded[0].data[..]),
            (7, WsEventKind::Text, &b"hi"[..])
        );
        assert_eq!(
            (decoded[1].kind, decoded[1].data.clone()),
            (WsEventKind::Binary, big)
        );
        // The next batch starts empty, with room for one like the last.
        assert!(hub.take_events().is_empty());
    }

    #[tokio::test]
    async fn the_embedder_is_woken_once_per_turn_after_it() {
        use std::sync::atomic::Ordering::SeqCst;
        let (queue, waker, _) = crate::embedder::queue::tests::queue();
        let queue = Arc::new(queue);
        let hub = Hub::default();
        let conn = hub.register(1, WsOptions::default());
        let push = |n: usize| {
            for _ in 0..n {
                if hub.push(&conn, WsEventKind::Text, Bytes::from_static(b"x")) {
                    hub.wake_soon(&queue);
                }
            }
        };
        let woken = |n: usize| {
            let wakes = waker.wakes.clone();
            async move {
                let wait = async {
                    while wakes.load(SeqCst) < n {
                        tokio::task::yield_now().await;
                    }
                };
                tokio::time::timeout(Duration::from_secs(5), wait)
                    .await
                    .expect("the embedder is woken");
            }
        };
        // Three events in one turn: no wake-up during it, one after it.
        push(3);
        assert_eq!(waker.wakes.load(SeqCst), 0);
        woken(1).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(waker.wakes.load(SeqCst), 1);
        assert_eq!(hub.take_events().len(), 3);
        // Once the batch is taken, the next event wakes it again.
        push(1);
        woken(2).await;
        assert_eq!(hub.take_events().len(), 1);
    }

    #[test]
    fn a_sender_queues_like_send_deferred_and_flushes_when_dropped() {
        let hub = Hub::default();
        let a = hub.register(1, WsOptions::default());
        let b = hub.register(2, WsOptions::default());
        {
            let mut s = hub.sender();
            for id in [1, 1, 2, 1] {
                assert_eq!(s.send(id, WsFrame::Text("x".into())), SendStatus::Queued);
            }
            assert_eq!(s.send(3, WsFrame::Text("x".into())), SendStatus::Closed);
            // Each connection is on the dirty list once, not yet woken.
            assert_eq!(hub.dirty.lock().len(), 2);
            assert!(a.wake_pending.load(Ordering::Acquire));
        }
        assert!(hub.dirty.lock().is_empty());
        assert!(!a.wake_pending.load(Ordering::Acquire));
        assert_eq!(a.out.lock().frames.len(), 3);
        assert_eq!(b.out.lock().frames.len(), 1);
        assert_eq!(a.buffered.load(Ordering::Acquire), 3);
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

    #[test]
    fn topic_watch_sees_every_count_change_in_order() {
        struct Log(Mutex<Vec<(String, usize)>>);
        impl TopicWatch for Log {
            fn changed(&self, topic: &Arc<str>, local: usize) {
                self.0.lock().push((topic.to_string(), local));
            }
        }
        let hub = Hub::default();
        hub.register(1, WsOptions::default());
        hub.register(2, WsOptions::default());
        assert!(hub.subscribe(1, "a"));
        let log = Arc::new(Log(Mutex::new(Vec::new())));
        // Installing reports what exists already.
        hub.set_watch(log.clone());
        assert!(hub.subscribe(2, "a") && hub.subscribe(2, "b"));
        assert!(hub.subscribe(2, "b"), "subscribing twice is no change");
        assert!(hub.unsubscribe(1, "a"));
        assert_eq!(hub.subscriber_count("a"), 1);
        hub.remove(2);
        let seen: Vec<(String, usize)> = log.0.lock().clone();
        let want = [("a", 1), ("a", 2), ("b", 1), ("a", 1), ("a", 0), ("b", 0)];
        let sorted_tail = {
            // `remove` reports its topics in no particular order.
            let mut t = seen[4..].to_vec();
            t.sort();
            t
        };
        assert_eq!(
            &seen[..4],
            &want[..4]
                .iter()
                .map(|(t, n)| (t.to_string(), *n))
                .collect::<Vec<_>>()[..]
        );
        assert_eq!(
            sorted_tail,
            vec![("a".to_string(), 0), ("b".to_string(), 0)]
        );
        assert_eq!(hub.subscriber_count("a"), 0);
    }
}
