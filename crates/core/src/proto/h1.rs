//! HTTP/1.x through hyper, over any byte stream (plain TCP or TLS).

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::server::Shared;
use crate::service::{handle, ConnInfo};

/// Serves HTTP/1.x on `io` until the peer closes, the connection idles out,
/// or the server closes (gracefully: the request in flight finishes).
pub(crate) async fn serve<T>(shared: Arc<Shared>, info: Arc<ConnInfo>, io: T)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = {
        let shared = shared.clone();
        service_fn(move |req| handle(shared.clone(), info.clone(), req))
    };
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
        .header_read_timeout(cfg.keep_alive_timeout.min(cfg.request_timeout))
        .max_buf_size(cfg.max_header_size.max(crate::service::MIN_PROTOCOL_HEAD))
        // No `pipeline_flush`: with it, hyper 1 holds the response back while
        // more pipelined bytes are buffered, and a connection that closes
        // (`Connection: close`) then drops the response unsent.
        .pipeline_flush(false);
    // `with_upgrades`: a WebSocket handshake hands the transport over to
    // the WebSocket task once the 101 is written.
    let mut conn = builder
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
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
