//! The hand-off between the Tokio workers and the embedder's single thread
//! (the JS event loop).
//!
//! Producers push parsed requests and wake the consumer only when the queue
//! goes from "nobody scheduled" to "scheduled": under load many requests
//! share one wake-up. The consumer takes batches until one comes back empty,
//! and only that empty take clears the flag, under the queue's lock: a push
//! racing with it either lands in a batch still to be taken or finds the
//! flag clear and wakes the consumer — never a lost wake-up.
//!
//! An embedder that reads requests as byte records (the JS binding) asks
//! for them with [`Waker::records`]: each request is then encoded by the
//! Tokio worker that parsed it, at the push, and only the bytes, the large
//! bodies and the responder cross to the consumer's thread. The request's
//! parts (the `HeaderMap`, the path and query strings, the parameters) are
//! dropped where they were allocated, while still in that core's cache;
//! handed over whole, the consumer read them from the other core and freed
//! them into the producer's malloc arena (docs/performance.md §17.2).

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http::HeaderMap;
use parking_lot::{Mutex, MutexGuard};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

use crate::config::client_auth::TlsPeer;
use crate::embedder::reply::Reply;
use crate::observe::stats::Stats;

/// Called by the engine from Tokio threads. Implementations must be cheap
/// and must not block: they typically schedule a callback on another thread.
pub trait Waker: Send + Sync + 'static {
    /// Requests are waiting in the queue.
    fn wake(&self);
    /// The server has finished closing; no more wake-ups will follow.
    fn closed(&self);
    /// WebSocket events are waiting ([`crate::Server::take_ws_events`]).
    fn wake_ws(&self) {
        self.wake()
    }
    /// Whether the consumer takes requests as encoded records
    /// ([`crate::Server::take_records`]) rather than as [`Incoming`]s
    /// ([`crate::Server::take_batch`]). Asked once, when the server starts.
    fn records(&self) -> bool {
        false
    }
    /// Whether records end with the request's absolute URL
    /// ([`crate::record::FLAG_URL`]), which only fetch-style handlers read
    /// (`request.url`). Asked once, when the server starts.
    fn urls(&self) -> bool {
        true
    }
}

/// HTTP version of a request, as reported to handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Version {
    Http10 = 0,
    Http11 = 1,
    Http2 = 2,
    Http3 = 3,
}

/// A parsed request waiting for the embedder.
pub struct Incoming {
    pub id: u32,
    /// Matched route, or `None` when no route matched and the embedder asked
    /// to see misses (then `allow` is set for a 405).
    pub route: Option<u32>,
    pub allow: Option<Vec<String>>,
    pub method: http::Method,
    /// Path as received, without the query.
    pub path: String,
    /// Query string without '?', as received.
    pub query: String,
    pub params: Vec<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body streams: `body` is empty and the rest is taken with
    /// [`crate::Server::take_upload`].
    pub streamed: bool,
    /// The streamed body is `multipart/form-data`, sent as parts
    /// (`body::multipart` frames) rather than raw bytes.
    pub multipart: bool,
    /// The streamed body is `multipart/form-data` and unread: the embedder
    /// takes it as raw bytes or, with `take_parts`, as parts.
    pub parts_on_ask: bool,
    pub remote: SocketAddr,
    pub version: Version,
    pub tls: bool,
    /// SNI name and client certificate, when the TLS connection has either
    /// (one shared copy per connection).
    pub tls_peer: Option<Arc<TlsPeer>>,
    pub responder: Responder,
}

/// Where a record's header fields come from.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    Map(&'a HeaderMap),
    /// The own HTTP/1.1 driver's head, parsed again for its fields
    /// (`dispatch::head`): no map was built for the request.
    Head(&'a dyn HeadFields),
}

