//! Pub/sub past one process. `Hub::publish` reaches the subscribers of its
//! own process only; this layer carries a publish to the other processes of
//! the same server (the workers of `run({ workers })`, over Unix sockets:
//! `cluster.rs`) and to other servers (through Redis: `broker.rs`), and
//! keeps the subscriber counts of the sibling workers so
//! `subscriber_count` answers for the whole server.
//!
//! Everything here runs on the core's runtime: a message from a sibling or
//! from Redis is fanned out to the local sockets in Rust and never enters
//! JavaScript. Which path a publish takes:
//! - Redis configured and connected: to Redis only (every process of every
//!   server, siblings included, is subscribed there; a process skips its own
//!   messages, which it already delivered locally);
//! - otherwise: to the sibling workers over the local sockets (while Redis
//!   is down, the other servers miss the message; it is counted as dropped).
//!
//! On Redis, a message travels either by pub/sub (`broker.rs`: nothing is
//! kept) or, in the durable mode, on a capped stream per topic
//! (`streams.rs`: a process whose link drops reads what it missed).

mod broker;
mod cluster;
mod merge;
mod streams;
mod wire;

use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;

use crate::error::Result;
use crate::observe::metrics::{Aggregate, Metrics};
use crate::ws::{TopicWatch, WsEnv};

/// How often a worker sends its metrics text to its siblings (what a scrape
/// of another worker shows of it is at most this old).
const METRICS_EVERY: Duration = Duration::from_secs(1);

pub(crate) use wire::Kind;

pub use crate::config::pubsub::PubSubConfig;

/// Counters of the pub/sub layer (`server.pubsubStats()` in JS, and the
/// `httpy_pubsub_*` metrics). Relaxed atomics, read for reporting only.
#[derive(Default)]
pub(crate) struct Counters {
    /// Messages handed to Redis or to at least one sibling.
    pub(crate) sent: AtomicU64,
    /// Messages received from Redis or from siblings and fanned out here.
    pub(crate) received: AtomicU64,
    /// Messages that could not reach some other process: Redis down, or a
    /// sibling's link over its byte bound.
    pub(crate) dropped: AtomicU64,
    /// Failures talking to Redis (connects, commands, lost connections).
    pub(crate) broker_errors: AtomicU64,
    pub(crate) broker_up: AtomicBool,
    /// Reconnections to Redis after the first connection.
    pub(crate) broker_reconnects: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
}

impl Counters {
    pub(crate) fn error(&self, what: String) {
        self.broker_errors.fetch_add(1, Relaxed);
        *self.last_error.lock() = Some(what);
    }
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PubSubSnapshot {
    pub sent: u64,
    pub received: u64,
    pub dropped: u64,
    /// Sibling workers linked now.
    pub peers: u64,
    /// Whether Redis is configured, and connected now.
    pub broker: bool,
    pub broker_up: bool,
    pub broker_errors: u64,
    pub broker_reconnects: u64,
    pub last_error: Option<String>,
}

/// What the layer's tasks share: the local hub (through the WebSocket
/// environment), the counters and this process's identity.
pub(crate) struct Shared {
    pub(crate) ws: Arc<WsEnv>,
    pub(crate) counters: Counters,
    /// Tags this process's messages on Redis, so it skips its own echo.
    pub(crate) origin: [u8; 16],
}

impl Shared {
    /// Fans a message from another process out to the local subscribers;
    /// the caller flushes the hub after a burst.
    pub(crate) fn deliver(&self, topic: &str, kind: Kind, payload: Bytes) {
        let Some(msg) = kind.message(payload) else {
            self.counters.dropped.fetch_add(1, Relaxed);
            return;
        };
        self.counters.received.fetch_add(1, Relaxed);
        self.ws.hub.publish_deferred(topic, &msg);
    }
}

pub(crate) struct PubSub {
    shared: Arc<Shared>,
    cluster: Option<Arc<cluster::Cluster>>,
    broker: Option<Arc<broker::Broker>>,
}

impl PubSub {
    /// Starts the links the configuration asks for. Called from
    /// `Server::start`, outside the runtime: it waits (boundedly) until every
    /// live sibling is linked, so a worker serves only once messages
    /// published anywhere in the server reach it.
    pub(crate) fn start(
        config: &PubSubConfig,
        ws: Arc<WsEnv>,
        metrics: Option<Arc<Metrics>>,
        rt: &Runtime,
    ) -> Result<Arc<PubSub>> {
        let shared = Arc::new(Shared {
            ws,
            counters: Counters::default(),
            origin: wire::origin(),
        });
        let broker = match &config.redis {
            Some(url) => Some(broker::Broker::start(
                url,
                config.durable,
                shared.clone(),
                rt,
            )?),
            None => None,
        };
        let cluster = match &config.cluster_dir {
            Some(dir) => Some(cluster::Cluster::start(dir, shared.clone(), rt)?),
            None => None,
        };
        let ps = Arc::new(PubSub {
            shared: shared.clone(),
            cluster,
            broker,
        });
        shared.ws.hub.set_watch(ps.clone());
        if let Some(m) = metrics {
            m.set_aggregate(ps.clone());
            if ps.cluster.is_some() {
                rt.spawn(ps.clone().share_metrics(m));
            }
        }
        Ok(ps)
    }

