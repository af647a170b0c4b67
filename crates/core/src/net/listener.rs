//! The listeners: TCP (with `SO_REUSEADDR`, optionally `SO_REUSEPORT`) or
//! a Unix domain socket (its file mode set, a stale file from a crashed
//! server replaced, the file removed on close); the accept loops with their
//! `maxConnections` gate, socket buffer sizes, and the count of open
//! connections.
//!
//! Sockets are bound synchronously so that bind errors (`EADDRINUSE`, ...)
//! reach the caller of `Server::start` at once, before any task runs.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ServerConfig;
use crate::dispatch::Dispatch;
use crate::error::{Error, ErrorKind, Result};
use crate::observe::stats::{OpenConnection, Stats};
use crate::proto::Env;

pub(crate) fn bind(config: &ServerConfig) -> Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let label = format!("{}:{}", config.host, config.port);
    let addr: SocketAddr = (config.host.as_str(), config.port)
        .to_socket_addrs()
        .map_err(|e| {
            Error::new(
                ErrorKind::AddrNotAvailable,
                format!("cannot resolve {label}: {e}"),
            )
        })?
        .next()
        .ok_or_else(|| {
            Error::new(
                ErrorKind::AddrNotAvailable,
                format!("cannot resolve {label}"),
            )
        })?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| Error::from_bind(e, &label))?;
    // SO_REUSEADDR lets a restarted server bind while old connections sit
    // in TIME_WAIT; it does not allow two live listeners on one port.
    #[cfg(unix)]
    socket
        .set_reuse_address(true)
        .map_err(|e| Error::from_bind(e, &label))?;
    if config.reuse_port {
        set_reuse_port(&socket, &label)?;
    }
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    socket
        .bind(&addr.into())
        .map_err(|e| Error::from_bind(e, &label))?;
    socket
        .listen(config.backlog as i32)
        .map_err(|e| Error::from_bind(e, &label))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| Error::from_bind(e, &label))?;
    Ok(socket.into())
}

/// `SO_REUSEPORT`: every process that sets it (same user) may bind the
/// port, and Linux balances new connections between their listeners.
#[cfg(all(
    unix,
    not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
))]
fn set_reuse_port(socket: &socket2::Socket, label: &str) -> Result<()> {
    socket
        .set_reuse_port(true)
        .map_err(|e| Error::from_bind(e, label))
}

#[cfg(not(all(
    unix,
    not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
)))]
fn set_reuse_port(_socket: &socket2::Socket, label: &str) -> Result<()> {
    Err(Error::new(
        ErrorKind::InvalidOption,
        format!(
            "cannot listen on {label}: reusePort (SO_REUSEPORT) is not available on this platform"
        ),
    ))
}

/// The `maxConnections` gate, shared by both accept loops.
struct Gate(Option<Arc<Semaphore>>);

impl Gate {
    fn new(config: &ServerConfig) -> Self {
        Self(match config.max_connections {
            0 => None,
            n => Some(Arc::new(Semaphore::new(n))),
        })
    }

    /// The next accepted connection and its slot; `None` once the server
    /// closes. At the limit this waits for a slot first, so further clients
    /// wait in the kernel backlog instead of being accepted and dropped.
    async fn next<D: Dispatch, T, F>(
        &self,
        shared: &Env<D>,
        mut accept: impl FnMut() -> F,
    ) -> Option<(T, Option<OwnedSemaphorePermit>)>
    where
        F: std::future::Future<Output = std::io::Result<T>>,
    {
        loop {
            let permit = match &self.0 {
                Some(sem) => tokio::select! {
                    p = sem.clone().acquire_owned() => Some(p.expect("semaphore never closed")),
                    _ = shared.life.shutdown.cancelled() => return None,
                },
                None => None,
            };
            let accepted = tokio::select! {
                r = accept() => r,
                _ = shared.life.shutdown.cancelled() => return None,
            };
            match accepted {
                Ok(x) => return Some((x, permit)),
                // EMFILE and friends: back off instead of spinning.
                Err(e)
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(_) => {}
            }
        }
    }
}