/// A request head kept as its bytes, as the record encoder reads it: the
/// dispatcher's `RawHead` implements it, so that the queue does not depend
/// on the dispatcher (which depends on the queue). Cost: one indirect call
/// per field, a few ns against the field's copy.
pub(crate) trait HeadFields {
    /// Calls `f` with each field's name (as sent) and value, in the order sent.
    fn each_field(&self, f: &mut dyn FnMut(&str, &[u8]));
    /// The head's length in bytes (room to reserve for its fields).
    fn len(&self) -> usize;
}

/// A request as the record encoder reads it: [`Incoming`]'s fields,
/// borrowed, so that the dispatcher can push a request whose parts it
/// still holds (the URI, the head's bytes) without copying them into
/// owned strings and a map first ([`Queue::push_fields`]).
pub(crate) struct Fields<'a> {
    pub(crate) id: u32,
    pub(crate) route: Option<u32>,
    pub(crate) allow: Option<&'a [String]>,
    pub(crate) method: &'a http::Method,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    pub(crate) params: &'a [String],
    pub(crate) headers: Source<'a>,
    pub(crate) body: &'a Bytes,
    pub(crate) streamed: bool,
    pub(crate) multipart: bool,
    pub(crate) parts_on_ask: bool,
    pub(crate) remote: SocketAddr,
    pub(crate) version: Version,
    pub(crate) tls: bool,
    pub(crate) tls_peer: Option<&'a TlsPeer>,
}

impl Incoming {
    /// Its fields as the record encoder reads them.
    pub(crate) fn fields(&self) -> Fields<'_> {
        Fields {
            id: self.id,
            route: self.route,
            allow: self.allow.as_deref(),
            method: &self.method,
            path: &self.path,
            query: &self.query,
            params: &self.params,
            headers: Source::Map(&self.headers),
            body: &self.body,
            streamed: self.streamed,
            multipart: self.multipart,
            parts_on_ask: self.parts_on_ask,
            remote: self.remote,
            version: self.version,
            tls: self.tls,
            tls_peer: self.tls_peer.as_deref(),
        }
    }
}

/// Tells a protocol layer that the embedder started watching a request.
///
/// Some departures cost something to watch on every request (HTTP/3: the
/// stream's `stopped()` future takes the QUIC connection's lock and
/// registers a notification on each poll), while nearly no handler looks
/// at its signal. Such a layer puts one of these in the request's
/// extensions; the dispatcher hands it to the request's [`Responder`], and
/// [`crate::Server::watch_abort`] fires it after registering the watcher.
/// The layer starts its check only then: a departure that happened
/// earlier is found at once by that first check, and dropping the request
/// then tells the watcher just registered. Cost per request that carries
/// one: an `Arc` and the extension; telling it, an atomic store and a wake.
#[derive(Clone, Default)]
pub(crate) struct WatchWanted(Arc<Wanted>);

#[derive(Default)]
struct Wanted {
    told: AtomicBool,
    waker: AtomicWaker,
}

impl WatchWanted {
    /// The embedder watches the request from now on.
    pub(crate) fn tell(&self) {
        self.0.told.store(true, Ordering::Release);
        self.0.waker.wake();
    }

    /// Resolves once [`WatchWanted::tell`] was called.
    pub(crate) fn told(&self) -> Told<'_> {
        Told(&self.0)
    }
}

/// The future of [`WatchWanted::told`].
pub(crate) struct Told<'a>(&'a Wanted);

impl Future for Told<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.told.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.0.waker.register(cx.waker());
        // Told between the load and the registration: the wake went nowhere.
        if self.0.told.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// The way back for one request. Dropping it unanswered makes the protocol
/// layer answer 500, so a lost response can never hang a client.
///
/// The way is a oneshot, or, for a request armed for a direct answer
/// (`direct`), the connection's slot, which carries the reply when the
/// answer is not written directly (docs/performance.md §17.7: no oneshot
/// made, polled and freed per request on that path).
pub struct Responder {
    tx: Option<oneshot::Sender<Reply>>,
    stats: Arc<Stats>,
    /// The protocol layer's request to be told when the embedder watches
    /// this request (HTTP/3's stop watch); `None` for the other protocols.
    wanted: Option<WatchWanted>,
    /// The connection's slot and this request's id there, when the answer
    /// may be written from the embedder's thread (`embedder::direct`).
    pub(crate) direct: Option<(Arc<super::direct::Slot>, u32)>,
}

