//! The request body the own HTTP/1.1 driver hands to the dispatcher.
//!
//! Most requests carry no body, or a small one already in the read buffer:
//! those are a value (`Empty`, `Full`), no channel, no allocation. A body
//! still on its way is a channel the connection task fills *only when the
//! consumer asks* (the consumer's poll sets `wanted` and wakes the task):
//! the task reads the socket for the body at the consumer's pace, so a slow
//! consumer stops the reads and TCP's window stops the client — the
//! backpressure `body::upload` relies on. The first ask is also when an
//! `Expect: 100-continue` gets its `100 Continue`, as with hyper: a request
//! refused before its body is read never receives one.

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Why a body ended early.
#[derive(Debug)]
pub(crate) struct BodyError(pub(crate) &'static str);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BodyError {}

pub(crate) enum ReqBody {
    Empty,
    Full(Option<Bytes>),
    Streamed {
        rx: mpsc::Receiver<Result<Bytes, BodyError>>,
        want: Arc<Want>,
        /// Bytes still to come when the length is known.
        left: Option<u64>,
    },
}

/// The consumer's demand, seen by the connection task.
#[derive(Default)]
pub(crate) struct Want {
    wanted: AtomicBool,
    task: AtomicWaker,
}

impl Want {
    /// Polled by the connection task: true when the consumer waits for
    /// data. Registers the task to be woken when it starts waiting.
    pub(crate) fn poll_wanted(&self, cx: &mut Context<'_>) -> bool {
        if self.wanted.load(Ordering::Acquire) {
            return true;
        }
        self.task.register(cx.waker());
        self.wanted.load(Ordering::Acquire)
    }

    /// The task sent a piece: the next ask comes with the next poll.
    pub(crate) fn served(&self) {
        self.wanted.store(false, Ordering::Release);
    }

    /// Always wakes: the task may have seen the demand while the channel
    /// was still full, and waits for a wake to look again.
    fn ask(&self) {
        self.wanted.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// The channel of a streamed body: the sender stays with the connection.
pub(crate) fn streamed(
    left: Option<u64>,
) -> (ReqBody, mpsc::Sender<Result<Bytes, BodyError>>, Arc<Want>) {
    // Room for one piece: the task sends only after an ask, and the
    // consumer asks only when the channel is empty.
    let (tx, rx) = mpsc::channel(1);
    let want = Arc::new(Want::default());
    (
        ReqBody::Streamed {
            rx,
            want: want.clone(),
            left,
        },
        tx,
        want,
    )
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqBody::Streamed { rx, want, left } => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    if let Some(l) = left {
                        *l = l.saturating_sub(data.len() as u64);
                    }
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => {
                    want.ask();
                    Poll::Pending
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty | ReqBody::Full(None) => true,
            ReqBody::Full(Some(_)) => false,
            ReqBody::Streamed { left, .. } => *left == Some(0),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty | ReqBody::Full(None) => SizeHint::with_exact(0),
            ReqBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ReqBody::Streamed { left: Some(n), .. } => SizeHint::with_exact(*n),
            ReqBody::Streamed { left: None, .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_streamed_body_is_read_only_on_demand() {
        let (mut body, tx, want) = streamed(Some(4));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(!want.poll_wanted(&mut cx), "nobody asked yet");
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(f) = body.frame().await {
                got.extend_from_slice(&f.unwrap().into_data().unwrap());
            }
            got
        });
        for piece in ["ab", "cd"] {
            std::future::poll_fn(|cx| {
                if want.poll_wanted(cx) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            want.served();
            tx.send(Ok(Bytes::from(piece))).await.unwrap();
        }
        drop(tx);
        assert_eq!(reader.await.unwrap(), b"abcd");
    }
}
