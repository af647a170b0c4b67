//! The TCP listener: bind (with `SO_REUSEADDR`, optionally `SO_REUSEPORT`),
//! the accept loop with its `maxConnections` gate, socket buffer sizes, and
//! the count of open connections.
//!
//! The socket is bound synchronously so that bind errors (`EADDRINUSE`, ...)
//! reach the caller of `Server::start` at once, before any task runs.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

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

/// Accepts until the server closes; each connection runs on its own task.
pub(crate) async fn accept_loop<D: Dispatch>(
    shared: Arc<Env<D>>,
    listener: tokio::net::TcpListener,
) {
    let limit = match shared.config.max_connections {
        0 => None,
        n => Some(Arc::new(Semaphore::new(n))),
    };
    loop {
        // At the connection limit, stop accepting: further clients wait in
        // the kernel backlog instead of being accepted and dropped.
        let permit = match &limit {
            Some(sem) => tokio::select! {
                p = sem.clone().acquire_owned() => Some(p.expect("semaphore never closed")),
                _ = shared.life.shutdown.cancelled() => break,
            },
            None => None,
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shared.life.shutdown.cancelled() => break,
        };
        let (stream, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                continue;
            }
        };
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