/// Accepts until the server closes; each connection runs on its own task.
pub(crate) async fn accept_loop<D: Dispatch>(
    shared: Arc<Env<D>>,
    listener: tokio::net::TcpListener,
) {
    let gate = Gate::new(&shared.config);
    while let Some(((stream, remote), permit)) = gate.next(&shared, || listener.accept()).await {
        let _ = stream.set_nodelay(true);
        apply_buffer_sizes(&stream, &shared.config);
        let task_shared = shared.clone();
        Stats::inc(&shared.stats.connections_total);
        let guard = OpenConnection::new(shared.stats.clone());
        // Spawned as it is (no wrapping `async` block, which would hold a
        // second copy of the future's state): the guard and the permit ride
        // along as arguments.
        shared.life.tracker.spawn(super::conn::serve(
            task_shared,
            stream,
            remote,
            guard,
            permit,
        ));
    }
    // Dropping the listener closes the port.
}

fn apply_buffer_sizes(stream: &tokio::net::TcpStream, config: &ServerConfig) {
    if config.read_buffer_size.is_none() && config.write_buffer_size.is_none() {
        return;
    }
    let sock = socket2::SockRef::from(stream);
    if let Some(n) = config.read_buffer_size {
        let _ = sock.set_recv_buffer_size(n);
    }
    if let Some(n) = config.write_buffer_size {
        let _ = sock.set_send_buffer_size(n);
    }
}

/// A bound Unix socket and the file it owns.
#[cfg(unix)]
pub(crate) struct UnixBound {
    pub(crate) listener: std::os::unix::net::UnixListener,
    pub(crate) file: SocketFile,
}

/// Removes the socket file when dropped (server closed, or dropped by
/// force), unless another server has replaced it meanwhile.
#[cfg(unix)]
pub(crate) struct SocketFile {
    path: std::path::PathBuf,
    /// Device and inode of the file this server created.
    id: (u64, u64),
}

#[cfg(unix)]
impl SocketFile {
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }
}

#[cfg(unix)]
impl Drop for SocketFile {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.id {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Binds a Unix domain socket at `unix.path`. A socket file left by a
/// server that is gone (nobody accepts on it) is replaced; a live one is
/// `EADDRINUSE`; a path that is not a socket is never deleted.
#[cfg(unix)]
pub(crate) fn bind_unix(unix: &crate::config::UnixSocketConfig) -> Result<UnixBound> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let path = &unix.path;
    let label = format!("unix socket {}", path.display());
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(Error::new(
                ErrorKind::AddrInUse,
                format!(
                    "cannot listen on {label}: the path exists and is not a socket (not removed)"
                ),
            ));
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(Error::new(
                    ErrorKind::AddrInUse,
                    format!("cannot listen on {label}: another server is accepting on it"),
                ))
            }
            // Refused: a stale file from a server that did not clean up.
            Err(_) => {
                std::fs::remove_file(path).map_err(|e| Error::from_bind(e, &label))?;
            }
        }
    }
    let listener =
        std::os::unix::net::UnixListener::bind(path).map_err(|e| Error::from_bind(e, &label))?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::from_bind(e, &label))?;
    // Owned from here: an error below removes the file again.
    let file = SocketFile {
        path: path.clone(),
        id: (meta.dev(), meta.ino()),
    };
    if let Some(mode) = unix.permissions {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::from_bind(e, &label))?;
    }
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::from_bind(e, &label))?;
    Ok(UnixBound { listener, file })
}

/// The peer address a request over a Unix socket reports: the peer runs on
/// this host, so it reads as loopback (port 0), which `trustProxy:
/// 'loopback'` trusts.
#[cfg(unix)]
const UNIX_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// [`accept_loop`] for a Unix socket; `file` is removed when it ends.
#[cfg(unix)]
pub(crate) async fn accept_unix_loop<D: Dispatch>(
    shared: Arc<Env<D>>,
    listener: tokio::net::UnixListener,
    file: SocketFile,
) {
    let gate = Gate::new(&shared.config);
    while let Some(((stream, _), permit)) = gate.next(&shared, || listener.accept()).await {
        Stats::inc(&shared.stats.connections_total);
        let guard = OpenConnection::new(shared.stats.clone());
        shared.life.tracker.spawn(super::conn::serve_unix(
            shared.clone(),
            stream,
            UNIX_PEER,
            guard,
            permit,
        ));
    }
    // New clients get ECONNREFUSED from here on, and the path is free.
    drop(listener);
    drop(file);
}
