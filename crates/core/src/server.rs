//! The embedder's handle on a listening server: [`Server::start`] builds
//! the state every layer below uses (and hands each its part), starts the
//! runtime, the listener and HTTP/3; the other methods are what the
//! embedder calls: take requests, answer WebSockets, read stats, close.

use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;

use crate::config::ServerConfig;
use crate::dispatch::fault::Faults;
use crate::dispatch::service::Service;
use crate::embedder::queue::{Incoming, Queue, Records, Waker};
use crate::embedder::reply::Spares;
use crate::error::{Error, ErrorKind, Result};
use crate::lifecycle::Lifecycle;
use crate::observe::access_log::AccessLog;
use crate::observe::metrics::Metrics;
use crate::observe::stats::{Stats, StatsSnapshot};
use crate::observe::Observers;
use crate::proto::Env;
use crate::pubsub::{PubSub, PubSubSnapshot};
use crate::respond::Direct;
use crate::ws::{Hub, SendStatus, WsEnv, WsEvents, WsFrame, WsOptions};
use crate::{Reply, Responder, Router};

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
    /// The request path's state; each layer below got the parts it uses.
    service: Arc<Service>,
    life: Lifecycle,
    local_addr: SocketAddr,
    unix_path: Option<std::path::PathBuf>,
    http3_port: Option<u16>,
    runtime: Option<Runtime>,
    /// Pub/sub beyond this process, when configured.
    pubsub: Option<Arc<PubSub>>,
    /// Header maps of written answers, back for the next replies.
    spares: Arc<Spares>,
}

