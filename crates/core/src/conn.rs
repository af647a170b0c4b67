//! Serving one accepted TCP connection: pick the protocol, drive it, and
//! stop it gracefully (or by force) when the server closes.
//!
//! The first bytes decide the protocol: the HTTP/2 connection preface means
//! h2c with prior knowledge; anything else is HTTP/1.x. Bytes read while
//! deciding are replayed to the protocol layer by [`Rewind`].

use bytes::{Buf, Bytes};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::server::Shared;
use crate::service::{handle, ConnInfo};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long, and how many unread bytes, a closing connection keeps draining
/// the peer's input after our FIN (see [`Rewind::poll_shutdown`]).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

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
            pre: Some(pre),
            inner,
            linger: None,
            write_timeout,
            write_stall: None,
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
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch_write(cx, res)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
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
        let linger = this.linger.get_or_insert_with(|| Linger {
            fin_sent: false,
            discarded: 0,
            deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
        });
        if !linger.fin_sent {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            linger.fin_sent = true;
        }
        let mut scratch = [0u8; 4096];
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
    let wait = shared.config.keep_alive_timeout.min(shared.config.request_timeout);
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

pub(crate) async fn serve(shared: Arc<Shared>, mut stream: TcpStream, remote: SocketAddr) {
    let Some((proto, pre)) = sniff(&mut stream, &shared).await else {
        return;
    };
    let info = Arc::new(ConnInfo {
        remote,
        tls: false,
        requests: AtomicU64::new(0),
    });
    let io = TokioIo::new(Rewind::new(pre, stream, shared.config.request_timeout));
    let svc = {
        let shared = shared.clone();
        service_fn(move |req| handle(shared.clone(), info.clone(), req))
    };
    match proto {
        Proto::H1 => serve_h1(&shared, io, svc).await,
        Proto::H2 => serve_h2(&shared, io, svc).await,
    }
}

async fn serve_h1<S>(shared: &Shared, io: TokioIo<Rewind<TcpStream>>, svc: S)
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = crate::body::ResBody>,
    S::Future: Send + 'static,
{
    let cfg = &shared.config;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(cfg.keep_alive)
        .timer(TokioTimer::new())
        // Bounds both the idle gap between kept-alive requests and the time
        // to receive a request head.
        .header_read_timeout(cfg.keep_alive_timeout.min(cfg.request_timeout))
        .max_buf_size(cfg.max_header_size.max(crate::service::MIN_PROTOCOL_HEAD))
        // No `pipeline_flush`: with it, hyper 1 holds the response back while
        // more pipelined bytes are buffered, and a connection that closes
        // (`Connection: close`) then drops the response unsent.
        .pipeline_flush(false);
    // `with_upgrades`: a WebSocket handshake hands the transport over to
    // the WebSocket task once the 101 is written.
    let mut conn = builder.serve_connection(io, svc).with_upgrades();
    let mut draining = false;
    let result = loop {
        tokio::select! {
            r = &mut conn => break r,
            _ = shared.shutdown.cancelled(), if !draining => {
                draining = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
            _ = shared.force.cancelled() => return,
        }
    };
    if let Err(e) = result {
        // A request head that stalled mid-way gets a 408 before the close; a
        // connection that was merely idle is closed silently.
        if e.is_timeout() {
            let Some(parts) = conn.into_parts() else {
                return;
            };
            if !parts.read_buf.is_empty() {
                let mut io = parts.io.into_inner();
                let _ = io
                    .write_all(
                        b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
                    )
                    .await;
                let _ = io.shutdown().await;
            }
        }
    }
}

async fn serve_h2<S>(shared: &Shared, io: TokioIo<Rewind<TcpStream>>, svc: S)
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = crate::body::ResBody>,
    S::Future: Send + 'static,
{
    let cfg = &shared.config;
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(cfg.max_header_size.max(8192) as u32)
        .keep_alive_interval(None);
    let mut conn = builder.serve_connection(io, svc);
    let mut draining = false;
    loop {
        tokio::select! {
            _ = &mut conn => return,
            _ = shared.shutdown.cancelled(), if !draining => {
                draining = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
            _ = shared.force.cancelled() => return,
        }
    }
}
