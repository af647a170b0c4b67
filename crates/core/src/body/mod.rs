//! The response body type every protocol layer writes.
//!
//! An enum rather than a boxed trait object: the common case (a whole body
//! already in memory) then costs no allocation per response. Streamed bodies
//! (JS streams, files) arrive through a small bounded channel, so a slow
//! client stalls the producer instead of making the server buffer; a
//! producer that fails sends an error, which makes the protocol layer abort
//! the connection (HTTP/1.1) or reset the stream (HTTP/2) so the client never
//! takes a truncated body for a whole one.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

pub(crate) mod canned;
pub(crate) mod encoder;
pub(crate) mod multipart;
pub(crate) mod upload;

pub use crate::error::BoxError;
use encoder::Encoder;

/// Chunks in flight per streamed body: with 64 KiB chunks, at most a few
/// hundred KiB wait for a slow reader.
pub(crate) const STREAM_DEPTH: usize = 4;

pub enum ResBody {
    Full(Option<Bytes>),
    Stream(BodyReceiver),
    /// Another body, compressed chunk by chunk as the socket asks for it.
    Compressed(Box<Compressed>),
}

pub struct Compressed {
    pub(crate) inner: ResBody,
    pub(crate) enc: Option<Encoder>,
}

impl ResBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        if b.is_empty() {
            ResBody::Full(None)
        } else {
            ResBody::Full(Some(b))
        }
    }
}

/// The receiving half of a streamed body; see [`body_channel`].
pub struct BodyReceiver {
    rx: mpsc::Receiver<Result<Bytes, BoxError>>,
    shared: Arc<ChannelShared>,
    /// Total length when known in advance (files), for `Content-Length`.
    len: Option<u64>,
}

struct ChannelShared {
    /// The producer found the channel full and wants to hear when it drains.
    wants_notify: AtomicBool,
    notify: Option<Box<dyn Fn() + Send + Sync>>,
    /// Set by [`BodySender::fail_now`].
    aborted: AtomicBool,
}

/// The sending half of a streamed body.
pub struct BodySender {
    tx: mpsc::Sender<Result<Bytes, BoxError>>,
    shared: Arc<ChannelShared>,
}

/// Outcome of [`BodySender::try_write`].
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Accepted,
    /// The channel is full; `notify` will be called once it has room.
    Full,
    /// The client is gone; stop producing.
    Closed,
}

/// A bounded channel for one streamed body. `notify` is called (from a
/// Tokio thread) after the consumer made room following a `Full` write: the
/// embedder uses it to resume a producer that cannot await.
///
/// ```
/// let (tx, _rx) = httpy_core::body_channel(None, None);
/// assert_eq!(tx.try_write("a".into()), httpy_core::WriteOutcome::Accepted);
/// ```
pub fn body_channel(
    len: Option<u64>,
    notify: Option<Box<dyn Fn() + Send + Sync>>,
) -> (BodySender, BodyReceiver) {
    let (tx, rx) = mpsc::channel(STREAM_DEPTH);
    let shared = Arc::new(ChannelShared {
        wants_notify: AtomicBool::new(false),
        notify,
        aborted: AtomicBool::new(false),
    });
    (
        BodySender {
            tx,
            shared: shared.clone(),
        },
        BodyReceiver { rx, shared, len },
    )
}

impl BodySender {
    /// Queues a chunk without waiting.
    pub fn try_write(&self, chunk: Bytes) -> WriteOutcome {
        if chunk.is_empty() {
            return if self.tx.is_closed() {
                WriteOutcome::Closed
            } else {
                WriteOutcome::Accepted
            };
        }
        match self.tx.try_send(Ok(chunk)) {
            Ok(()) => WriteOutcome::Accepted,
            Err(mpsc::error::TrySendError::Closed(_)) => WriteOutcome::Closed,
            Err(mpsc::error::TrySendError::Full(Ok(chunk))) => {
                // Ask for a call-back, then look again: the consumer may have
                // made room between the two steps, and nobody would call.
                self.shared.wants_notify.store(true, Ordering::SeqCst);
                match self.tx.try_send(Ok(chunk)) {
                    Ok(()) => WriteOutcome::Accepted,
                    Err(mpsc::error::TrySendError::Closed(_)) => WriteOutcome::Closed,
                    Err(mpsc::error::TrySendError::Full(_)) => WriteOutcome::Full,
                }
            }
            Err(mpsc::error::TrySendError::Full(Err(_))) => WriteOutcome::Full,
        }
    }

    /// Sends a chunk, waiting for room. False when the client is gone.
    pub async fn write(&self, chunk: Bytes) -> bool {
        self.tx.send(Ok(chunk)).await.is_ok()
    }

    /// Ends the body with an error: the connection is aborted rather than
    /// the body ended cleanly. Waits for room so the error is not lost.
    pub async fn fail(self, why: impl Into<BoxError>) {
        let _ = self.tx.send(Err(why.into())).await;
    }

    /// Fails the body without waiting (for producers that cannot await):
    /// queued chunks are discarded and the connection is aborted.
    pub fn fail_now(self, why: impl Into<BoxError>) {
        // The flag covers a full channel, where the error cannot be queued;
        // the consumer checks it before every receive.
        self.shared.aborted.store(true, Ordering::SeqCst);
        let _ = self.tx.try_send(Err(why.into()));
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Drop for BodyReceiver {
    fn drop(&mut self) {
        // A producer waiting for room must hear that none will come (the
        // client went away), or it would wait forever.
        if self.shared.wants_notify.swap(false, Ordering::SeqCst) {
            if let Some(n) = &self.shared.notify {
                n();
            }
        }
    }
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ResBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResBody::Stream(s) => match s.rx.poll_recv(cx) {
                _ if s.shared.aborted.load(Ordering::SeqCst) => {
                    s.rx.close();
                    Poll::Ready(Some(Err("response stream aborted by the producer".into())))
                }
                Poll::Ready(item) => {
                    if s.shared.wants_notify.swap(false, Ordering::SeqCst) {
                        if let Some(n) = &s.shared.notify {
                            n();
                        }
                    }
                    Poll::Ready(item.map(|r| r.map(Frame::data)))
                }
                Poll::Pending => Poll::Pending,
            },
            ResBody::Compressed(c) => c.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResBody::Full(b) => b.is_none(),
            ResBody::Stream(_) | ResBody::Compressed(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ResBody::Stream(s) => match s.len {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
            ResBody::Compressed(_) => SizeHint::default(),
        }
    }
}

impl Compressed {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let Some(enc) = self.enc.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    self.enc = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let out = enc.write_chunk(&data)?;
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Poll::Ready(None) => {
                    let enc = self.enc.take().expect("checked above");
                    let out = enc.finish()?;
                    return Poll::Ready((!out.is_empty()).then(|| Ok(Frame::data(out))));
                }
            }
        }
    }
}
