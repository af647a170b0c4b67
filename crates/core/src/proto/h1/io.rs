//! Buffers and byte streams of the own HTTP/1.1 driver.
//!
//! A connection's read and write buffers exist only while it has bytes to
//! parse or to send: a keep-alive connection waiting for its next request
//! on a socket that can report readiness holds none (it waits on
//! readiness, then borrows a buffer). Buffers come from a small per-thread
//! pool so that this costs no allocation per request: a thread-local
//! access and a `Vec` push/pop, a few ns.

use bytes::BytesMut;
use std::cell::RefCell;
use std::io;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::embedder::direct::TlsShared;
use crate::proto::io::Rewind;

/// Size of a buffer taken from the pool: a request head and a small body
/// fit, as in hyper's first read.
pub(crate) const BUF_SIZE: usize = 8 * 1024;

/// The largest buffer worth keeping, in the pool or on a connection that
/// cannot give its buffers back while idle (TLS).
pub(crate) const MAX_KEPT: usize = 4 * BUF_SIZE;

/// Buffers kept per thread: enough for the connections one thread serves
/// back to back, small enough (128 KiB) not to count as idle memory.
const POOLED: usize = 16;

thread_local! {
    static POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// Makes room for a read in `buf`, from the pool when it holds nothing.
pub(crate) fn reserve(buf: &mut BytesMut) {
    if buf.capacity() == 0 {
        *buf = POOL
            .with(|p| p.borrow_mut().pop())
            .unwrap_or_else(|| BytesMut::with_capacity(BUF_SIZE));
    } else if buf.capacity() - buf.len() < 512 {
        buf.reserve(BUF_SIZE);
    }
}

/// Gives an empty buffer back to the pool (or frees it). A buffer whose
/// front was frozen into a request still shares that allocation; it is
/// pooled only if a useful amount of room is left behind it.
pub(crate) fn release(buf: &mut BytesMut) {
    if buf.capacity() == 0 || !buf.is_empty() {
        return;
    }
    let b = std::mem::take(buf);
    // Not the odd large one (a long head, a big coalesced write): the pool
    // would keep it for good.
    if (BUF_SIZE / 2..=MAX_KEPT).contains(&b.capacity()) {
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOLED {
                p.push(b);
            }
        });
    }
}

/// Buffers waiting in this thread's pool.
#[cfg(test)]
pub(crate) fn pooled() -> usize {
    POOL.with(|p| p.borrow().len())
}

/// A byte stream the driver serves.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether [`Transport::poll_input`] can wait without a buffer; such
    /// connections count as parked (`connectionsIdle`) once quiet.
    const PARKS: bool = false;

    /// Waits for input without reading it. Only called when `PARKS`.
    fn poll_input(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The socket's descriptor, on plain TCP, where answers may be written
    /// from the embedder's thread (`direct.rs`).
    fn raw_fd(&self) -> Option<i32> {
        None
    }

    /// Whether an idle connection is closed through `shutdown` rather than
    /// dropped: TLS must end with a close_notify alert (RFC 8446 §6.1), or
    /// a strict client takes the close for a truncation attack. Plain TCP
    /// is just dropped, as before (no lingering close for a connection
    /// with nothing in flight).
    const SHUTS_DOWN_WHEN_IDLE: bool = false;

    /// Takes `last`, the connection's last bytes, into the transport's own
    /// buffer without writing it, followed by the end of the stream (TLS:
    /// close_notify) once all of it was taken, so that the `shutdown` that
    /// follows sends both in one write. Returns how much of `last` was
    /// taken; plain streams take nothing.
    fn queue_last(&mut self, _last: &[u8]) -> usize {
        0
    }

    /// A TLS session the delivering task may write answers through.
    fn tls(&self) -> Option<&std::sync::Arc<parking_lot::Mutex<TlsShared>>> {
        None
    }
}

impl Transport for Rewind<tokio::net::TcpStream> {
    const PARKS: bool = true;

    fn poll_input(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_readable(cx)
    }

    fn raw_fd(&self) -> Option<i32> {
        self.tcp_fd()
    }
}

#[cfg(unix)]
impl Transport for Rewind<tokio::net::UnixStream> {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport
    for tokio_rustls::server::TlsStream<S>
{
    const SHUTS_DOWN_WHEN_IDLE: bool = true;

    /// The answer is encrypted into rustls' outgoing buffer and the
    /// close_notify alert queued behind it; tokio-rustls' shutdown then
    /// writes both records (and any session tickets still held by
    /// `net::corked`) in one vectored write, where the answer and the
    /// alert took a send each (docs/performance.md §16.5).
    fn queue_last(&mut self, last: &[u8]) -> usize {
        let session = self.get_mut().1;
        if session.is_handshaking() {
            return 0;
        }
        // rustls takes less than all only past its buffer limit (64 KiB).
        let n = std::io::Write::write(&mut session.writer(), last).unwrap_or(0);
        if n == last.len() {
            session.send_close_notify();
        }
        n
    }
}

/// How long a TLS connection closed at the keep-alive timeout may take to
/// send its close_notify and see the peer's FIN (`Rewind`'s lingering
/// close has its own, equal bound): a client that stopped reading does
/// not keep the connection past it.
pub(crate) const IDLE_CLOSE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
impl Transport for tokio::io::DuplexStream {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_from_the_pool() {
        let mut a = BytesMut::new();
        reserve(&mut a);
        assert!(a.capacity() >= BUF_SIZE);
        let ptr = a.as_ptr();
        release(&mut a);
        assert_eq!(a.capacity(), 0, "a released buffer holds nothing");
        let mut b = BytesMut::new();
        reserve(&mut b);
        assert_eq!(b.as_ptr(), ptr, "the same allocation, reused");
        b.extend_from_slice(b"x");
        release(&mut b);
        assert_eq!(&b[..], b"x", "a buffer with bytes is kept");
        let mut huge = BytesMut::with_capacity(MAX_KEPT * 2);
        release(&mut huge);
        let mut c = BytesMut::new();
        reserve(&mut c);
        assert!(
            c.capacity() <= MAX_KEPT,
            "a large buffer is freed, not pooled"
        );
    }
}
