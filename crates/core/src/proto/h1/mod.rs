//! HTTP/1.x, plain or over TLS. Two drivers, one switch:
//!
//! - the own driver (default), on `httparse`: `conn.rs` runs the
//!   connection, `role.rs` parses heads, `decode.rs` frames request bodies,
//!   `body.rs` is the body the dispatcher reads, `encode.rs` writes
//!   responses, `io.rs` pools buffers. It serves every request except
//!   those with an `Upgrade` field (WebSocket, h2c) and `CONNECT`: at such a
//!   head it stops, and the connection, with the bytes it has read, goes to
//! - hyper (`hyper.rs`), which performs the upgrade as before (the WebSocket
//!   layer takes the transport from hyper's `OnUpgrade`). A connection once
//!   handed over stays with hyper.
//!
//! `HTTPY_H1_DRIVER=hyper` in the environment (read once per process)
//! sends every connection to hyper, so that both paths can be measured in
//! one build; hyper stays the fallback should the own driver misbehave.
//!
//! Why our own: hyper builds a `HeaderMap` per request and encodes each
//! response from one through its own buffers, per request; the own driver
//! writes the head straight from the response into a pooled buffer, writes
//! head and body in one call, and holds no buffer on an idle connection.

mod body;
mod conn;
mod decode;
mod encode;
mod hyper;
mod io;
mod role;

use std::sync::Arc;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::net::TcpStream;

pub(crate) use io::Transport;

use super::io::Rewind;
use super::Env;
use crate::dispatch::{ConnInfo, Dispatch};

/// How long a connection must be quiet (no bytes either way, no request in
/// flight, nothing waiting to be written) before it is parked. A connection
/// is parked between one and two of these after its last I/O. Short, so that
/// a burst of new connections holds few buffers at any moment (the peak is
/// what the process's RSS keeps); long enough that a busy connection sees
/// only twenty timer ticks a second, and back-to-back traffic never parks.
/// (The own driver frees its buffers at once; it uses this only to count a
/// connection as idle.)
pub(crate) const PARK_AFTER: Duration = Duration::from_millis(50);

/// The own driver, unless `HTTPY_H1_DRIVER=hyper`.
static OWN_DRIVER: LazyLock<bool> =
    LazyLock::new(|| std::env::var("HTTPY_H1_DRIVER").map_or(true, |v| v != "hyper"));

/// Serves HTTP/1.x on `io` until the peer closes, the connection idles out,
/// or the server closes (gracefully: the request in flight finishes).
pub(crate) async fn serve<D: Dispatch, T: Transport>(
    shared: Arc<Env<D>>,
    info: Arc<ConnInfo>,
    io: T,
) {
    if !*OWN_DRIVER {
        return hyper::serve(shared, info, io).await;
    }
    if let conn::End::HandOff(io, read) = conn::run(&shared, &info, io).await {
        let write_timeout = shared.config.request_timeout;
        Box::pin(hyper::serve(
            shared,
            info,
            Rewind::new(read, io, write_timeout),
        ))
        .await
    }
}

/// [`serve`] for plain TCP, where idle connections hold no buffers.
pub(crate) async fn serve_parkable<D: Dispatch>(
    shared: Arc<Env<D>>,
    info: Arc<ConnInfo>,
    io: Rewind<TcpStream>,
) {
    if !*OWN_DRIVER {
        return hyper::serve_parkable(shared, info, io).await;
    }
    if let conn::End::HandOff(mut io, read) = conn::run(&shared, &info, io).await {
        io.unread(read);
        Box::pin(hyper::serve_parkable(shared, info, io)).await
    }
}
