//! Streamed request bodies ("uploads"): the body of a request on a route
//! that asked for streaming reaches the embedder chunk by chunk instead of
//! whole, so a 1 GB upload never sits in memory.
//!
//! The service reads the first [`WHOLE_MAX`] bytes itself: a body that ends
//! within them is delivered whole, as on any route, and costs nothing more.
//! A longer (or endless) one is queued to the embedder at once with a
//! [`UploadReceiver`] kept in [`Uploads`] under the request's id; a pump
//! then moves chunks from the protocol layer into a small bounded channel.
//! While the channel is full the pump does not poll the body, so hyper (or
//! h2/h3 flow control) stops reading the socket: a stalled consumer stalls
//! its client, not the server. `maxBodySize` is counted by the pump; going
//! past it fails the stream (the consumer sees the error) and the service
//! answers 413 at once.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bodies that end within this many bytes are delivered whole even on a
/// streaming route: one record, no channel, no extra crossing.
pub const WHOLE_MAX: usize = 64 * 1024;

/// Chunks in flight per upload: typically 16 KiB each (hyper's reads), so
/// about 128 KiB wait for a stalled consumer; at worst hyper's largest read
/// buffer (~400 KiB) each, about 3 MiB.
const UPLOAD_DEPTH: usize = 8;

/// Why an upload stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadError {
    /// The body went past `maxBodySize` (the limit, in bytes).
    TooLarge(u64),
    /// The client went away or sent a malformed body.
    Broken(String),
    /// Refused by a parser of the body (multipart): the status the client
    /// gets, a stable code and a message naming the limit or the problem.
    Refused {
        status: u16,
        code: &'static str,
        message: String,
    },
}

impl UploadError {
    /// A stable code for the embedder's error.
    pub fn code(&self) -> &'static str {
        match self {
            UploadError::TooLarge(_) => "ERR_HTTPY_BODY_TOO_LARGE",
            UploadError::Broken(_) => "ERR_HTTPY_BODY_ABORTED",
            UploadError::Refused { code, .. } => code,
        }
    }

    pub fn message(&self) -> String {
        match self {
            UploadError::TooLarge(n) => {
                format!("request body exceeds maxBodySize ({n} bytes); the client got 413")
            }
            UploadError::Broken(why) => format!("request body ended early: {why}"),
            UploadError::Refused { message, .. } => message.clone(),
        }
    }
}

/// One step of [`UploadReceiver::try_read`].
#[derive(Debug, PartialEq, Eq)]
pub enum UploadRead {
    Chunk(Bytes),
    /// Nothing yet: the `on_readable` callback fires when there is.
    Pending,
    End,
    Failed(UploadError),
}

struct Shared {
    /// The consumer found the channel empty and waits for a call-back.
    wants: AtomicBool,
    notify: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Set by `fail_now`: the error wins over chunks still queued (a full
    /// channel could not take it). `has_failed` spares the lock on reads.
    has_failed: AtomicBool,
    failed: Mutex<Option<UploadError>>,
}

impl Shared {
    fn wake(&self) {
        if self.wants.swap(false, Ordering::SeqCst) {
            if let Some(n) = self.notify.get() {
                n();
            }
        }
    }
}

/// The embedder's end of one upload.
pub struct UploadReceiver {
    rx: mpsc::Receiver<Result<Bytes, UploadError>>,
    shared: Arc<Shared>,
}

pub(crate) struct UploadSender {
    /// `None` only inside `drop`.
    tx: Option<mpsc::Sender<Result<Bytes, UploadError>>>,
    /// The whole body was sent. Dropped before that (the request timed
    /// out, its client left), the sender fails the stream, so the consumer
    /// never takes a cut-off body for a whole one.
    pub(crate) complete: bool,
    shared: Arc<Shared>,
}

pub(crate) fn upload_channel() -> (UploadSender, UploadReceiver) {
    let (tx, rx) = mpsc::channel(UPLOAD_DEPTH);
    let shared = Arc::new(Shared {
        wants: AtomicBool::new(false),
        notify: OnceLock::new(),
        has_failed: AtomicBool::new(false),
        failed: Mutex::new(None),
    });
    (
        UploadSender {
            tx: Some(tx),
            complete: false,
            shared: shared.clone(),
        },
        UploadReceiver { rx, shared },
    )
}

impl UploadReceiver {
    /// Sets the call-back run (on a Tokio thread) when a chunk, the end or
    /// an error arrives after a `try_read` that found nothing. Set once.
    pub fn on_readable(&self, notify: Box<dyn Fn() + Send + Sync>) {
        let _ = self.shared.notify.set(notify);
    }

