//! Serving one accepted connection (TCP, or a Unix domain socket): pick the
//! protocol, drive it, and stop it gracefully (or by force) when the server
//! closes.
//!
//! Over TLS the negotiated ALPN protocol decides. In cleartext the first
//! bytes do: the HTTP/2 connection preface means h2c with prior knowledge;
//! anything else is HTTP/1.x. Bytes read while deciding are replayed to the
//! protocol layer by [`Rewind`].

use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::config::client_auth;
use crate::config::tls::{TlsSettings, ALPN_H2};
use crate::dispatch::ConnInfo;
use crate::dispatch::Dispatch;
use crate::net::corked::Corked;
use crate::net::shared_tls::SharedTls;
use crate::observe::metrics::{open_connection, Protocol};
use crate::proto::Env;
use crate::proto::{self, io::Rewind};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum Proto {
    H1,
    H2,
}

/// A stream the server accepts: TCP, or a Unix domain socket.
pub(crate) trait Accepted: AsyncRead + AsyncWrite + Unpin + Send + 'static + Sized {
    /// Waits for input without reading it (so an idle connection holds no buffer).
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;

    /// The socket's descriptor, where answers may be written directly
    /// (TCP on Unix).
    fn fd(&self) -> Option<i32> {
        None
    }

    /// Serves HTTP/1.x on the stream.
    fn serve_h1<D: Dispatch>(
        shared: Arc<Env<D>>,
        info: Arc<ConnInfo>,
        io: Rewind<Self>,
    ) -> impl std::future::Future<Output = ()> + Send;
}

impl Accepted for TcpStream {
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        TcpStream::readable(self)
    }

    fn fd(&self) -> Option<i32> {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            Some(self.as_raw_fd())
        }
        #[cfg(not(unix))]
        None
    }

    async fn serve_h1<D: Dispatch>(shared: Arc<Env<D>>, info: Arc<ConnInfo>, io: Rewind<Self>) {
        proto::h1::serve_parkable(shared, info.clone(), io.watched(info)).await
    }
}

/// Unix sockets are not parked when idle (they serve a local proxy, which
/// keeps few connections).
#[cfg(unix)]
impl Accepted for tokio::net::UnixStream {
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        tokio::net::UnixStream::readable(self)
    }

    async fn serve_h1<D: Dispatch>(shared: Arc<Env<D>>, info: Arc<ConnInfo>, io: Rewind<Self>) {
        proto::h1::serve(shared, info, io).await
    }
}