impl Responder {
    /// Hands over the protocol layer's [`WatchWanted`] of this request.
    pub(crate) fn set_watch_wanted(&mut self, wanted: WatchWanted) {
        self.wanted = Some(wanted);
    }

    /// The embedder watches this request from now on: tells the protocol
    /// layer, if it asked.
    pub(crate) fn watching(&self) {
        if let Some(w) = &self.wanted {
            w.tell();
        }
    }

    /// Opens the oneshot the reply will travel through.
    pub(crate) fn open(&mut self) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        self.tx = Some(tx);
        rx
    }

    /// Sends the reply. Returns false when the client is no longer waiting
    /// (timed out or disconnected); the reply is then dropped.
    pub fn send(mut self, reply: Reply) -> bool {
        if let Some(tx) = self.tx.take() {
            return tx.send(reply).is_ok();
        }
        match self.direct.take() {
            Some((slot, id)) => slot.reply(id, reply),
            None => false,
        }
    }

    /// Whether the answer may be written straight into the socket.
    pub(crate) fn can_write_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Writes `answer` (the encoded response) on the connection's socket
    /// from this thread (`embedder::direct`). `Some(id)`: answered, the
    /// waiting task not woken (drop the responder); `None`: nothing was
    /// written, [`Responder::send`] still works.
    pub(crate) fn write_direct(&mut self, answer: &[u8]) -> Option<u32> {
        let (slot, id) = self.direct.as_ref()?;
        if !slot.write(*id, answer) {
            return None;
        }
        let id = *id;
        self.direct = None;
        Some(id)
    }

    /// True when the waiting side has gone (timeout, disconnect).
    pub fn is_abandoned(&self) -> bool {
        match (&self.tx, &self.direct) {
            (Some(tx), _) => tx.is_closed(),
            (None, Some((slot, id))) => !slot.waits_for(*id),
            (None, None) => true,
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        Stats::dec(&self.stats.pending);
        // Armed and never answered: the waiting request answers 500, as
        // when a oneshot's sender is dropped.
        if self.tx.is_none() {
            if let Some((slot, id)) = self.direct.take() {
                slot.abandon(id);
            }
        }
    }
}

/// Turns of the Tokio worker (each ends with a poll of its I/O driver)
/// that a wake-up of the consumer waits for, counted from the push that
/// found it asleep: 2 lets the requests read in the next turn join the
/// batch too. Measured on 2026-12-06 (docs/performance.md section 11):
/// against 1, the JS thread sleeps 30-50% less often per request and the
/// whole server costs less per request in most alternated pairs at 16 and
/// 64 connections. Cost: one more driver poll (non-blocking when the worker
/// has nothing else to do) before a lone request reaches the consumer.
/// `HTTPY_WAKE_TICKS=N` sets it (1 is the earlier behaviour), to measure.
static WAKE_TICKS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    std::env::var("HTTPY_WAKE_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| (1..=8).contains(&n))
        .unwrap_or(2)
});

/// A batch of requests encoded by the producers ([`Waker::records`]): the
/// records back to back (`record::encode`'s layout), the large bodies they
/// refer to by index (from 0 in each batch), and each request's responder.
/// The consumer passes the same one back to every
/// [`crate::Server::take_records`] once it has emptied it: the queue swaps
/// it with its own, so neither side allocates once both have grown to the
/// size of a batch.
#[derive(Default)]
pub struct Records {
    pub bytes: Vec<u8>,
    pub bodies: Vec<Bytes>,
    pub responders: Vec<(u32, Responder)>,
}

