//! A listening server: its own Tokio runtime, the accept loop, the route
//! table, and the graceful close.
//!
//! The socket is bound synchronously in [`Server::start`] so that bind
//! errors (`EADDRINUSE`, ...) reach the caller at once, before any task runs.

use arc_swap::ArcSwap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::queue::{Incoming, Queue, Waker};
use crate::router::Router;
use crate::stats::{Stats, StatsSnapshot};
use crate::ws::{Hub, SendStatus, WsEvent, WsFrame, WsOptions};
use crate::{Reply, Responder};

/// State shared by every connection task of one server.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) router: ArcSwap<Router>,
    pub(crate) queue: Queue,
    pub(crate) stats: Arc<Stats>,
    /// Route cache of the routes registered with a ttl.
    pub(crate) cache: crate::cache::RouteCache,
    /// Files of the `serveStatic` mounts, resolved and (when small) held.
    pub(crate) files: crate::file_cache::FileCache,
    /// Stop accepting; let connections finish what they have started.
    pub(crate) shutdown: CancellationToken,
    /// Drop every connection now.
    pub(crate) force: CancellationToken,
    pub(crate) faults: crate::fault::Faults,
    pub(crate) tracker: TaskTracker,
    pub(crate) hub: Hub,
    pub(crate) metrics: Option<crate::metrics::Metrics>,
    pub(crate) access_log: Option<crate::access_log::AccessLog>,
    /// `Alt-Svc` advertising HTTP/3 on TCP responses, when it is on.
    pub(crate) alt_svc: Option<http::HeaderValue>,
}

/// A running server. Dropping it closes it by force.
///
/// ```no_run
/// use httpy_core::{Server, ServerConfig, Router, Waker};
/// struct NoJs;
/// impl Waker for NoJs { fn wake(&self) {} fn closed(&self) {} }
/// let server = Server::start(ServerConfig { port: 0, ..Default::default() }, Router::new(), Box::new(NoJs)).unwrap();
/// println!("listening on {}", server.local_addr());
/// server.close(std::time::Duration::from_secs(5));
/// ```
pub struct Server {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    http3_port: Option<u16>,
    runtime: Option<Runtime>,
}