    /// Takes the next chunk without waiting.
    pub fn try_read(&mut self) -> UploadRead {
        use mpsc::error::TryRecvError;
        let mut asked = false;
        loop {
            if self.shared.has_failed.load(Ordering::SeqCst) {
                if let Some(e) = self.shared.failed.lock().take() {
                    self.rx.close();
                    return UploadRead::Failed(e);
                }
                return UploadRead::End;
            }
            match self.rx.try_recv() {
                Ok(Ok(chunk)) => return UploadRead::Chunk(chunk),
                Ok(Err(e)) => return UploadRead::Failed(e),
                Err(TryRecvError::Disconnected) => return UploadRead::End,
                // Ask for a call-back, then look again: the pump may have
                // sent between the two steps and seen no one asking.
                Err(TryRecvError::Empty) if !asked => {
                    self.shared.wants.store(true, Ordering::SeqCst);
                    asked = true;
                }
                Err(TryRecvError::Empty) => return UploadRead::Pending,
            }
        }
    }
}

impl UploadSender {
    pub(crate) async fn send(&self, item: Result<Bytes, UploadError>) -> bool {
        let Some(tx) = &self.tx else { return false };
        let ok = tx.send(item).await.is_ok();
        self.shared.wake();
        ok
    }

    /// Fails the stream without waiting (the consumer may be stalled):
    /// its next read reports `e`, whatever is still queued.
    pub(crate) fn fail_now(&self, e: UploadError) {
        *self.shared.failed.lock() = Some(e);
        self.shared.has_failed.store(true, Ordering::SeqCst);
        self.shared.wake();
    }
}

impl Drop for UploadSender {
    fn drop(&mut self) {
        // The end of the body: a consumer waiting for more must hear it.
        // Close the channel first, then wake: a consumer that looked before
        // the close has asked for the call-back; one that looks after it
        // sees the end itself.
        if !self.complete && !self.shared.has_failed.load(Ordering::SeqCst) {
            *self.shared.failed.lock() = Some(UploadError::Broken(
                "the request ended before its body did".into(),
            ));
            self.shared.has_failed.store(true, Ordering::SeqCst);
        }
        drop(self.tx.take());
        self.shared.wake();
    }
}

/// The uploads queued to the embedder and not yet taken, by request id.
/// Touched only by requests that stream, so other requests pay nothing.
#[derive(Default)]
pub(crate) struct Uploads {
    waiting: Mutex<FxHashMap<u32, Waiting>>,
}

/// One upload not yet taken; `choose` is set when the embedder picks,
/// as it takes it, raw bytes or multipart parts (`BodyStreaming::RawOrParts`).
struct Waiting {
    rx: UploadReceiver,
    choose: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Uploads {
    /// Keeps `rx` for the embedder until the returned guard is dropped.
    /// `choose` is set for a body the embedder may take as parts: it is
    /// sent on when it does, dropped when it takes raw bytes (or never).
    pub(crate) fn put(
        &self,
        id: u32,
        rx: UploadReceiver,
        choose: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Kept<'_> {
        self.waiting.lock().insert(id, Waiting { rx, choose });
        Kept { uploads: self, id }
    }

    /// The embedder takes the body of request `id` (once), as raw bytes.
    pub(crate) fn take(&self, id: u32) -> Option<UploadReceiver> {
        self.waiting.lock().remove(&id).map(|w| w.rx)
    }

    /// The embedder takes the body of request `id` as multipart parts;
    /// `None` when it is not a body that can be (or it was taken).
    pub(crate) fn take_parts(&self, id: u32) -> Option<UploadReceiver> {
        let mut map = self.waiting.lock();
        if map.get(&id).is_none_or(|w| w.choose.is_none()) {
            return None;
        }
        let w = map.remove(&id)?;
        drop(map);
        if let Some(c) = w.choose {
            let _ = c.send(());
        }
        Some(w.rx)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.lock().len()
    }
}

/// An upload waiting in [`Uploads`]: dropped when its request is over
/// (answered, refused, or its client gone), it forgets the upload if the
/// embedder never took it.
pub(crate) struct Kept<'a> {
    uploads: &'a Uploads,
    id: u32,
}

impl Drop for Kept<'_> {
    fn drop(&mut self) {
        self.uploads.waiting.lock().remove(&self.id);
    }
}