impl Records {
    /// No request in it.
    pub fn is_empty(&self) -> bool {
        self.responders.is_empty()
    }

    /// Empties it, keeping its capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.bodies.clear();
        self.responders.clear();
    }
}

/// What waits for the consumer: requests whole, or encoded
/// ([`Waker::records`]); one of the two stays empty.
struct Waiting {
    items: Vec<Incoming>,
    records: Records,
}

impl Waiting {
    fn is_empty(&self) -> bool {
        self.items.is_empty() && self.records.is_empty()
    }
}

/// How a request becomes a record (`record::encode_fields`), handed in by
/// the server so that this module does not depend on the record's; the
/// `bool` says whether to write the URL trailer ([`Waker::urls`]).
pub(crate) type Encode = fn(&Fields<'_>, &mut Vec<u8>, &mut Vec<Bytes>, bool);

pub(crate) struct Queue {
    items: Mutex<Waiting>,
    /// Set when [`Waker::records`] asked for it: pushes encode.
    encode: Option<Encode>,
    /// Encodes whole requests taken as records.
    encoder: Encode,
    /// Records carry the URL trailer ([`Waker::urls`]).
    urls: bool,
    scheduled: AtomicBool,
    next_id: AtomicU32,
    waker: Arc<dyn Waker>,
    stats: Arc<Stats>,
}

impl Queue {
    pub(crate) fn new(waker: Box<dyn Waker>, stats: Arc<Stats>, encoder: Encode) -> Self {
        let encode = waker.records().then_some(encoder);
        let urls = waker.urls();
        Self {
            items: Mutex::new(Waiting {
                items: if encode.is_some() {
                    Vec::new()
                } else {
                    Vec::with_capacity(256)
                },
                records: Records::default(),
            }),
            encode,
            encoder,
            urls,
            scheduled: AtomicBool::new(false),
            next_id: AtomicU32::new(1),
            waker: Arc::from(waker),
            stats,
        }
    }

    /// Creates a responder/receiver pair and counts it as pending.
    #[cfg(test)]
    pub(crate) fn channel(&self) -> (u32, Responder, oneshot::Receiver<Reply>) {
        let (id, mut responder) = self.responder();
        let rx = responder.open();
        (id, responder, rx)
    }

    /// Creates a responder without its way back, counted as pending: the
    /// caller arms it for a direct answer (its reply then travels through
    /// the connection's slot) or opens its channel ([`Responder::open`]).
    pub(crate) fn responder(&self) -> (u32, Responder) {
        Stats::inc(&self.stats.pending);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        (
            id,
            Responder {
                tx: None,
                stats: self.stats.clone(),
                wanted: None,
                direct: None,
            },
        )
    }

    pub(crate) fn push(&self, item: Incoming) {
        if let Some(encode) = self.encode {
            let mut waiting = self.encoded(encode, &item.fields());
            waiting.records.responders.push((item.id, item.responder));
            drop(waiting);
            // The rest of `item` is dropped here, on this thread.
        } else {
            self.items.lock().items.push(item);
        }
        self.scheduled();
    }

    /// Whether pushes are encoded at once ([`Waker::records`]): only then
    /// does [`Queue::push_fields`] take a request.
    pub(crate) fn encodes(&self) -> bool {
        self.encode.is_some()
    }

    /// Pushes a request given by its borrowed fields, on a queue that
    /// [`encodes`](Queue::encodes) (on another, the request is dropped and
    /// its responder with it: the client gets a 500).
    pub(crate) fn push_fields(&self, item: &Fields<'_>, responder: Responder) {
        let Some(encode) = self.encode else {
            debug_assert!(false, "push_fields on a queue of whole requests");
            return;
        };
        let mut waiting = self.encoded(encode, item);
        waiting.records.responders.push((item.id, responder));
        drop(waiting);
        self.scheduled();
    }

    /// Encodes `item` into the batch and returns the batch, still locked,
    /// for its responder. Encoded under the lock, straight into the batch
    /// (a body's index is its place in this batch's list). Cost: the lock
    /// is held for the encode, ~0.1 µs for a small request; the consumer
    /// takes it once per batch, for a swap.
    fn encoded(&self, encode: Encode, item: &Fields<'_>) -> MutexGuard<'_, Waiting> {
        let mut waiting = self.items.lock();
        let records = &mut waiting.records;
        encode(item, &mut records.bytes, &mut records.bodies, self.urls);
        waiting
    }

    /// After a push: wakes the consumer unless a wake-up is on its way.
    fn scheduled(&self) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.wake_after_tick();
        }
    }

    /// Wakes the consumer once this Tokio worker has run the tasks that are
    /// ready now and those of the next turn ([`WAKE_TICKS`]): the requests
    /// its other connections parse meanwhile join the batch instead of each
    /// turn's first request waking the consumer alone. A yielded task is
    /// woken only after the worker polls its driver, i.e. at the end of the
    /// turn. Costs one small task per batch; saves consumer wake-ups, each
    /// an eventfd write here and a sleep and wake of the JS thread (several
    /// µs on a VM).
    fn wake_after_tick(&self) {
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let waker = self.waker.clone();
                rt.spawn(async move {
                    for _ in 0..*WAKE_TICKS {
                        tokio::task::yield_now().await;
                    }
                    waker.wake();
                });
            }
            Err(_) => self.waker.wake(),
        }
    }

    /// Takes what is queued. The consumer calls this until it comes back
    /// empty: only then is the wake-up flag cleared (under the lock, so a
    /// push either lands in a batch taken later or sees the flag clear and
    /// wakes the consumer). While the consumer works through batches, pushes
    /// find the flag set and cost no wake-up at all.
    pub(crate) fn take_batch(&self) -> Vec<Incoming> {
        let mut waiting = self.items.lock();
        if waiting.is_empty() {
            self.scheduled.store(false, Ordering::Release);
            return Vec::new();
        }
        let cap = waiting.items.capacity().clamp(64, 4096);
        std::mem::replace(&mut waiting.items, Vec::with_capacity(cap))
    }

    /// Like [`Queue::take_batch`], as records: swaps what is queued with
    /// `into`, which the caller has emptied ([`Records::clear`]); false
    /// (and the wake-up flag cleared) when nothing waits. Requests queued
    /// whole (a waker that did not ask for records) are encoded here.
    pub(crate) fn take_records(&self, into: &mut Records) -> bool {
        debug_assert!(into.is_empty() && into.bytes.is_empty());
        let whole = {
            let mut waiting = self.items.lock();
            if waiting.is_empty() {
                self.scheduled.store(false, Ordering::Release);
                return false;
            }
            std::mem::swap(&mut waiting.records, into);
            std::mem::take(&mut waiting.items)
        };
        for item in whole {
            (self.encoder)(&item.fields(), &mut into.bytes, &mut into.bodies, self.urls);
            into.responders.push((item.id, item.responder));
        }
        true
    }

    pub(crate) fn wake_ws(&self) {
        self.waker.wake_ws();
    }

    pub(crate) fn notify_closed(&self) {
        self.waker.closed();
    }
}

