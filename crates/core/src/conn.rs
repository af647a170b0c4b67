//! Serving one accepted TCP connection: pick the protocol, drive it, and
//! stop it gracefully (or by force) when the server closes.
//!
//! Over TLS the negotiated ALPN protocol decides. In cleartext the first
//! bytes do: the HTTP/2 connection preface means h2c with prior knowledge;
//! anything else is HTTP/1.x. Bytes read while deciding are replayed to the
//! protocol layer by [`Rewind`].

use bytes::{Buf, Bytes};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::proto;
use crate::server::Shared;
use crate::service::ConnInfo;
use crate::tls::{TlsSettings, ALPN_H2};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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

enum Proto {
    H1,
    H2,
}

/// Reads until the protocol is known. `None`: the peer closed or stayed
/// silent past the idle timeout before sending anything.
async fn sniff(stream: &mut TcpStream, shared: &Shared) -> Option<(Proto, Bytes)> {
    let mut buf = Vec::with_capacity(0);
    let wait = shared
        .config
        .keep_alive_timeout
        .min(shared.config.request_timeout);
    let read = async {
        loop {
            // Allocate only once data is there: an idle connection holds no buffer.
            stream.readable().await.ok()?;
            if buf.capacity() == 0 {
                buf.reserve_exact(4096);
            }
            let n = stream.read_buf(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            let k = buf.len().min(H2_PREFACE.len());
            if buf[..k] != H2_PREFACE[..k] {
                return Some(Proto::H1);
            }
            if buf.len() >= H2_PREFACE.len() {
                return Some(Proto::H2);
            }
            if buf.len() == buf.capacity() {
                buf.reserve(4096);
            }
        }
    };
    let proto = tokio::time::timeout(wait, read).await.ok()??;
    Some((proto, Bytes::from(buf)))
}

/// Serves one accepted connection; `_open` (the open-connection count) is
/// released when it ends, and `slot` (its `maxConnections` permit) then too,
/// unless a WebSocket upgrade took it over.
pub(crate) async fn serve<H: Send>(
    shared: Arc<Shared>,
    stream: TcpStream,
    remote: SocketAddr,
    _open: H,
    slot: Option<OwnedSemaphorePermit>,
) {
    // The task's allocation is as large as the largest state of this future
    // and lives as long as the connection. TLS and HTTP/2 states are several
    // KiB, so they are boxed: a plain HTTP/1 connection, the common case and
    // the one that sits idle in thousands, then costs a few hundred bytes.
    match shared.config.tls.clone() {
        Some(tls) => Box::pin(serve_tls(shared, stream, remote, tls, slot)).await,
        None => serve_plain(shared, stream, remote, slot).await,
    }
}

async fn serve_plain(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    remote: SocketAddr,
    slot: Option<OwnedSemaphorePermit>,
) {
    // A connection that has sent nothing yet is idle: a graceful close
    // drops it at once instead of waiting out the idle timeout.
    // (Boxed: it is short-lived, and inline it would grow the task that
    // stays allocated for the connection's whole life.)
    let sniffed = Box::pin(async {
        tokio::select! {
            r = sniff(&mut stream, &shared) => r,
            _ = shared.shutdown.cancelled() => None,
        }
    })
    .await;
    let Some((proto, pre)) = sniffed else {
        return;
    };
    let _open = crate::metrics::open_connection(
        &shared,
        match proto {
            Proto::H1 => crate::metrics::Protocol::Http1,
            Proto::H2 => crate::metrics::Protocol::Http2,
        },
    );
    let info = ConnInfo::new(remote, false);
    *info.slot.lock() = slot;
    let io = Rewind::new(pre, stream, shared.config.request_timeout);
    match proto {
        Proto::H1 => proto::h1::serve_parkable(shared, info.clone(), io.watched(info)).await,
        Proto::H2 => Box::pin(proto::h2::serve(shared, info, io)).await,
    }
}

/// TLS: the handshake must finish within the idle timeout; a client that
/// fails it (garbage, plain HTTP, no common protocol version) loses only
/// its own connection. ALPN then picks the protocol; no ALPN means
/// HTTP/1.1. TLS runs over [`Rewind`] for its lingering close and its
/// slow-reader cut-off.
async fn serve_tls(
    shared: Arc<Shared>,
    stream: TcpStream,
    remote: SocketAddr,
    tls: TlsSettings,
    slot: Option<OwnedSemaphorePermit>,
) {
    let wait = shared
        .config
        .keep_alive_timeout
        .min(shared.config.request_timeout);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    let io = Rewind::new(Bytes::new(), stream, shared.config.request_timeout);
    let handshake = tokio::time::timeout(wait, acceptor.accept(io));
    let stream = tokio::select! {
        r = handshake => match r {
            Ok(Ok(s)) => s,
            _ => return,
        },
        _ = shared.shutdown.cancelled() => return,
    };
    let is_h2 = stream.get_ref().1.alpn_protocol() == Some(ALPN_H2);
    let info = ConnInfo::new(remote, true);
    *info.slot.lock() = slot;
    let _open = crate::metrics::open_connection(
        &shared,
        if is_h2 {
            crate::metrics::Protocol::Http2
        } else {
            crate::metrics::Protocol::Http1
        },
    );
    if is_h2 {
        proto::h2::serve(shared, info, stream).await
    } else {
        proto::h1::serve(shared, info, stream).await
    }
}