/// The start of a body on a streaming route.
pub(crate) enum Prefix {
    /// The body ended within [`WHOLE_MAX`]: deliver it whole.
    Whole(Bytes),
    /// More follows: these bytes first, then the rest of the body.
    Partial(Bytes),
}

/// Reads until the body ends or [`WHOLE_MAX`] bytes have come; fails with
/// `TooLarge` past `max`.
pub(crate) async fn read_prefix<B>(body: &mut B, max: u64) -> Result<Prefix, UploadError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut buf = BytesMut::new();
    loop {
        if body.is_end_stream() {
            return Ok(Prefix::Whole(buf.freeze()));
        }
        match body.frame().await {
            None => return Ok(Prefix::Whole(buf.freeze())),
            Some(Err(e)) => return Err(UploadError::Broken(e.to_string())),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers are not exposed
                };
                if (buf.len() + data.len()) as u64 > max {
                    return Err(UploadError::TooLarge(max));
                }
                if buf.is_empty() && data.len() >= WHOLE_MAX {
                    return Ok(Prefix::Partial(data));
                }
                buf.extend_from_slice(&data);
                if buf.len() >= WHOLE_MAX {
                    return Ok(Prefix::Partial(buf.freeze()));
                }
            }
        }
    }
}

/// How a pump ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PumpEnd {
    /// The whole body went to the consumer (or the consumer left early:
    /// the rest is not read).
    Done,
    Failed(UploadError),
}

/// Milliseconds since `origin` of the last chunk, so the service can give
/// a slow but steady upload more than `requestTimeout` in total.
pub(crate) struct Progress {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Progress {
    pub(crate) fn new(origin: Instant) -> Self {
        Self {
            origin,
            last_ms: AtomicU64::new(0),
        }
    }