/// A [`Waker`] for tests: counts its calls.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct CountingWaker {
    pub(crate) wakes: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) closed: Arc<AtomicBool>,
    /// Answer to [`Waker::records`].
    pub(crate) records: bool,
    /// The opposite of the answer to [`Waker::urls`].
    pub(crate) without_urls: bool,
}

#[cfg(test)]
impl Waker for CountingWaker {
    fn wake(&self) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
    fn closed(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }
    fn records(&self) -> bool {
        self.records
    }
    fn urls(&self) -> bool {
        !self.without_urls
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http::Method;

    pub(crate) fn queue() -> (Queue, CountingWaker, Arc<Stats>) {
        let waker = CountingWaker::default();
        let stats = Arc::new(Stats::default());
        (
            Queue::new(
                Box::new(waker.clone()),
                stats.clone(),
                super::super::record::encode_fields,
            ),
            waker,
            stats,
        )
    }

    pub(crate) fn incoming(q: &Queue, path: &str) -> (Incoming, oneshot::Receiver<Reply>) {
        let (id, responder, rx) = q.channel();
        let req = Incoming {
            id,
            route: Some(0),
            allow: None,
            method: Method::GET,
            path: path.to_string(),
            query: String::new(),
            params: Vec::new(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            streamed: false,
            multipart: false,
            parts_on_ask: false,
            remote: "127.0.0.1:4000".parse().unwrap(),
            version: Version::Http11,
            tls: false,
            tls_peer: None,
            responder,
        };
        (req, rx)
    }

    #[test]
    fn a_records_queue_encodes_at_the_push_and_numbers_bodies_per_batch() {
        let waker = CountingWaker {
            records: true,
            ..CountingWaker::default()
        };
        let stats = Arc::new(Stats::default());
        let q = Queue::new(
            Box::new(waker.clone()),
            stats.clone(),
            super::super::record::encode_fields,
        );
        let big = Bytes::from(vec![7u8; super::super::record::EXTERNAL_BODY_MIN]);
        // What the consumer must get: the records `encode` writes for the
        // same requests, bodies numbered from 0 in each batch.
        let mut expected = Vec::new();
        let mut ext = Vec::new();
        let (mut a, ra) = incoming(&q, "/a");
        a.body = Bytes::from_static(b"small");
        a.query = "x=1".into();
        let (mut b, _rb) = incoming(&q, "/b");
        b.body = big.clone();
        let ids = [a.id, b.id];
        for r in [a, b] {
            super::super::record::encode(&r, &mut expected, &mut ext);
            q.push(r);
        }
        assert_eq!(waker.wakes.load(Ordering::SeqCst), 1);
        assert!(q.take_batch().is_empty(), "nothing is queued whole");
        let mut taken = Records::default();
        assert!(q.take_records(&mut taken));
        assert_eq!(taken.bytes, expected);
        assert_eq!(taken.bodies.len(), 1);
        assert_eq!(taken.bodies[0], big);
        assert_eq!(
            taken
                .responders
                .iter()
                .map(|(id, _)| *id)
                .collect::<Vec<_>>(),
            ids
        );
        assert_eq!(stats.snapshot().pending, 2);
        let (_, first) = taken.responders.remove(0);
        assert!(first.send(Reply::text(http::StatusCode::OK, "ok")));
        assert_eq!(ra.blocking_recv().unwrap().status, http::StatusCode::OK);

        // The next batch: its large body is index 0 again, in a record
        // written the same way.
        taken.clear();
        let (mut c, _rc) = incoming(&q, "/c");
        c.body = big.clone();
        let (mut expected, mut ext) = (Vec::new(), Vec::new());
        super::super::record::encode(&c, &mut expected, &mut ext);
        q.push(c);
        assert!(q.take_records(&mut taken));
        assert_eq!(taken.bytes, expected);
        assert_eq!(taken.bodies.len(), 1);
        assert_eq!(waker.wakes.load(Ordering::SeqCst), 1, "still scheduled");

        // Only the empty take re-arms the wake-up.
        taken.clear();
        assert!(!q.take_records(&mut taken));
        q.push(incoming(&q, "/d").0);
        assert_eq!(waker.wakes.load(Ordering::SeqCst), 2);
        drop(taken);
        assert_eq!(
            stats.snapshot().pending,
            1,
            "/d waits; the rest were dropped"
        );
    }

    #[test]
    fn a_queue_told_no_urls_writes_records_without_the_url_trailer() {
        for records in [true, false] {
            let waker = CountingWaker {
                records,
                without_urls: true,
                ..CountingWaker::default()
            };
            let q = Queue::new(
                Box::new(waker),
                Arc::new(Stats::default()),
                super::super::record::encode_fields,
            );
            let (mut a, _ra) = incoming(&q, "/a");
            a.query = "x=1".into();
            a.headers
                .insert(http::header::HOST, http::HeaderValue::from_static("a.test"));
            let (mut bare, mut with_url, mut ext) = (Vec::new(), Vec::new(), Vec::new());
            super::super::record::encode_without_url(&a, &mut bare, &mut ext);
            super::super::record::encode(&a, &mut with_url, &mut ext);
            assert_eq!(with_url.len(), bare.len() + "http://a.test/a?x=1".len() + 4);
            q.push(a);
            let mut taken = Records::default();
            assert!(q.take_records(&mut taken));
            assert_eq!(taken.bytes, bare, "queued encoded: {records}");
        }
    }

    #[test]
    fn records_are_taken_from_a_queue_of_whole_requests_too() {
        let (q, _, _) = queue();
        let (mut a, _ra) = incoming(&q, "/a");
        a.body = Bytes::from(vec![1u8; super::super::record::EXTERNAL_BODY_MIN]);
        let (mut expected, mut ext) = (Vec::new(), Vec::new());
        super::super::record::encode(&a, &mut expected, &mut ext);
        q.push(a);
        let mut taken = Records::default();
        assert!(q.take_records(&mut taken));
        assert_eq!(taken.bytes, expected);
        assert_eq!(taken.bodies.len(), 1);
        taken.clear();
        assert!(!q.take_records(&mut taken));
    }

    #[test]
    fn ids_are_distinct_and_pending_follows_responders() {
        let (q, _, stats) = queue();
        let (a, _ra) = incoming(&q, "/a");
        let (b, _rb) = incoming(&q, "/b");
        assert_ne!(a.id, b.id);
        assert_eq!(stats.snapshot().pending, 2);
        assert!(a.responder.send(Reply::text(http::StatusCode::OK, "ok")));
        assert_eq!(stats.snapshot().pending, 1);
        drop(b);
        assert_eq!(stats.snapshot().pending, 0);
    }

    #[test]
    fn a_responder_without_a_direct_slot_still_answers_the_usual_way() {
        // Regression: the direct attempt once took the reply channel out
        // before finding no slot, and the request was answered 500.
        let (q, _, _) = queue();
        let (mut req, rx) = incoming(&q, "/");
        assert!(!req.responder.can_write_direct());
        assert_eq!(req.responder.write_direct(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert!(req.responder.send(Reply::text(http::StatusCode::OK, "ok")));
        assert_eq!(rx.blocking_recv().unwrap().status, http::StatusCode::OK);
    }

    #[test]
    fn many_pushes_share_one_wake_until_the_batch_is_taken() {
        let (q, waker, _) = queue();
        for i in 0..5 {
            let (req, _) = incoming(&q, &format!("/{i}"));
            q.push(req);
        }
        assert_eq!(waker.wakes.load(Ordering::SeqCst), 1);
        let batch = q.take_batch();
        assert_eq!(
            batch.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
            ["/0", "/1", "/2", "/3", "/4"]
        );
        assert!(q.take_batch().is_empty());
        let (req, _) = incoming(&q, "/again");
        q.push(req);
        assert_eq!(waker.wakes.load(Ordering::SeqCst), 2);
        q.notify_closed();
        assert!(waker.closed.load(Ordering::SeqCst));
    }

    #[test]
    fn a_reply_reaches_the_waiting_side_and_an_abandoned_one_says_so() {
        let (q, _, _) = queue();
        let (req, rx) = incoming(&q, "/");
        assert!(!req.responder.is_abandoned());
        assert!(req
            .responder
            .send(Reply::text(http::StatusCode::CREATED, "made")));
        let reply = rx.blocking_recv().unwrap();
        assert_eq!(reply.status, http::StatusCode::CREATED);
        let (req, rx) = incoming(&q, "/");
        drop(rx);
        assert!(req.responder.is_abandoned());
        assert!(!req
            .responder
            .send(Reply::text(http::StatusCode::OK, "late")));
    }

    #[test]
    fn no_wake_while_the_consumer_still_takes() {
        let (q, waker, _) = queue();
        let woken = || waker.wakes.load(Ordering::SeqCst);
        q.push(incoming(&q, "/1").0);
        assert_eq!(woken(), 1);
        assert_eq!(q.take_batch().len(), 1);
        // The consumer is still at work: new requests join the next batch
        // without another wake-up.
        q.push(incoming(&q, "/2").0);
        assert_eq!(woken(), 1);
        assert_eq!(q.take_batch().len(), 1);
        // Only the empty take re-arms the wake-up.
        assert!(q.take_batch().is_empty());
        q.push(incoming(&q, "/3").0);
        assert_eq!(woken(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn inside_the_runtime_the_wake_comes_after_the_turn() {
        let (q, waker, _) = queue();
        let q = Arc::new(q);
        let q2 = q.clone();
        tokio::spawn(async move {
            for i in 0..5 {
                q2.push(incoming(&q2, &format!("/{i}")).0);
            }
        })
        .await
        .unwrap();
        for _ in 0..100 {
            if waker.wakes.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(waker.wakes.load(Ordering::SeqCst), 1);
        assert_eq!(q.take_batch().len(), 5);
    }

    #[test]
    fn a_request_read_in_the_next_turn_joins_the_batch() {
        // Regression guard for WAKE_TICKS = 2: the consumer is woken after
        // the worker's second turn, so a push made in the turn after the
        // first one shares its wake-up and its batch. (With 1, the wake
        // fired during turn 2, before that push.)
        if std::env::var_os("HTTPY_WAKE_TICKS").is_some() {
            return; // the default is what this checks
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (q, waker, _) = queue();
        let woken = || waker.wakes.load(Ordering::SeqCst);
        rt.block_on(async {
            q.push(incoming(&q, "/a").0); // spawns the wake task
            tokio::task::yield_now().await; // turn 1 ends
            tokio::task::yield_now().await; // turn 2 ends
            assert_eq!(woken(), 0, "not woken before the second turn ended");
            q.push(incoming(&q, "/b").0);
            tokio::task::yield_now().await; // turn 3 ends
            tokio::task::yield_now().await;
        });
        assert_eq!(woken(), 1);
        let batch = q.take_batch();
        assert_eq!(
            batch.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
            ["/a", "/b"]
        );
    }

    #[test]
    fn concurrent_pushes_never_lose_a_wake_up() {
        // A consumer that takes until empty after each wake must see every
        // item, however pushes interleave with its takes.
        let (q, waker, _) = queue();
        let q = Arc::new(q);
        let producers: Vec<_> = (0..4)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        q.push(incoming(&q, "/").0);
                    }
                })
            })
            .collect();
        let mut seen = 0;
        let mut last_wakes = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while seen < 8000 && std::time::Instant::now() < deadline {
            let w = waker.wakes.load(Ordering::SeqCst);
            if w == last_wakes {
                std::thread::yield_now();
                continue;
            }
            last_wakes = w;
            loop {
                let b = q.take_batch();
                if b.is_empty() {
                    break;
                }
                seen += b.len();
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(seen, 8000);
    }

    #[test]
    fn watch_wanted_resolves_when_told_before_or_while_waiting() {
        use futures_util::FutureExt;
        let early = WatchWanted::default();
        assert!(early.told().now_or_never().is_none());
        early.tell();
        assert!(early.told().now_or_never().is_some());

        let late = WatchWanted::default();
        let teller = late.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let told = rt.block_on(async {
            let t = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                teller.tell();
            });
            let r = tokio::time::timeout(std::time::Duration::from_secs(5), late.told()).await;
            t.join().unwrap();
            r
        });
        assert!(told.is_ok(), "a waiting task is woken by tell()");
    }
}
