//! The byte stream under TLS. It exists so that what the server's TLS
//! handshake writes last (TLS 1.3's session tickets) leaves in the same
//! write as the connection's first answer instead of in a send of its own.
//!
//! tokio-rustls flushes whatever rustls has queued when a handshake ends,
//! so the two NewSessionTicket messages (one record, ~500 bytes) went out
//! in their own `sendto` before the request was even read; on loopback
//! each send also runs the client's TCP receive on the sending CPU, a few
//! µs per send (docs/performance.md §16.4, §16.5). While the handshake is
//! driven, [`Corked`] keeps the writes in a small buffer, and sends them
//! when the handshake waits for the peer (a read that finds nothing: the
//! peer may need what we hold), so the server's flight leaves exactly when
//! it did before. What the handshake writes after its last read (the
//! tickets, which no client waits for) stays until the next write (the
//! first answer, HTTP/2's SETTINGS), a flush or the shutdown, and then goes
//! in front of it, in one vectored write. A failed handshake sends what it
//! holds (the alert) before the socket is dropped.
//!
//! Cost once the handshake is over: one test of an empty `Vec` per write.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream whose writes can be held back while a TLS handshake runs.
pub(crate) struct Corked<S> {
    inner: S,
    /// Bytes written but not yet sent, oldest first.
    held: Vec<u8>,
    /// While set, writes go to `held`; a read that would wait sends them.
    holding: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Corked<S> {
    /// Writes pass straight through until [`Corked::cork`].
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            held: Vec::new(),
            holding: false,
        }
    }

    /// Holds the writes from now on (the handshake is about to be driven).
    pub(crate) fn cork(&mut self) {
        self.holding = true;
    }

    /// Stops holding; what is held leaves with the next write, a flush or
    /// the shutdown.
    pub(crate) fn uncork(&mut self) {
        self.holding = false;
    }

    /// Whether bytes wait here to be sent.
    pub(crate) fn holds(&self) -> bool {
        !self.held.is_empty()
    }

    /// One non-blocking attempt to send what is held, before the stream
    /// is dropped (a failed handshake's alert).
    pub(crate) fn release_now(&mut self) {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let _ = self.poll_release(&mut cx);
    }

    /// Sends what is held.
    pub(crate) async fn release(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_release(cx)).await
    }

    /// Sends what is held.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            match std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => {
                    self.held.drain(..n);
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes `bufs` behind what is held, in one vectored write when the
    /// socket takes it all (the common case: a few hundred bytes of
    /// tickets and an answer). Returns the bytes of `bufs` written.
    fn poll_write_behind(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            if self.held.is_empty() {
                return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            }
            // Once per connection at most: the Vec is the slice list.
            let mut all = Vec::with_capacity(bufs.len() + 1);
            all.push(io::IoSlice::new(&self.held));
            all.extend_from_slice(bufs);
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &all))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let from_held = n.min(self.held.len());
            self.held.drain(..from_held);
            if n > from_held {
                return Poll::Ready(Ok(n - from_held));
            }
            // Only (part of) what was held went: try again, or wait.
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Corked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if res.is_pending() && this.holding && !this.held.is_empty() {
            // The handshake waits for the peer, which may be waiting for
            // what we hold: send it now (a full socket registers this
            // task for writability, so the handshake is polled again).
            if let Poll::Ready(Err(e)) = this.poll_release(cx) {
                return Poll::Ready(Err(e));
            }
        }
        res
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Corked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.holding {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        if this.held.is_empty() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        this.poll_write_behind(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.holding {
            let mut n = 0;
            for b in bufs {
                this.held.extend_from_slice(b);
                n += b.len();
            }
            return Poll::Ready(Ok(n));
        }
        this.poll_write_behind(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // The handshake flushes after every step: that is what must not
        // send the tickets on their own.
        if !this.holding {
            std::task::ready!(this.poll_release(cx))?;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_release(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn held_bytes_leave_in_front_of_the_next_write() {
        let (a, mut b) = tokio::io::duplex(4096);
        let mut s = Corked::new(a);
        s.cork();
        s.write_all(b"tickets|").await.unwrap();
        s.flush().await.unwrap();
        s.uncork();
        let mut got = [0u8; 8];
        let nothing =
            tokio::time::timeout(std::time::Duration::from_millis(50), b.read_exact(&mut got))
                .await;
        assert!(
            nothing.is_err(),
            "held bytes are not sent by a flush while held"
        );
        s.write_all(b"answer").await.unwrap();
        let mut got = [0u8; 14];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"tickets|answer");
    }

    #[tokio::test]
    async fn a_read_that_waits_sends_what_is_held() {
        let (a, mut b) = tokio::io::duplex(4096);
        let mut s = Corked::new(a);
        s.cork();
        s.write_all(b"flight").await.unwrap();
        let peer = tokio::spawn(async move {
            let mut got = [0u8; 6];
            b.read_exact(&mut got).await.unwrap();
            b.write_all(b"finished").await.unwrap();
            got
        });
        // Would wait forever if the flight stayed held.
        let mut reply = [0u8; 8];
        tokio::time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut reply))
            .await
            .expect("the peer answers the flight")
            .unwrap();
        assert_eq!(&reply, b"finished");
        assert_eq!(&peer.await.unwrap(), b"flight");
    }

    #[tokio::test]
    async fn the_shutdown_and_a_full_peer_keep_the_order() {
        // A pipe of 16 bytes: the held bytes and the write go in pieces.
        let (a, mut b) = tokio::io::duplex(16);
        let mut s = Corked::new(a);
        s.cork();
        s.write_all(b"0123456789abcdefghij").await.unwrap();
        s.uncork();
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            b.read_to_end(&mut all).await.unwrap();
            all
        });
        s.write_all(b"KLMNOPQRSTUVWXYZ").await.unwrap();
        s.cork();
        s.write_all(b"-end").await.unwrap();
        s.shutdown().await.unwrap();
        drop(s);
        assert_eq!(
            reader.await.unwrap(),
            b"0123456789abcdefghijKLMNOPQRSTUVWXYZ-end"
        );
    }
}
