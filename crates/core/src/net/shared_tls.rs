//! A server TLS stream whose rustls session sits behind a lock, so that an
//! answer from JavaScript can be encrypted and written into the socket by
//! the task that delivers the batch of answers (`embedder::direct`), as on
//! plain TCP, instead of waking the connection's task to do it.
//!
//! Why not tokio-rustls' stream: it owns the `ServerConnection`, and rustls
//! keeps both directions (and the record sequence numbers) in that one
//! value, so nothing else can write a record. Here the connection's task
//! takes the lock for each read, write, flush and shutdown (uncontended:
//! two atomic operations, ~20 ns, a few times per request), and the
//! delivering task takes it with `try_lock` only while the driver waits
//! for that request's answer; when it cannot, the answer takes the usual
//! way. Records are encrypted and handed to the socket under the lock, so
//! they leave in sequence order whoever writes them.
//!
//! The stream follows tokio-rustls' server stream: reads decrypt what the
//! socket has and return the plaintext, a TCP EOF without close_notify is
//! an `UnexpectedEof` error, writes encrypt and send at once, the shutdown
//! sends close_notify. It runs over [`Corked`], which may still hold the
//! handshake's session tickets: `TlsShared::io_holds` tells the
//! delivering task to leave such a connection's answer to the driver, whose
//! write sends the tickets first.

