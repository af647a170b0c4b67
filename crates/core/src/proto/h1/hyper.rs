//! HTTP/1.x through hyper, over any byte stream (plain TCP or TLS): the
//! whole path with `HTTPY_H1_DRIVER=hyper`, and by default the one that
//! takes what the own driver (`conn.rs`) hands over (upgrades, `CONNECT`).
//!
//! Idle keep-alive connections are *parked*: hyper keeps an 8 KiB read
//! buffer and an 8 KiB write buffer for as long as a connection lives, which
//! makes idle connections cost ~16 KiB each. A plain-TCP connection that has
//! been quiet for [`PARK_AFTER`] with no request in flight is taken back from
//! hyper (its buffers freed) and waits for input on the bare socket; the
//! next byte starts a fresh hyper connection on the same socket. The client
//! sees nothing of it.

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::io::IDLE_CLOSE_LIMIT;
use super::PARK_AFTER;
use crate::dispatch::ConnInfo;
use crate::dispatch::Dispatch;
use crate::observe::stats::Stats;
use crate::proto::io::Rewind;
use crate::proto::Env;

fn builder<D: Dispatch>(shared: &Env<D>) -> hyper::server::conn::http1::Builder {
    let cfg = &shared.config;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(cfg.keep_alive)
        // A client may shut down its write side once its request is sent;
        // without this, hyper drops the connection, and the response, at
        // that EOF. Abandoned requests are still bounded by requestTimeout.
        .half_close(true)
        .timer(TokioTimer::new())
        // Bounds both the idle gap between kept-alive requests and the time
        // to receive a request head.
        .header_read_timeout(shared.idle_limit())
        .max_buf_size(
            cfg.max_header_size
                .max(crate::dispatch::limits::MIN_PROTOCOL_HEAD),
        )
        // No `pipeline_flush`: with it, hyper 1 holds the response back while
        // more pipelined bytes are buffered, and a connection that closes
        // (`Connection: close`) then drops the response unsent.
        .pipeline_flush(false);
    builder
}

/// Serves HTTP/1.x on `io` until the peer closes, the connection idles out,
/// or the server closes (gracefully: the request in flight finishes).
/// `idle_shutdown`: end an idle connection through `shutdown` rather than
/// dropping it (TLS, for its close_notify: `Transport::SHUTS_DOWN_WHEN_IDLE`).
pub(super) async fn serve<D: Dispatch, T>(
    shared: Arc<Env<D>>,
    info: Arc<ConnInfo>,
    io: T,
    idle_shutdown: bool,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    drive(&shared, &info, io, None, idle_shutdown).await;
}

/// [`serve`] for plain TCP, parking the connection whenever it idles.
pub(super) async fn serve_parkable<D: Dispatch>(
    shared: Arc<Env<D>>,
    info: Arc<ConnInfo>,
    mut io: Rewind<TcpStream>,
) {
    // Parked with half a request head: resume at once, and do not park again
    // before that request arrives, so a client dribbling its head stays
    // bounded by hyper's head timeout (plus one park interval).
    let mut gate = 0;
    loop {
        // Boxed: the task then holds only the small parked state, and
        // hyper's driver state exists only while the connection is active.
        // (Only `io` lives across the awaits below, so that the task keeps a
        // single copy of the stream.)
        let Some((back, unparsed)) = Box::pin(drive(&shared, &info, io, Some(gate), false)).await
        else {
            return;
        };
        io = back;
        info.idle.park.store(false, Relaxed);
        if !io.take_parked() {
            return;
        }
        if !unparsed.is_empty() {
            io.unread(unparsed);
            gate = info.requests.load(Relaxed) + 1;
            continue;
        }
        // Even empty, hyper's leftover may pin its whole read buffer.
        drop(unparsed);
        gate = 0;
        Stats::inc(&shared.stats.connections_idle);
        crate::proto::trim::note_park();
        let woke = wait_parked(&shared, &io).await;
        Stats::dec(&shared.stats.connections_idle);
        if !woke {
            return;
        }
    }
}

/// Waits on a parked connection for input (`true`), or for the end of the
/// keep-alive window or a server close (`false`: close it). hyper's idle
/// timer stopped with it, so the rest of the window is waited out here. (No
/// `force` branch: a forced close always follows `shutdown`.)
async fn wait_parked<D: Dispatch>(shared: &Env<D>, io: &Rewind<TcpStream>) -> bool {
    let wait = shared.idle_limit().saturating_sub(PARK_AFTER);
    tokio::select! {
        r = io.readable() => r.is_ok(),
        _ = tokio::time::sleep(wait) => false,
        _ = shared.life.shutdown.cancelled() => false,
    }
}

/// Runs one hyper connection on `io`. With `park: Some(gate)`, the
/// connection is parked once idle (and once `info.requests` has reached
/// `gate`): then the stream and hyper's unparsed input are returned.
/// `idle_shutdown`: see [`serve`].
async fn drive<D: Dispatch, T>(
    shared: &Arc<Env<D>>,
    info: &Arc<ConnInfo>,
    io: T,
    park: Option<u64>,
    idle_shutdown: bool,
) -> Option<(T, Bytes)>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = {
        let dispatch = shared.dispatch.clone();
        let info = info.clone();
        service_fn(move |req| dispatch.call(info.clone(), req))
    };
    // `with_upgrades`: a WebSocket handshake hands the transport over to
    // the WebSocket task once the 101 is written. Boxed so that a parked
    // connection's task does not keep hyper's state in its own allocation.
    let mut conn = Box::new(
        builder(shared)
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades(),
    );
    let tick = tokio::time::sleep(PARK_AFTER);
    tokio::pin!(tick);
    let mut seen = info.idle.io_events.load(Relaxed);
    let mut draining = false;
    let mut parking = false;
    let result = loop {
        tokio::select! {
            r = Pin::new(&mut *conn) => break r,
            _ = &mut tick, if park.is_some() && !parking && !draining => {
                let now = info.idle.io_events.load(Relaxed);
                let gate = park.unwrap_or(0);
                if now == seen && info.idle.quiet() && info.requests.load(Relaxed) >= gate {
                    // hyper closes an idle connection at once; the stream
                    // wrapper turns that close into a park.
                    parking = true;
                    info.idle.park.store(true, Relaxed);
                    Pin::new(&mut *conn).graceful_shutdown();
                } else {
                    seen = now;
                    tick.as_mut().reset(tokio::time::Instant::now() + PARK_AFTER);
                }
            }
            _ = shared.life.shutdown.cancelled(), if !draining => {
                draining = true;
                Pin::new(&mut *conn).graceful_shutdown();
            }
            _ = shared.life.force.cancelled() => return None,
        }
    };
    match result {
        Ok(()) if parking => {
            let parts = conn.into_parts()?;
            Some((parts.io.into_inner(), parts.read_buf))
        }
        Ok(()) => None,
        // A request head that stalled mid-way gets a 408 before the close; a
        // connection that was merely idle is closed silently: dropped, or
        // over TLS shut down (its close_notify), within IDLE_CLOSE_LIMIT.
        Err(e) => {
            if e.is_timeout() {
                let parts = conn.into_parts()?;
                let mut io = parts.io.into_inner();
                if !parts.read_buf.is_empty() {
                    let _ = io
                        .write_all(
                            b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
                        )
                        .await;
                    let _ = io.shutdown().await;
                } else if idle_shutdown {
                    let _ = tokio::time::timeout(IDLE_CLOSE_LIMIT, io.shutdown()).await;
                }
            }
            None
        }
    }
}