    /// Sends this worker's metrics to its siblings every [`METRICS_EVERY`]
    /// (one render per second: the cost of a scrape, without the merge).
    async fn share_metrics(self: Arc<Self>, m: Arc<Metrics>) {
        let Some(c) = &self.cluster else { return };
        let life = self.shared.ws.life.clone();
        loop {
            tokio::select! {
                _ = life.shutdown.cancelled() => return,
                _ = tokio::time::sleep(METRICS_EVERY) => {}
            }
            let mut own = m.render();
            self.render_metrics(&mut own);
            c.share_metrics(&own);
        }
    }

    /// Sends a message published here to the other processes (the local
    /// fan-out is the hub's).
    pub(crate) fn forward(&self, topic: &str, msg: &Message) {
        let Some((kind, payload)) = Kind::of(msg) else {
            return;
        };
        if let Some(b) = &self.broker {
            if b.publish(topic, kind, payload.clone()) {
                self.shared.counters.sent.fetch_add(1, Relaxed);
                return;
            }
            // Redis is down: the other servers miss it.
            self.shared.counters.dropped.fetch_add(1, Relaxed);
        }
        if let Some(c) = &self.cluster {
            if c.publish(topic, kind, &payload) {
                self.shared.counters.sent.fetch_add(1, Relaxed);
            }
        }
    }

    /// Subscribers of `topic` in this process plus, as last reported by each
    /// of them, in the sibling workers (a change crosses a local socket, so
    /// the sum lags a subscription elsewhere by well under a millisecond).
    pub(crate) fn subscriber_count(&self, topic: &str) -> usize {
        let local = self.shared.ws.hub.subscriber_count(topic);
        local + self.cluster.as_ref().map_or(0, |c| c.peer_count(topic))
    }

    pub(crate) fn snapshot(&self) -> PubSubSnapshot {
        let c = &self.shared.counters;
        PubSubSnapshot {
            sent: c.sent.load(Relaxed),
            received: c.received.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            peers: self.cluster.as_ref().map_or(0, |c| c.peers() as u64),
            broker: self.broker.is_some(),
            broker_up: c.broker_up.load(Relaxed),
            broker_errors: c.broker_errors.load(Relaxed),
            broker_reconnects: c.broker_reconnects.load(Relaxed),
            last_error: c.last_error.lock().clone(),
        }
    }

    /// The layer's Prometheus lines, appended to the server's.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let s = self.snapshot();
        // Per process (a `worker` label, the pid): merged with the siblings'
        // texts, each worker keeps its own line.
        let pid = std::process::id();
        let mut family = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{worker=\"{pid}\"}} {v}"
            );
        };
        family(
            "httpy_pubsub_sent_total",
            "counter",
            "Published messages sent to other processes.",
            s.sent,
        );
        family(
            "httpy_pubsub_received_total",
            "counter",
            "Messages from other processes fanned out here.",
            s.received,
        );
        family(
            "httpy_pubsub_dropped_total",
            "counter",
            "Messages that could not reach other processes.",
            s.dropped,
        );
        family(
            "httpy_pubsub_peers",
            "gauge",
            "Sibling workers linked.",
            s.peers,
        );
        if s.broker {
            family(
                "httpy_pubsub_broker_up",
                "gauge",
                "1 while the Redis connection is up.",
                u64::from(s.broker_up),
            );
            family(
                "httpy_pubsub_broker_errors_total",
                "counter",
                "Failures talking to Redis.",
                s.broker_errors,
            );
        }
    }

    /// Stops linking and removes this process's socket file.
    pub(crate) fn close(&self) {
        if let Some(c) = &self.cluster {
            c.close();
        }
        if let Some(b) = &self.broker {
            b.close();
        }
    }
}

impl Aggregate for PubSub {
    /// This process's text, its pub/sub lines, then (with workers) the
    /// siblings' last texts, merged into one.
    fn whole(&self, mut local: String) -> String {
        self.render_metrics(&mut local);
        match &self.cluster {
            Some(c) => {
                let others = c.peer_metrics();
                merge::merge(
                    std::iter::once(local.as_str()).chain(others.iter().map(String::as_str)),
                )
            }
            None => local,
        }
    }
}

impl TopicWatch for PubSub {
    fn changed(&self, topic: &Arc<str>, local: usize) {
        if let Some(c) = &self.cluster {
            c.count_changed(topic, local);
        }
        if let Some(b) = &self.broker {
            b.interest(topic, local > 0);
        }
    }
}
