//! What the dispatcher and the protocol drivers know of one connection:
//! who the peer is, how many requests it has made, its `maxConnections`
//! slot, and the idle watch the HTTP/1 driver reads to park it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::config::client_auth::TlsPeer;

/// Per-connection facts the service needs.
pub(crate) struct ConnInfo {
    pub remote: SocketAddr,
    pub tls: bool,
    /// SNI name and client certificate of a TLS connection.
    pub tls_peer: Option<Arc<TlsPeer>>,
    pub requests: AtomicU64,
    /// What the HTTP/1 driver reads to decide that a connection is idle
    /// and may give its buffers back (see `proto::h1`).
    pub idle: IdleWatch,
    /// The connection's `maxConnections` slot. A WebSocket upgrade takes it
    /// with it, so upgraded connections stay counted against the limit.
    pub slot: parking_lot::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
    /// Set by the own HTTP/1.1 driver on plain TCP when answers may be
    /// written from the embedder's thread (`embedder::direct`).
    pub(crate) direct: std::sync::OnceLock<Arc<crate::embedder::direct::Slot>>,
}

impl ConnInfo {
    pub(crate) fn new(remote: SocketAddr, tls: bool) -> Arc<Self> {
        Self::with_peer(remote, tls, None)
    }

    pub(crate) fn with_peer(
        remote: SocketAddr,
        tls: bool,
        tls_peer: Option<Arc<TlsPeer>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            remote,
            tls,
            tls_peer,
            requests: AtomicU64::new(0),
            idle: Default::default(),
            slot: parking_lot::Mutex::new(None),
            direct: std::sync::OnceLock::new(),
        })
    }
}

/// What the driver reads to tell that a connection is idle. Written by the
/// stream wrapper (`proto::io::Rewind`) and the service; read by the driver. All of
/// them run in the connection's own task, so plain loads and stores are
/// enough (no read-modify-write on the hot path).
#[derive(Default)]
pub(crate) struct IdleWatch {
    /// Bumped on every read that returned bytes and every write that took
    /// some (not on flushes: hyper flushes on every poll).
    pub(crate) io_events: AtomicU64,
    /// Requests whose response has not been handed to hyper yet.
    in_flight: AtomicU32,
    /// The last write attempt found the socket full.
    write_blocked: AtomicBool,
    /// The driver asked hyper to stop; the stream must stay open.
    pub(crate) park: AtomicBool,
}

/// Marks a request in flight until dropped.
pub(crate) struct Busy<'a>(&'a IdleWatch);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl IdleWatch {
    pub(crate) fn read(&self) {
        self.io_events
            .store(self.io_events.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// A write attempt: `Some(n)` bytes taken, `None` the socket was full.
    pub(crate) fn wrote(&self, taken: Option<usize>) {
        if taken.is_some_and(|n| n > 0) {
            self.read();
        }
        self.write_blocked.store(taken.is_none(), Relaxed);
    }

    /// Held by the service while a request is being answered. (The service
    /// runs on a task per stream for HTTP/3, hence the atomic add.)
    pub(crate) fn busy(&self) -> Busy<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        Busy(self)
    }

    pub(crate) fn park_requested(&self) -> bool {
        self.park.load(Relaxed)
    }

    pub(crate) fn quiet(&self) -> bool {
        self.in_flight.load(Relaxed) == 0 && !self.write_blocked.load(Relaxed)
    }
}
