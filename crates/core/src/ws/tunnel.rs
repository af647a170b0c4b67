//! WebSocket over an HTTP/2 stream (RFC 8441): the stream's DATA frames
//! carry the WebSocket's bytes, so the connection task (tungstenite, the
//! inflating wrapper, the writer) runs on it unchanged once it looks like a
//! socket. [`H2Stream`] is that socket: `AsyncRead` over the stream's
//! `RecvStream`, handing flow-control capacity back as the bytes are
//! consumed, and `AsyncWrite` over its `SendStream`, writing only what the
//! peer has granted capacity for.
//!
//! The HTTP/2 layer sees an extended CONNECT with `:protocol websocket`,
//! puts a [`Tunnel`] into the request's extensions and dispatches the
//! request as an upgrade; when the route accepts it (the switch answers
//! `200`), the layer sends the response head and hands the stream's two
//! halves to the connection task through the tunnel.

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use parking_lot::Mutex;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// One HTTP/2 stream as the WebSocket's byte transport.
pub(crate) struct H2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received bytes not yet read.
    pending: Bytes,
    /// Our half is closed (END_STREAM sent).
    ended: bool,
    /// Dropped with the transport: tells the HTTP/2 layer the stream is over.
    _done: oneshot::Sender<()>,
}

impl H2Stream {
    /// The stream's halves, and the sender whose drop marks its end.
    pub(crate) fn new(
        send: SendStream<Bytes>,
        recv: RecvStream,
        done: oneshot::Sender<()>,
    ) -> Self {
        Self {
            send,
            recv,
            pending: Bytes::new(),
            ended: false,
            _done: done,
        }
    }
}

fn io_error(e: h2::Error) -> io::Error {
    if e.is_io() {
        return e.into_io().unwrap_or_else(|| io::ErrorKind::Other.into());
    }
    // A reset (by the peer, or with the connection): the socket is gone.
    io::Error::new(io::ErrorKind::ConnectionReset, e)
}

impl AsyncRead for H2Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.pending.is_empty() {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => this.pending = data,
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
                // END_STREAM from the peer: end of input.
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending.split_to(n));
        // The window reopens for exactly what was consumed: a handler that
        // stops reading stops the peer once its window is spent.
        let _ = this.recv.flow_control().release_capacity(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        loop {
            let granted = this.send.capacity();
            if granted > 0 {
                let n = granted.min(buf.len());
                // One copy into the DATA frame's buffer (tungstenite writes
                // from its own buffer, which it reuses).
                return Poll::Ready(
                    this.send
                        .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                        .map(|()| n)
                        .map_err(io_error),
                );
            }
            this.send.reserve_capacity(buf.len());
            match ready!(this.send.poll_capacity(cx)) {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Queued DATA is written by the connection's task.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.ended {
            this.ended = true;
            let _ = this.send.send_data(Bytes::new(), true);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for H2Stream {
    fn drop(&mut self) {
        // The WebSocket is over: end our half of the stream cleanly rather
        // than leave it to be reset.
        if !self.ended {
            let _ = self.send.send_data(Bytes::new(), true);
        }
    }
}

/// Carried in an extended CONNECT request's extensions: where the HTTP/2
/// layer delivers the stream once the upgrade is accepted. (Extensions must
/// be `Clone`; the receiver is taken once, by the switch.)
#[derive(Clone)]
pub(crate) struct Tunnel(Arc<Mutex<Option<oneshot::Receiver<H2Stream>>>>);

impl Tunnel {
    pub(crate) fn new() -> (Self, oneshot::Sender<H2Stream>) {
        let (tx, rx) = oneshot::channel();
        (Self(Arc::new(Mutex::new(Some(rx)))), tx)
    }

    pub(crate) fn take(&self) -> Option<oneshot::Receiver<H2Stream>> {
        self.0.lock().take()
    }
}