use parking_lot::Mutex;
use rustls::ServerConnection;
use std::io::{self, BufRead, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::corked::Corked;
use crate::embedder::direct::TlsShared;
use crate::proto::h1::Transport;

/// See the module's documentation.
pub(crate) struct SharedTls<S> {
    io: Corked<S>,
    shared: Arc<Mutex<TlsShared>>,
    fd: Option<i32>,
    /// The socket reported EOF (rustls knows it too).
    eof: bool,
    /// close_notify was queued.
    shut: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SharedTls<S> {
    /// A stream for a connection whose handshake is over; `fd` is the
    /// socket's descriptor where answers may be written directly.
    pub(crate) fn new(io: Corked<S>, conn: ServerConnection, fd: Option<i32>) -> Self {
        let io_holds = io.holds();
        Self {
            io,
            shared: Arc::new(Mutex::new(TlsShared { conn, io_holds })),
            fd,
            eof: false,
            shut: false,
        }
    }

    /// The socket's descriptor, if answers may be written into it.
    pub(crate) fn fd(&self) -> Option<i32> {
        self.fd
    }

    /// The session, for the delivering task.
    pub(crate) fn shared(&self) -> &Arc<Mutex<TlsShared>> {
        &self.shared
    }

    /// Queues `last` and then close_notify without writing (see
    /// `Transport::queue_last`); returns how much of `last` was taken.
    pub(crate) fn queue_last(&mut self, last: &[u8]) -> usize {
        let mut g = self.shared.lock();
        let n = g.conn.writer().write(last).unwrap_or(0);
        if n == last.len() {
            g.conn.send_close_notify();
            self.shut = true;
        }
        n
    }
}

/// Sends what rustls has queued (behind what `io` holds).
fn write_out<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Corked<S>,
    cx: &mut Context<'_>,
    conn: &mut ServerConnection,
) -> Poll<io::Result<usize>> {
    let mut w = SyncWrite { io, cx };
    match conn.write_tls(&mut w) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        r => Poll::Ready(r),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for SharedTls<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let mut g = this.shared.lock();
        let conn = &mut g.conn;
        let mut io_pending = false;
        while !this.eof && conn.wants_read() {
            let mut r = SyncRead {
                io: &mut this.io,
                cx,
            };
            match conn.read_tls(&mut r) {
                Ok(0) => this.eof = true,
                Ok(_) => {
                    if let Err(e) = conn.process_new_packets() {
                        // The alert describing it, if any, as a last try.
                        let _ = write_out(&mut this.io, cx, conn);
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    io_pending = true;
                    break;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let mut any = false;
        loop {
            match conn.reader().into_first_chunk() {
                Ok([]) => break,
                Ok(chunk) => {
                    let n = chunk.len().min(buf.remaining());
                    buf.put_slice(&chunk[..n]);
                    conn.reader().consume(n);
                    any = true;
                    if buf.remaining() == 0 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if any {
                        break;
                    }
                    if !io_pending {
                        // rustls wants more than the socket had: look again.
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                }
                // An EOF or error after some data: the next read reports it.
                Err(_) if any => break,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for SharedTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let mut g = this.shared.lock();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut pos = 0;
        let res = loop {
            if pos == total {
                break Poll::Ready(Ok(pos));
            }
            let taken = if pos == 0 {
                g.conn.writer().write_vectored(bufs)
            } else {
                // Only after rustls' buffer was full: rare.
                g.conn.writer().write_vectored(&bufs_from(bufs, pos))
            };
            match taken {
                Ok(n) => pos += n,
                Err(e) => break Poll::Ready(Err(e)),
            }
            let mut blocked = false;
            while g.conn.wants_write() {
                match write_out(&mut this.io, cx, &mut g.conn) {
                    Poll::Ready(Ok(0)) | Poll::Pending => {
                        blocked = true;
                        break;
                    }
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => {
                        g.io_holds = this.io.holds();
                        return Poll::Ready(Err(e));
                    }
                }
            }
            if blocked {
                break if pos == 0 {
                    Poll::Pending
                } else {
                    Poll::Ready(Ok(pos))
                };
            }
        };
        g.io_holds = this.io.holds();
        res
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let mut g = this.shared.lock();
        let res = (|| {
            g.conn.writer().flush()?;
            while g.conn.wants_write() {
                if std::task::ready!(write_out(&mut this.io, cx, &mut g.conn))? == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
            }
            Pin::new(&mut this.io).poll_flush(cx)
        })();
        g.io_holds = this.io.holds();
        res
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let mut g = this.shared.lock();
        if !this.shut {
            g.conn.send_close_notify();
            this.shut = true;
        }
        while g.conn.wants_write() {
            if std::task::ready!(write_out(&mut this.io, cx, &mut g.conn))? == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
        }
        g.io_holds = this.io.holds();
        drop(g);
        Poll::Ready(
            match std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx)) {
                Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
                r => r,
            },
        )
    }
}

/// `bufs` without their first `skip` bytes.
fn bufs_from<'a>(bufs: &'a [io::IoSlice<'a>], mut skip: usize) -> Vec<io::IoSlice<'a>> {
    let mut out = Vec::with_capacity(bufs.len());
    for b in bufs {
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        out.push(io::IoSlice::new(&b[skip..]));
        skip = 0;
    }
    out
}

/// `Read` over an async stream: `Pending` becomes `WouldBlock`.
struct SyncRead<'a, 'b, S> {
    io: &'a mut S,
    cx: &'a mut Context<'b>,
}

impl<S: AsyncRead + Unpin> Read for SyncRead<'_, '_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut *self.io).poll_read(self.cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// `Write` over an async stream: `Pending` becomes `WouldBlock`.
struct SyncWrite<'a, 'b, S> {
    io: &'a mut S,
    cx: &'a mut Context<'b>,
}

impl<S: AsyncWrite + Unpin> Write for SyncWrite<'_, '_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write_vectored(self.cx, bufs) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match Pin::new(&mut *self.io).poll_flush(self.cx) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// HTTP/1.1 over TLS as the server serves it: the delivering task may
/// write answers through the shared session (`net::shared_tls`).
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for SharedTls<S> {
    const SHUTS_DOWN_WHEN_IDLE: bool = true;

    fn raw_fd(&self) -> Option<i32> {
        if *crate::embedder::direct::ON_TLS {
            self.fd()
        } else {
            None
        }
    }

    fn queue_last(&mut self, last: &[u8]) -> usize {
        SharedTls::queue_last(self, last)
    }

    fn tls(&self) -> Option<&Arc<Mutex<TlsShared>>> {
        Some(self.shared())
    }
}
