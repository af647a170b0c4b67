//! The byte stream every protocol driver reads and writes: [`Rewind`]
//! replays the bytes read while sniffing the protocol, cuts a peer that
//! stops reading, reports I/O to the HTTP/1 idle watch, and closes with a
//! lingering FIN so the last response is not lost to a reset.

use bytes::{Buf, Bytes};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::dispatch::ConnInfo;

/// How long, and how many unread bytes, a closing connection keeps draining
/// the peer's input after our FIN (see [`Rewind::poll_shutdown`]). Draining
/// discards without buffering, so the byte bound only caps wasted reads: it
/// is large enough for an upload refused with 413 to be swallowed whole, so
/// that the client reads the 413 instead of a reset.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// A stream that first yields bytes already read from it, and closes
/// without losing the last response (lingering close).
pub(crate) struct Rewind<T> {
    pre: Option<Bytes>,
    inner: T,
    linger: Option<Linger>,
    /// A peer that reads nothing for this long while we have bytes to send
    /// is cut (slow-read protection; progress resets the clock).
    write_timeout: Duration,
    write_stall: Option<WriteStall>,
    /// Set on plain HTTP/1 connections: reports I/O to the idle watch and
    /// lets the driver take the stream back from hyper (see `proto::h1`).
    watch: Option<Arc<ConnInfo>>,
    /// hyper shut the stream down because the driver asked to park it: the
    /// socket was left open.
    parked: bool,
}

struct WriteStall {
    armed: bool,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

struct Linger {
    fin_sent: bool,
    discarded: usize,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<T> Rewind<T> {
    pub(crate) fn new(pre: Bytes, inner: T, write_timeout: Duration) -> Self {
        Self {
            // An empty replay buffer must not be read: it would look like EOF.
            pre: (!pre.is_empty()).then_some(pre),
            inner,
            linger: None,
            write_timeout,
            write_stall: None,
            watch: None,
            parked: false,
        }
    }

    /// Reports this stream's I/O to `info.idle` and honours its park requests.
    pub(crate) fn watched(mut self, info: Arc<ConnInfo>) -> Self {
        self.watch = Some(info);
        self
    }

    /// Puts bytes back in front of the stream (hyper's unparsed input, when
    /// a connection is parked mid-head).
    pub(crate) fn unread(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.pre = Some(match self.pre.take() {
            None => bytes,
            Some(rest) => {
                let mut joined = bytes::BytesMut::with_capacity(bytes.len() + rest.len());
                joined.extend_from_slice(&bytes);
                joined.extend_from_slice(&rest);
                joined.freeze()
            }
        });
    }

    /// Whether the last shutdown was a park (the socket is still open); clears it.
    pub(crate) fn take_parked(&mut self) -> bool {
        std::mem::take(&mut self.parked)
    }

    fn report_write(&self, res: &Poll<io::Result<usize>>) {
        if let Some(w) = &self.watch {
            match res {
                Poll::Ready(Ok(n)) => w.idle.wrote(Some(*n)),
                Poll::Pending => w.idle.wrote(None),
                Poll::Ready(Err(_)) => {}
            }
        }
    }

    /// Passes a write result through, failing it with `TimedOut` once
    /// writes have been blocked for `write_timeout` without progress.
    fn watch_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if res.is_ready() {
            if let Some(s) = &mut self.write_stall {
                s.armed = false;
            }
            return res;
        }
        let limit = self.write_timeout;
        let stall = self.write_stall.get_or_insert_with(|| WriteStall {
            armed: false,
            sleep: Box::pin(tokio::time::sleep(limit)),
        });
        if !stall.armed {
            stall.armed = true;
            let deadline = tokio::time::Instant::now() + limit;
            stall.sleep.as_mut().reset(deadline);
        }
        if stall.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stopped reading",
            )));
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(pre) = self.pre.as_mut() {
            let n = pre.len().min(buf.remaining());
            buf.put_slice(&pre[..n]);
            pre.advance(n);
            if pre.is_empty() {
                self.pre = None;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Some(w) = &self.watch {
            if buf.filled().len() > before {
                w.idle.read();
            }
        }
        res
    }
}

impl Rewind<TcpStream> {
    /// Waits until the socket has input (or replayed bytes are queued),
    /// holding no buffer meanwhile.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        if self.pre.is_some() {
            return Ok(());
        }
        self.inner.readable().await
    }

    /// The socket's descriptor (Unix only).
    pub(crate) fn tcp_fd(&self) -> Option<i32> {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            Some(self.inner.as_raw_fd())
        }
        #[cfg(not(unix))]
        None
    }

    /// [`Rewind::readable`] as a poll, for the own HTTP/1.1 driver.
    pub(crate) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pre.is_some() {
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_read_ready(cx)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.report_write(&res);
        self.watch_write(cx, res)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // One slice (rustls writes each TLS record this way) goes out with
        // send(2), not writev(2): writev takes the VFS path (file position
        // lock, iovec import), ~0.1 µs more per call on Linux in the
        // keep-alive HTTPS profile (docs/performance.md §16).
        if let [one] = bufs {
            let res = Pin::new(&mut self.inner).poll_write(cx, one);
            self.report_write(&res);
            return self.watch_write(cx, res);
        }
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.report_write(&res);
        self.watch_write(cx, res)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch_write(cx, res)
    }
    /// Sends our FIN, then reads and discards what the peer still sends
    /// until it closes too (bounded in time and bytes). Closing a socket
    /// with unread input makes the kernel send RST, and an RST can destroy
    /// the response the peer has not read yet: a pipelined request after
    /// `Connection: close`, or the rest of a body refused with 413.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // A park keeps the socket open: hyper is done with it, we are not.
        if this.linger.is_none() && this.watch.as_ref().is_some_and(|w| w.idle.park_requested()) {
            this.parked = true;
            return Poll::Ready(Ok(()));
        }
        let linger = this.linger.get_or_insert_with(|| Linger {
            fin_sent: false,
            discarded: 0,
            deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
        });
        if !linger.fin_sent {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            linger.fin_sent = true;
        }
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if linger.deadline.as_mut().poll(cx).is_ready() || linger.discarded >= LINGER_BYTES {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    linger.discarded += buf.filled().len()
                }
                // EOF or an error: the peer is done with the connection.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