    pub(crate) fn mark(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn last(&self) -> Instant {
        self.origin + std::time::Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Moves the rest of `body` (after `first`) into `tx`, waiting while the
/// consumer is behind, and counting against `max`.
pub(crate) async fn pump<B>(
    mut body: B,
    first: Bytes,
    tx: UploadSender,
    max: u64,
    progress: &Progress,
) -> PumpEnd
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut tx = tx;
    let mut total = first.len() as u64;
    if !first.is_empty() {
        if !tx.send(Ok(first)).await {
            return PumpEnd::Done;
        }
        progress.mark();
    }
    loop {
        // The protocol layer's error is turned into text at once: it need
        // not be `Send`, and the sends below await.
        let Some(frame) = body.frame().await.map(|f| f.map_err(|e| e.to_string())) else {
            break;
        };
        let data = match frame {
            Ok(f) => match f.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
            Err(why) => {
                let e = UploadError::Broken(why);
                tx.fail_now(e.clone());
                return PumpEnd::Failed(e);
            }
        };
        total += data.len() as u64;
        if total > max {
            let e = UploadError::TooLarge(max);
            // Without waiting: the consumer may be stalled, and the 413
            // must not wait for it.
            tx.fail_now(e.clone());
            return PumpEnd::Failed(e);
        }
        if !tx.send(Ok(data)).await {
            return PumpEnd::Done; // the consumer let go of the body
        }
        progress.mark();
    }
    tx.complete = true;
    PumpEnd::Done
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};
    use std::sync::atomic::AtomicUsize;

    fn chunks(
        parts: Vec<Result<&'static [u8], &'static str>>,
    ) -> impl http_body::Body<Data = Bytes, Error = String> + Unpin {
        let frames = parts.into_iter().map(|p| {
            p.map(|b| http_body::Frame::data(Bytes::from_static(b)))
                .map_err(|e| e.to_string())
        });
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn short_bodies_come_whole_and_long_ones_as_a_prefix() {
        let mut b = Full::new(Bytes::from_static(b"hello"));
        assert!(
            matches!(read_prefix(&mut b, 100).await, Ok(Prefix::Whole(w)) if &w[..] == b"hello")
        );
        let big: &'static [u8] = Box::leak(vec![1u8; WHOLE_MAX].into_boxed_slice());
        let mut b = chunks(vec![Ok(b"ab"), Ok(big), Ok(b"tail")]);
        match read_prefix(&mut b, u64::MAX).await {
            Ok(Prefix::Partial(p)) => assert_eq!(p.len(), WHOLE_MAX + 2),
            _ => panic!("expected a prefix"),
        }
        let mut b = chunks(vec![Ok(b"abcdef")]);
        assert_eq!(
            read_prefix(&mut b, 3).await.err(),
            Some(UploadError::TooLarge(3))
        );
    }

    #[test]
    fn a_sender_dropped_before_the_end_fails_the_stream() {
        let (tx, mut rx) = upload_channel();
        drop(tx);
        assert!(matches!(
            rx.try_read(),
            UploadRead::Failed(UploadError::Broken(_))
        ));
        let (mut tx, mut rx) = upload_channel();
        tx.complete = true;
        drop(tx);
        assert_eq!(rx.try_read(), UploadRead::End);
    }

    #[test]
    fn an_upload_nobody_took_is_forgotten_with_its_request() {
        let uploads = Uploads::default();
        let kept = uploads.put(7, upload_channel().1, None);
        drop(uploads.put(8, upload_channel().1, None));
        assert_eq!(uploads.len(), 1, "request 8 is over");
        assert!(uploads.take(7).is_some());
        drop(kept);
        assert_eq!(uploads.len(), 0);
    }

    #[tokio::test]
    async fn the_pump_delivers_in_order_then_ends() {
        let (tx, mut rx) = upload_channel();
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        rx.on_readable(Box::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(rx.try_read(), UploadRead::Pending);
        let progress = Progress::new(Instant::now());
        let end = pump(
            chunks(vec![Ok(b"b"), Ok(b"c")]),
            Bytes::from_static(b"a"),
            tx,
            10,
            &progress,
        )
        .await;
        assert_eq!(end, PumpEnd::Done);
        assert!(
            woken.load(Ordering::SeqCst) >= 1,
            "the waiting consumer was told"
        );
        let mut got = Vec::new();
        loop {
            match rx.try_read() {
                UploadRead::Chunk(c) => got.extend_from_slice(&c),
                UploadRead::End => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, b"abc");
    }

    #[tokio::test]
    async fn past_the_limit_the_consumer_sees_the_error() {
        let (tx, mut rx) = upload_channel();
        let progress = Progress::new(Instant::now());
        let end = pump(
            chunks(vec![Ok(b"bbbb")]),
            Bytes::from_static(b"aaaa"),
            tx,
            6,
            &progress,
        )
        .await;
        assert_eq!(end, PumpEnd::Failed(UploadError::TooLarge(6)));
        // The error wins over the chunk still queued, then the stream is over.
        assert_eq!(rx.try_read(), UploadRead::Failed(UploadError::TooLarge(6)));
        assert_eq!(rx.try_read(), UploadRead::End);
    }

    #[tokio::test]
    async fn a_broken_body_fails_the_stream() {
        let (tx, mut rx) = upload_channel();
        let progress = Progress::new(Instant::now());
        let end = pump(
            chunks(vec![Err("reset")]),
            Bytes::from_static(b"a"),
            tx,
            60,
            &progress,
        )
        .await;
        assert!(matches!(end, PumpEnd::Failed(UploadError::Broken(_))));
        // The error wins over the chunk still queued: the consumer must not
        // take a truncated body for a whole one.
        assert!(matches!(
            rx.try_read(),
            UploadRead::Failed(UploadError::Broken(_))
        ));
        assert_eq!(rx.try_read(), UploadRead::End);
    }

    #[tokio::test]
    async fn a_full_channel_holds_the_pump_back() {
        let (tx, mut rx) = upload_channel();
        let parts = vec![Ok(&b"x"[..]); 20];
        let pumping = tokio::spawn(async move {
            let p = Progress::new(Instant::now());
            pump(chunks(parts), Bytes::from_static(b"x"), tx, 100, &p).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!pumping.is_finished(), "the pump waits for the consumer");
        let mut n = 0;
        while n < 21 {
            match rx.try_read() {
                UploadRead::Chunk(_) => n += 1,
                UploadRead::Pending => {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(pumping.await.unwrap(), PumpEnd::Done);
    }
}