/// Reads until the protocol is known. `None`: the peer closed or stayed
/// silent past the idle timeout before sending anything.
async fn sniff<D: Dispatch, S: Accepted>(
    stream: &mut S,
    shared: &Env<D>,
) -> Option<(Proto, Bytes)> {
    let mut buf = Vec::with_capacity(0);
    let wait = shared.idle_limit();
    let read = async {
        loop {
            // Allocate only once data is there: an idle connection holds no buffer.
            Accepted::readable(stream).await.ok()?;
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
pub(crate) async fn serve<D: Dispatch, H: Send>(
    shared: Arc<Env<D>>,
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

/// [`serve`] for a connection accepted on a Unix domain socket.
#[cfg(unix)]
pub(crate) async fn serve_unix<D: Dispatch, H: Send>(
    shared: Arc<Env<D>>,
    stream: tokio::net::UnixStream,
    remote: SocketAddr,
    _open: H,
    slot: Option<OwnedSemaphorePermit>,
) {
    match shared.config.tls.clone() {
        Some(tls) => Box::pin(serve_tls(shared, stream, remote, tls, slot)).await,
        None => Box::pin(serve_plain(shared, stream, remote, slot)).await,
    }
}

async fn serve_plain<D: Dispatch, S: Accepted>(
    shared: Arc<Env<D>>,
    mut stream: S,
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
            _ = shared.life.shutdown.cancelled() => None,
        }
    })
    .await;
    let Some((proto, pre)) = sniffed else {
        return;
    };
    let _open = open_connection(
        &shared.metrics,
        match proto {
            Proto::H1 => Protocol::Http1,
            Proto::H2 => Protocol::Http2,
        },
    );
    let info = ConnInfo::new(remote, false);
    *info.slot.lock() = slot;
    let io = Rewind::new(pre, stream, shared.config.request_timeout);
    match proto {
        Proto::H1 => S::serve_h1(shared, info, io).await,
        Proto::H2 => Box::pin(proto::h2::serve(shared, info, io)).await,
    }
}

/// TLS: the handshake must finish within the idle timeout; a client that
/// fails it (garbage, plain HTTP, no common protocol version) loses only
/// its own connection. ALPN then picks the protocol; no ALPN means
/// HTTP/1.1. TLS runs over [`Rewind`] for its lingering close and its
/// slow-reader cut-off, and over [`Corked`] for the handshake's last writes.
async fn serve_tls<D: Dispatch, S: Accepted>(
    shared: Arc<Env<D>>,
    stream: S,
    remote: SocketAddr,
    tls: TlsSettings,
    slot: Option<OwnedSemaphorePermit>,
) {
    let wait = shared.idle_limit();
    let fd = stream.fd();
    // The configuration current at accept time: a reload meanwhile applies
    // to the next connection. (One lock-free load, an Arc count.)
    let built = tls.current();
    let io = Rewind::new(Bytes::new(), stream, shared.config.request_timeout);
    // The ClientHello is read first, to pick the suite order for this
    // client (`Built::for_client`: AES-128-GCM first unless the client puts
    // ChaCha20 first), then the handshake goes on with that configuration.
    // The hello is parsed once: rustls' `Acceptor` hands it on to the
    // connection.
    //
    // The handshake's writes are held (`Corked`) and sent when it waits
    // for the client, so what it writes last, the session tickets, leaves
    // with the first answer rather than in a send of its own.
    let handshake = tokio::time::timeout(wait, async {
        let start = tokio_rustls::LazyConfigAcceptor::new(
            rustls::server::Acceptor::default(),
            Corked::new(io),
        )
        .await?;
        let config = built
            .for_client(start.client_hello().cipher_suites())
            .clone();
        let mut accept = start.into_stream(config);
        if let Some(io) = accept.get_mut() {
            io.cork();
        }
        match accept.into_fallible().await {
            Ok(mut s) => {
                let (io, session) = s.get_mut();
                io.uncork();
                // Only TLS 1.3 ends with messages no client waits for; a
                // TLS 1.2 client needs the server's Finished now.
                if session.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
                    io.release().await?;
                }
                Ok(s)
            }
            Err((e, mut io)) => {
                // The alert rustls queued, if any, before the socket goes.
                io.release_now();
                Err(e)
            }
        }
    });
    let stream = tokio::select! {
        r = handshake => match r {
            Ok(Ok(s)) => s,
            _ => return,
        },
        _ = shared.life.shutdown.cancelled() => return,
    };
    let session = stream.get_ref().1;
    // A TLS-ALPN-01 validation: the CA only looks at the certificate.
    if session.alpn_protocol() == Some(crate::config::acme::ALPN_ACME) {
        return;
    }
    let is_h2 = session.alpn_protocol() == Some(ALPN_H2);
    let peer = client_auth::peer(
        session.server_name(),
        session.peer_certificates(),
        built.client_check.as_ref(),
    );
    drop(built);
    let info = ConnInfo::with_peer(remote, true, peer);
    *info.slot.lock() = slot;
    let _open = open_connection(
        &shared.metrics,
        if is_h2 {
            Protocol::Http2
        } else {
            Protocol::Http1
        },
    );
    if is_h2 {
        proto::h2::serve(shared, info, stream).await
    } else {
        // The session behind a lock, so that the task delivering a JS
        // answer can encrypt and write it (`net::shared_tls`).
        let (io, session) = stream.into_inner();
        proto::h1::serve(shared, info, SharedTls::new(io, session, fd)).await
    }
}