fn bind(config: &ServerConfig) -> Result<std::net::TcpListener> {
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

impl Server {
    /// Binds, starts the runtime and begins accepting.
    pub fn start(config: ServerConfig, router: Router, waker: Box<dyn Waker>) -> Result<Server> {
        let std_listener = bind(&config)?;
        let access_log = match &config.access_log {
            Some(c) => Some(crate::access_log::AccessLog::start(c)?),
            None => None,
        };
        let metrics = config
            .metrics
            .as_ref()
            .map(|m| crate::metrics::Metrics::new(m.path.clone()));
        let local_addr = std_listener
            .local_addr()
            .map_err(|e| Error::new(ErrorKind::Listen, e.to_string()))?;
        let udp = crate::proto::bind_http3(&config)?;
        let http3_port = match &udp {
            Some(sock) => Some(
                sock.local_addr()
                    .map_err(|e| Error::new(ErrorKind::Listen, e.to_string()))?
                    .port(),
            ),
            None => None,
        };
        // A day: clients re-check at least that often whether HTTP/3 is still on.
        let alt_svc = http3_port
            .and_then(|p| http::HeaderValue::from_str(&format!("h3=\":{p}\"; ma=86400")).ok());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .thread_name("httpy-io")
            .enable_all()
            .build()
            .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot start runtime: {e}")))?;
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            router: ArcSwap::from_pointee(router),
            queue: Queue::new(waker, stats.clone()),
            files: crate::file_cache::FileCache::new(
                crate::file_cache::MAX_ENTRIES,
                crate::file_cache::MAX_BYTES,
                stats.clone(),
            ),
            stats,
            cache: crate::cache::RouteCache::new(
                crate::cache::MAX_ENTRIES,
                crate::cache::MAX_BYTES,
            ),
            shutdown: CancellationToken::new(),
            force: CancellationToken::new(),
            faults: crate::fault::Faults::from_env(),
            tracker: TaskTracker::new(),
            metrics,
            access_log,
            hub: Hub::default(),
            alt_svc,
            config,
        });
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)
                .map_err(|e| Error::new(ErrorKind::Listen, e.to_string()))?
        };
        if let Some(udp) = udp {
            let _guard = runtime.enter();
            crate::proto::start_http3(shared.clone(), udp)?;
        }
        runtime.spawn(accept_loop(shared.clone(), listener));
        runtime.spawn(crate::trim::run(shared.clone()));
        Ok(Server {
            shared,
            local_addr,
            http3_port,
            runtime: Some(runtime),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The UDP port serving HTTP/3, when it is on.
    pub fn http3_port(&self) -> Option<u16> {
        self.http3_port
    }

    /// The certificate chain served over TLS (PEM), if TLS is on.
    pub fn tls_certificate_pem(&self) -> Option<&str> {
        self.shared.config.tls.as_ref().map(|t| t.certificate_pem())
    }

    /// Replaces the route table; requests already routed keep their match.
    pub fn set_router(&self, router: Router) {
        self.shared.router.store(Arc::new(router));
    }

    /// Takes every request queued since the last call.
    pub fn take_batch(&self) -> Vec<Incoming> {
        self.shared.queue.take_batch()
    }

    /// Accepts the WebSocket upgrade of request `id` (a request routed to a
    /// WebSocket route): the connection exists from now on, so frames can be
    /// queued for it at once; they go out after the `101` response. Returns
    /// false when the client has already gone.
    pub fn ws_accept(&self, id: u32, responder: Responder, reply: Reply, opts: WsOptions) -> bool {
        self.shared.hub.register(id, opts);
        if responder.send(reply) {
            true
        } else {
            self.shared.hub.remove(id);
            false
        }
    }

    /// Queues a frame for WebSocket connection `id`.
    pub fn ws_send(&self, id: u32, frame: WsFrame) -> SendStatus {
        self.shared.hub.send(id, frame)
    }

    /// Queues a frame without waking the connection's writer until
    /// [`Server::ws_flush`]: for bursts of sends from one embedder turn.
    pub fn ws_send_deferred(&self, id: u32, frame: WsFrame) -> SendStatus {
        self.shared.hub.send_deferred(id, frame)
    }

    /// Wakes the writers of connections with deferred frames.
    pub fn ws_flush(&self) {
        self.shared.hub.flush()
    }

    /// Starts the closing handshake of connection `id` with `code` and `reason`.
    pub fn ws_close(&self, id: u32, code: u16, reason: &str) -> bool {
        self.shared.hub.close(id, code, reason)
    }

    /// Stops (or resumes) reading from connection `id`'s socket.
    pub fn ws_pause(&self, id: u32, paused: bool) {
        self.shared.hub.set_paused(id, paused)
    }

    pub fn ws_subscribe(&self, id: u32, topic: &str) -> bool {
        self.shared.hub.subscribe(id, topic)
    }

    pub fn ws_unsubscribe(&self, id: u32, topic: &str) -> bool {
        self.shared.hub.unsubscribe(id, topic)
    }

    /// Queues `frame` for every subscriber of `topic`, in Rust; returns the
    /// number of connections it was queued for.
    pub fn ws_publish(&self, topic: &str, frame: WsFrame) -> usize {
        self.shared.hub.publish(topic, frame)
    }

    /// Takes every WebSocket event queued since the last call.
    pub fn take_ws_events(&self) -> Vec<WsEvent> {
        self.shared.hub.take_events()
    }

    /// WebSocket connections registered (accepted and not yet finished).
    pub fn ws_connections(&self) -> usize {
        self.shared.hub.open_count()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The Prometheus text of this server's metrics, when they are on (for
    /// an embedder that merges its own metrics into one endpoint).
    pub fn metrics_text(&self) -> Option<String> {
        self.shared.metrics.as_ref().map(|m| m.render())
    }

    /// Access log lines lost because the writer could not keep up.
    pub fn access_log_dropped(&self) -> u64 {
        self.shared
            .access_log
            .as_ref()
            .map_or(0, |l| l.dropped.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn is_closing(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// Starts a graceful close and returns at once: stop accepting, let
    /// in-flight requests finish, close idle connections; after `grace`,
    /// drop whatever is still open. [`Waker::closed`] fires at the end.
    pub fn close(&self, grace: Duration) {
        if self.shared.shutdown.is_cancelled() {
            return;
        }
        self.shared.shutdown.cancel();
        self.shared.tracker.close();
        let shared = self.shared.clone();
        if let Some(rt) = &self.runtime {
            rt.spawn(async move {
                if tokio::time::timeout(grace, shared.tracker.wait())
                    .await
                    .is_err()
                {
                    shared.force.cancel();
                    shared.tracker.wait().await;
                }
                shared.queue.notify_closed();
            });
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        self.shared.force.cancel();
        if let Some(rt) = self.runtime.take() {
            // Never block the embedder's thread on tasks winding down.
            rt.shutdown_background();
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
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
                _ = shared.shutdown.cancelled() => break,
            },
            None => None,
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shared.shutdown.cancelled() => break,
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
        shared.tracker.spawn(crate::conn::serve(
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

/// Counts an open connection for as long as its task lives, even if the
/// task ends by panic or by runtime shutdown.
struct OpenConnection(Arc<Stats>);

impl OpenConnection {
    fn new(stats: Arc<Stats>) -> Self {
        Stats::inc(&stats.connections_open);
        Self(stats)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        Stats::dec(&self.0.connections_open);
    }
}