impl Server {
    /// Binds, starts the runtime and begins accepting.
    pub fn start(config: ServerConfig, router: Router, waker: Box<dyn Waker>) -> Result<Server> {
        #[cfg(unix)]
        let unix = match &config.unix_socket {
            Some(u) => Some(crate::net::listener::bind_unix(u)?),
            None => None,
        };
        #[cfg(not(unix))]
        if config.unix_socket.is_some() {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "Unix domain sockets are not available on this platform",
            ));
        }
        #[cfg(not(unix))]
        let unix: Option<std::convert::Infallible> = None;
        let std_listener = match unix {
            Some(_) => None,
            None => Some(crate::net::listener::bind(&config)?),
        };
        let access_log = match &config.access_log {
            Some(c) => Some(AccessLog::start(c)?),
            None => None,
        };
        let metrics = config
            .metrics
            .as_ref()
            .map(|m| Arc::new(Metrics::new(m.path.clone())));
        let local_addr = match &std_listener {
            Some(l) => l
                .local_addr()
                .map_err(|e| Error::new(ErrorKind::Listen, e.to_string()))?,
            None => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        #[cfg(unix)]
        let unix_path = unix.as_ref().map(|u| u.file.path().to_path_buf());
        #[cfg(not(unix))]
        let unix_path = None;
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
        crate::config::tls::install_process_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .thread_name("httpy-io")
            .enable_all()
            .build()
            .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot start runtime: {e}")))?;
        // Built here, at the top; every layer below is handed its part.
        let config = Arc::new(config);
        let life = Lifecycle::default();
        let stats = Arc::new(Stats::default());
        let queue = Arc::new(Queue::new(
            waker,
            stats.clone(),
            crate::embedder::record::encode_fields,
        ));
        let service = Arc::new(Service {
            router: ArcSwap::from_pointee(router),
            queue: queue.clone(),
            direct: Direct::new(
                stats.clone(),
                config.compression.clone(),
                config.request_timeout,
            ),
            faults: Faults::from_env(),
            ws: Arc::new(WsEnv {
                hub: Hub::default(),
                queue,
                stats: stats.clone(),
                metrics: metrics.clone(),
                life: life.clone(),
            }),
            observe: Observers {
                metrics: metrics.clone(),
                access_log,
            },
            stats: stats.clone(),
            alt_svc,
            uploads: Default::default(),
            aborts: Default::default(),
            config: config.clone(),
        });
        let env = Arc::new(Env {
            config,
            life: life.clone(),
            stats,
            metrics,
            dispatch: service.clone(),
        });
        if let Some(udp) = udp {
            let _guard = runtime.enter();
            crate::proto::start_http3(env.clone(), udp)?;
        }
        // Before accepting: a worker links to its siblings before it serves.
        let pubsub = if env.config.pubsub.is_on() {
            Some(PubSub::start(
                &env.config.pubsub,
                service.ws.clone(),
                env.metrics.clone(),
                &runtime,
            )?)
        } else {
            None
        };
        let listen_err = |e: std::io::Error| Error::new(ErrorKind::Listen, e.to_string());
        if let Some(std_listener) = std_listener {
            let _guard = runtime.enter();
            let listener = tokio::net::TcpListener::from_std(std_listener).map_err(listen_err)?;
            runtime.spawn(crate::net::listener::accept_loop(env, listener));
        } else {
            #[cfg(unix)]
            if let Some(u) = unix {
                let _guard = runtime.enter();
                let listener =
                    tokio::net::UnixListener::from_std(u.listener).map_err(listen_err)?;
                runtime.spawn(crate::net::listener::accept_unix_loop(
                    env, listener, u.file,
                ));
            }
        }
        runtime.spawn(crate::proto::trim::run(life.shutdown.token()));
        if let Some(acme) = service.config.tls.as_ref().and_then(|t| t.acme()) {
            let src = acme.source();
            if src.order && src.challenge == crate::AcmeChallenge::Http01 {
                let addr = format!("{}:{}", service.config.host, src.http_port);
                let std_l = std::net::TcpListener::bind(&addr)
                    .and_then(|l| l.set_nonblocking(true).map(|_| l))
                    .map_err(|e| Error::from_bind(e, &addr))?;
                let _guard = runtime.enter();
                let l = tokio::net::TcpListener::from_std(std_l).map_err(listen_err)?;
                runtime.spawn(crate::config::acme::serve_http01(
                    acme.clone(),
                    l,
                    local_addr.port(),
                    life.shutdown.token(),
                ));
            }
            runtime.spawn(crate::config::acme::run(acme, life.shutdown.token()));
        }
        Ok(Server {
            service,
            life,
            local_addr,
            unix_path,
            http3_port,
            runtime: Some(runtime),
            pubsub,
            spares: Arc::default(),
        })
    }

    /// The Unix socket's path, when listening on one (then `local_addr` is
    /// `0.0.0.0:0`).
    pub fn unix_path(&self) -> Option<&std::path::Path> {
        self.unix_path.as_deref()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The UDP port serving HTTP/3, when it is on.
    pub fn http3_port(&self) -> Option<u16> {
        self.http3_port
    }

    /// The default certificate chain served over TLS (PEM), if TLS is on.
    pub fn tls_certificate_pem(&self) -> Option<String> {
        self.service
            .config
            .tls
            .as_ref()
            .map(|t| t.certificate_pem())
    }

    /// Where ACME stands, with `tls.acme`.
    pub fn acme_status(&self) -> Option<crate::AcmeStatus> {
        self.service
            .config
            .tls
            .as_ref()
            .and_then(|t| t.acme_status())
    }

    /// Replaces the certificates (and client-certificate settings) for every
    /// later handshake, TCP and QUIC; open connections keep theirs. On error
    /// nothing changes.
    pub fn set_tls(&self, source: &crate::TlsSource) -> Result<()> {
        match &self.service.config.tls {
            Some(tls) => tls.replace(source),
            None => Err(Error::new(
                ErrorKind::Tls,
                "this server was started without tls: it cannot switch to TLS while running",
            )),
        }
    }

    /// Replaces the route table; requests already routed keep their match.
    pub fn set_router(&self, router: Router) {
        self.service.router.store(Arc::new(router));
    }

    /// Takes every request queued since the last call. With a waker that
    /// asks for records ([`Waker::records`]) requests are queued encoded:
    /// take them with [`Server::take_records`].
    pub fn take_batch(&self) -> Vec<Incoming> {
        self.service.queue.take_batch()
    }

    /// Takes every request queued since the last call as records, into
    /// `into` (emptied by the caller; its buffers are kept for the next
    /// batch). False when none was queued: only that empty take re-arms
    /// the wake-up, as with [`Server::take_batch`].
    pub fn take_records(&self, into: &mut Records) -> bool {
        self.service.queue.take_records(into)
    }

    /// Hands a batch of answers to their connections. A batch of more than
    /// one goes to the I/O threads as one task, which writes each answer it
    /// can straight into its socket (`embedder::direct`, docs/performance.md
    /// §17) and completes the other requests' channels from inside the
    /// runtime (sent one by one from the embedder's thread, every reply
    /// would be a remote wake-up of a connection task: a push into Tokio's
    /// shared queue under its lock, and an unpark of a sleeping worker; from
    /// inside a worker, a wake-up is a push into its own run queue). A batch
    /// of one is sent from here. With `HTTPY_DIRECT_WRITE=N`, batches of at
    /// most `N` are written from here instead.
    pub fn deliver(&self, replies: Vec<(Responder, Reply)>) {
        let service = &self.service;
        let from_here = replies.len() <= *crate::embedder::direct::MAX_BATCH;
        let replies: Vec<(Responder, Reply)> = if from_here {
            let mut maps = Vec::new();
            let left = replies
                .into_iter()
                .filter_map(|(responder, reply)| write_direct(service, responder, reply, &mut maps))
                .collect();
            if !maps.is_empty() {
                self.spares.give(&mut maps);
            }
            left
        } else {
            replies
        };
        match &self.runtime {
            Some(rt) if replies.len() > 1 => {
                let service = service.clone();
                let spares = self.spares.clone();
                let write = *crate::embedder::direct::ON_DELIVERY;
                rt.spawn(async move {
                    // The written answers' header maps, handed back emptied
                    // for the next batches (`Spares`): one allocation per
                    // batch, made and freed on this thread.
                    let mut maps = Vec::with_capacity(replies.len());
                    for (responder, reply) in replies {
                        let left = if write {
                            write_direct(&service, responder, reply, &mut maps)
                        } else {
                            Some((responder, reply))
                        };
                        if let Some((responder, reply)) = left {
                            responder.send(reply);
                        }
                    }
                    if !maps.is_empty() {
                        spares.give(&mut maps);
                    }
                });
            }
            _ => {
                for (responder, reply) in replies {
                    responder.send(reply);
                }
            }
        }
    }

    /// Moves emptied header maps of answers already written into `into`
    /// (at most `Spares::MAX` in all), for [`crate::ReplyBatch::with_maps`].
    pub fn spare_maps(&self, into: &mut Vec<http::HeaderMap>) {
        self.spares.take(into);
    }

    /// The streamed body of request `id` (its record says `streamed`), once.
    /// `None` when already taken or when the request is over.
    pub fn take_upload(&self, id: u32) -> Option<crate::UploadReceiver> {
        self.service.uploads.take(id)
    }

    /// The streamed `multipart/form-data` body of request `id` (its record
    /// says `parts_on_ask`) as parts (`body::multipart` frames), once. `None`
    /// when already taken, over, or not such a body.
    pub fn take_parts(&self, id: u32) -> Option<crate::UploadReceiver> {
        self.service.uploads.take_parts(id)
    }

    /// Calls `f` (on a Tokio thread) once if request `id` ends without its
    /// reply being delivered: the client left, or the core answered for
    /// the handler. `responder` is the request's, to see whether that has
    /// already happened: then `f` is handed back (call it yourself).
    pub fn watch_abort(
        &self,
        id: u32,
        responder: &Responder,
        f: Box<dyn FnOnce() + Send>,
    ) -> Option<Box<dyn FnOnce() + Send>> {
        let aborts = &self.service.aborts;
        aborts.watch(id, f);
        // After registering: a departure the protocol layer then finds
        // drops the request, which tells the watcher.
        responder.watching();
        // Looked after registering: a request that ended just before saw
        // no watcher, and its responder is abandoned by now.
        if responder.is_abandoned() {
            return aborts.unwatch(id);
        }
        None
    }

    /// Stops watching request `id` (its answer was sent).
    pub fn unwatch_abort(&self, id: u32) {
        self.service.aborts.unwatch(id);
    }

    /// Accepts the WebSocket upgrade of request `id` (a request routed to a
    /// WebSocket route): the connection exists from now on, so frames can be
    /// queued for it at once; they go out after the `101` response. Returns
    /// false when the client has already gone.
    pub fn ws_accept(&self, id: u32, responder: Responder, reply: Reply, opts: WsOptions) -> bool {
        self.service.ws.hub.register(id, opts);
        if responder.send(reply) {
            true
        } else {
            self.service.ws.hub.remove(id);
            false
        }
    }

    /// Queues a frame for WebSocket connection `id`.
    pub fn ws_send(&self, id: u32, frame: WsFrame) -> SendStatus {
        self.service.ws.hub.send(id, frame)
    }

    /// Queues a frame without waking the connection's writer until
    /// [`Server::ws_flush`]: for bursts of sends from one embedder turn.
    pub fn ws_send_deferred(&self, id: u32, frame: WsFrame) -> SendStatus {
        self.service.ws.hub.send_deferred(id, frame)
    }

    /// A sender for a burst of deferred frames (one embedder turn's batch);
    /// it wakes their writers when dropped, as [`Server::ws_flush`].
    pub fn ws_sender(&self) -> crate::ws::WsSender<'_> {
        self.service.ws.hub.sender()
    }

    /// Wakes the writers of connections with deferred frames.
    pub fn ws_flush(&self) {
        self.service.ws.hub.flush()
    }

    /// Starts the closing handshake of connection `id` with `code` and `reason`.
    pub fn ws_close(&self, id: u32, code: u16, reason: &str) -> bool {
        self.service.ws.hub.close(id, code, reason)
    }

    /// Stops (or resumes) reading from connection `id`'s socket.
    pub fn ws_pause(&self, id: u32, paused: bool) {
        self.service.ws.hub.set_paused(id, paused)
    }

    pub fn ws_subscribe(&self, id: u32, topic: &str) -> bool {
        self.service.ws.hub.subscribe(id, topic)
    }

    pub fn ws_unsubscribe(&self, id: u32, topic: &str) -> bool {
        self.service.ws.hub.unsubscribe(id, topic)
    }

    /// Queues `frame` for every subscriber of `topic`, in Rust; returns the
    /// number of connections it was queued for.
    pub fn ws_publish(&self, topic: &str, frame: WsFrame) -> usize {
        match &self.pubsub {
            None => self.service.ws.hub.publish(topic, frame),
            Some(ps) => {
                let (n, msg) = self.service.ws.hub.publish_message(topic, frame);
                ps.forward(topic, &msg);
                n
            }
        }
    }

    /// Subscribers of `topic` in this process and, with workers, in its
    /// siblings (as they last reported: see `docs/scaling.md`).
    pub fn ws_subscriber_count(&self, topic: &str) -> usize {
        match &self.pubsub {
            None => self.service.ws.hub.subscriber_count(topic),
            Some(ps) => ps.subscriber_count(topic),
        }
    }

    /// The pub/sub layer's counters (`None` when nothing crosses processes).
    pub fn pubsub_stats(&self) -> Option<PubSubSnapshot> {
        self.pubsub.as_ref().map(|p| p.snapshot())
    }

    /// Takes every WebSocket event queued since the last call, encoded
    /// ([`WsEvents`]).
    pub fn take_ws_events(&self) -> WsEvents {
        self.service.ws.hub.take_events()
    }

    /// WebSocket connections registered (accepted and not yet finished).
    pub fn ws_connections(&self) -> usize {
        self.service.ws.hub.open_count()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.service.stats.snapshot()
    }

    /// The Prometheus text of this server's metrics, when they are on (for
    /// an embedder that merges its own metrics into one endpoint).
    pub fn metrics_text(&self) -> Option<String> {
        self.service
            .observe
            .metrics
            .as_ref()
            .map(|m| m.render_served())
    }

    /// Access log lines lost because the writer could not keep up.
    pub fn access_log_dropped(&self) -> u64 {
        self.service
            .observe
            .access_log
            .as_ref()
            .map_or(0, |l| l.dropped.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn is_closing(&self) -> bool {
        self.life.shutdown.is_cancelled()
    }

    /// Starts a graceful close and returns at once: stop accepting, let
    /// in-flight requests finish, close idle connections; after `grace`,
    /// drop whatever is still open. [`Waker::closed`] fires at the end.
    pub fn close(&self, grace: Duration) {
        if self.life.shutdown.is_cancelled() {
            return;
        }
        self.life.shutdown.cancel();
        self.life.tracker.close();
        if let Some(ps) = &self.pubsub {
            ps.close();
        }
        let life = self.life.clone();
        let queue = self.service.queue.clone();
        if let Some(rt) = &self.runtime {
            rt.spawn(async move {
                if tokio::time::timeout(grace, life.tracker.wait())
                    .await
                    .is_err()
                {
                    life.force.cancel();
                    life.tracker.wait().await;
                }
                queue.notify_closed();
            });
        }
    }
}

/// Writes `reply` into its connection's socket when the request is armed
/// for it and the answer is one that path takes (`embedder::direct`), and
/// puts its header map in `maps`; hands both back otherwise.
fn write_direct(
    service: &Service,
    mut responder: Responder,
    reply: Reply,
    maps: &mut Vec<http::HeaderMap>,
) -> Option<(Responder, Reply)> {
    // Only when compression would change nothing of it for any request (a
    // short body, say); otherwise the general path compresses or adds
    // `Vary`. Asked after the cheap armed check.
    let alone = || {
        service.direct.compression.as_ref().is_none_or(|cfg| {
            crate::respond::compress::leaves_alone(
                cfg,
                reply.status,
                &reply.headers,
                reply.body.len(),
            )
        })
    };
    if responder.can_write_direct() && alone() {
        let written =
            crate::proto::h1::direct::with_encoded(&reply, |answer| responder.write_direct(answer));
        if let Some(Some(id)) = written {
            // Answered: a `request.signal` watcher must not fire when the
            // connection's task drops the request later.
            service.aborts.settle(id, false);
            Stats::inc(&service.stats.direct_writes);
            maps.push(reply.headers);
            return None;
        }
    }
    Some((responder, reply))
}

impl Drop for Server {
    fn drop(&mut self) {
        self.life.shutdown.cancel();
        self.life.force.cancel();
        if let Some(ps) = &self.pubsub {
            ps.close();
        }
        if let Some(rt) = self.runtime.take() {
            // Never block the embedder's thread on tasks winding down.
            rt.shutdown_background();
        }
    }
}
