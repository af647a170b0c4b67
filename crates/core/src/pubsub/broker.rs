//! Redis as the broker between servers (the `redis` crate: see
//! docs/scaling.md for why). One task per process owns two connections, a
//! multiplexed one for `PUBLISH` and a subscriber one, and is fed through a
//! channel, so the thread that publishes only queues and a slow or dead
//! Redis never blocks it.
//!
//! - One Redis subscription per topic per process, not per client: the hub
//!   reports a topic's first local subscriber and its last one leaving
//!   ([`Broker::interest`]); the task batches those into `SUBSCRIBE` /
//!   `UNSUBSCRIBE` commands. The Redis channel is `httpy:` + the topic.
//! - Publishes are pipelined: whatever queued while the previous pipeline
//!   was in flight goes in the next one, in order, on one connection (so
//!   Redis keeps publish order per publisher).
//! - Faults: a failed connect or a lost connection is counted and recorded
//!   (`last_error`), the task reconnects with exponential back-off (100 ms
//!   doubling to 5 s) and re-subscribes every topic that still has local
//!   subscribers. Messages published while Redis is down are not buffered:
//!   they are counted as dropped (the local subscribers and, through the
//!   local links, the sibling workers still get them). What is queued
//!   towards Redis is bounded in bytes; past the bound, publishes are
//!   dropped and counted the same way.

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use rustc_hash::FxHashSet;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::wire::{self, Kind};
use super::Shared;
use crate::error::{Error, ErrorKind, Result};

/// Prefix of the Redis channel of a topic.
pub(crate) const CHANNEL_PREFIX: &str = "httpy:";

/// Bytes queued towards Redis beyond which publishes are dropped: 64 MiB.
const QUEUE_LIMIT: usize = 64 << 20;
/// A connect or a command that takes longer counts as a failure.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

enum Cmd {
    Publish {
        topic: String,
        kind: Kind,
        payload: Bytes,
    },
    /// A topic's first local subscriber arrived (true) or its last left.
    Interest(Arc<str>, bool),
}

pub(crate) struct Broker {
    tx: mpsc::UnboundedSender<Cmd>,
    queued: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    stop: tokio_util::sync::CancellationToken,
}

impl Broker {
    /// Checks the URL and starts the task; connecting happens in the task, so
    /// a Redis that is down does not stop the server from starting.
    pub(crate) fn start(url: &str, shared: Arc<Shared>, rt: &Runtime) -> Result<Arc<Broker>> {
        let client = redis::Client::open(url).map_err(|e| {
            Error::new(
                ErrorKind::InvalidOption,
                format!("pubsub.redis: invalid Redis URL: {e}"),
            )
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let stop = tokio_util::sync::CancellationToken::new();
        let task = Task {
            client,
            shared: shared.clone(),
            queued: queued.clone(),
            wanted: FxHashSet::default(),
            subscribed: FxHashSet::default(),
            connected_once: false,
            was_up: false,
        };
        rt.spawn(task.run(rx, stop.clone()));
        Ok(Arc::new(Broker {
            tx,
            queued,
            shared,
            stop,
        }))
    }

    /// Queues a publish towards Redis; false (nothing queued) while Redis is
    /// down or the queue is over its bound.
    pub(crate) fn publish(&self, topic: &str, kind: Kind, payload: Bytes) -> bool {
        if !self.shared.counters.broker_up.load(Acquire) {
            return false;
        }
        let size = payload.len() + topic.len();
        if self.queued.load(Acquire) + size > QUEUE_LIMIT {
            return false;
        }
        self.queued.fetch_add(size, AcqRel);
        self.tx
            .send(Cmd::Publish {
                topic: topic.to_owned(),
                kind,
                payload,
            })
            .is_ok()
    }

    /// Called by the hub (under its topics lock: queues only).
    pub(crate) fn interest(&self, topic: &Arc<str>, wanted: bool) {
        let _ = self.tx.send(Cmd::Interest(topic.clone(), wanted));
    }

    pub(crate) fn close(&self) {
        self.stop.cancel();
    }
}

struct Task {
    client: redis::Client,
    shared: Arc<Shared>,
    queued: Arc<AtomicUsize>,
    /// Topics with local subscribers (what Redis should have).
    wanted: FxHashSet<Arc<str>>,
    /// Topics subscribed on the current connection.
    subscribed: FxHashSet<Arc<str>>,
    connected_once: bool,
    /// The current session got connected (the back-off starts over).
    was_up: bool,
}

fn channel(topic: &str) -> String {
    format!("{CHANNEL_PREFIX}{topic}")
}

impl Task {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Cmd>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let err = tokio::select! {
                _ = stop.cancelled() => return,
                e = self.session(&mut rx) => e,
            };
            let Some(err) = err else { return };
            self.shared.counters.broker_up.store(false, Release);
            self.shared.counters.error(err);
            self.subscribed.clear();
            if std::mem::take(&mut self.was_up) {
                backoff = BACKOFF_MIN;
            }
            // Wait out the back-off, still taking commands: interest changes
            // are recorded, publishes dropped.
            let wake = tokio::time::sleep(backoff);
            tokio::pin!(wake);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = &mut wake => break,
                    cmd = rx.recv() => match cmd {
                        Some(c) => self.offline(c),
                        None => return,
                    },
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn offline(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Publish { topic, payload, .. } => {
                self.queued.fetch_sub(payload.len() + topic.len(), AcqRel);
                self.shared.counters.dropped.fetch_add(1, Relaxed);
            }
            Cmd::Interest(t, true) => {
                self.wanted.insert(t);
            }
            Cmd::Interest(t, false) => {
                self.wanted.remove(&t);
            }
        }
    }

    /// One connection's life: connect, subscribe what is wanted, then serve
    /// commands and messages. Returns why it ended (`None`: the server is
    /// gone).
    async fn session(&mut self, rx: &mut mpsc::UnboundedReceiver<Cmd>) -> Option<String> {
        let connect = async {
            let publisher = self.client.get_multiplexed_async_connection().await?;
            let pubsub = self.client.get_async_pubsub().await?;
            redis::RedisResult::Ok((publisher, pubsub))
        };
        let (mut publisher, pubsub) = match tokio::time::timeout(IO_TIMEOUT, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Some(format!("cannot connect to Redis: {e}")),
            Err(_) => return Some("cannot connect to Redis: timed out".into()),
        };
        let (mut sink, mut stream) = pubsub.split();
        // Topics that gained or lost interest while we were away.
        if let Err(e) = self.sync_subscriptions(&mut sink).await {
            return Some(e);
        }
        if self.connected_once {
            self.shared.counters.broker_reconnects.fetch_add(1, Relaxed);
        }
        self.connected_once = true;
        self.was_up = true;
        self.shared.counters.broker_up.store(true, Release);
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else {
                        return Some("lost the Redis subscriber connection".into());
                    };
                    self.receive(&msg);
                    // The rest of a burst, then one wake-up per connection.
                    while let Some(Some(msg)) = stream.next().now_or_never() {
                        self.receive(&msg);
                    }
                    self.shared.ws.hub.flush();
                }
                cmd = rx.recv() => {
                    let cmd = cmd?;
                    batch.push(cmd);
                    while let Ok(c) = rx.try_recv() {
                        batch.push(c);
                        if batch.len() >= 4096 {
                            break;
                        }
                    }
                    if let Err(e) = self.run_batch(&mut batch, &mut publisher, &mut sink).await {
                        return Some(e);
                    }
                }
            }
        }
    }

    fn receive(&self, msg: &redis::Msg) {
        let Some(topic) = msg.get_channel_name().strip_prefix(CHANNEL_PREFIX) else {
            return;
        };
        let Some((kind, origin, data)) = wire::parse_redis(msg.get_payload_bytes()) else {
            self.shared.counters.dropped.fetch_add(1, Relaxed);
            return;
        };
        if origin == self.shared.origin {
            return; // our own publish, delivered locally already
        }
        self.shared
            .deliver(topic, kind, Bytes::copy_from_slice(data));
    }

    async fn run_batch(
        &mut self,
        batch: &mut Vec<Cmd>,
        publisher: &mut redis::aio::MultiplexedConnection,
        sink: &mut redis::aio::PubSubSink,
    ) -> std::result::Result<(), String> {
        let mut pipe = redis::pipe();
        let mut published = 0u64;
        let mut bytes = 0usize;
        let mut interest = false;
        for cmd in batch.drain(..) {
            match cmd {
                Cmd::Publish {
                    topic,
                    kind,
                    payload,
                } => {
                    bytes += payload.len() + topic.len();
                    let body = wire::redis_payload(kind, &self.shared.origin, &payload);
                    pipe.cmd("PUBLISH").arg(channel(&topic)).arg(body).ignore();
                    published += 1;
                }
                Cmd::Interest(t, true) => {
                    self.wanted.insert(t);
                    interest = true;
                }
                Cmd::Interest(t, false) => {
                    self.wanted.remove(&t);
                    interest = true;
                }
            }
        }
        if interest {
            self.sync_subscriptions(sink).await?;
        }
        if published == 0 {
            return Ok(());
        }
        let sent = tokio::time::timeout(IO_TIMEOUT, pipe.query_async::<()>(publisher)).await;
        self.queued.fetch_sub(bytes, AcqRel);
        match sent {
            Ok(Ok(())) => Ok(()),
            failed => {
                self.shared.counters.dropped.fetch_add(published, Relaxed);
                Err(match failed {
                    Ok(Err(e)) => format!("Redis PUBLISH failed: {e}"),
                    _ => "Redis PUBLISH timed out".into(),
                })
            }
        }
    }

    /// Brings the subscriber connection in line with `wanted`, in two
    /// commands at most.
    async fn sync_subscriptions(
        &mut self,
        sink: &mut redis::aio::PubSubSink,
    ) -> std::result::Result<(), String> {
        let add: Vec<Arc<str>> = self.wanted.difference(&self.subscribed).cloned().collect();
        let remove: Vec<Arc<str>> = self.subscribed.difference(&self.wanted).cloned().collect();
        if !add.is_empty() {
            let names: Vec<String> = add.iter().map(|t| channel(t)).collect();
            match tokio::time::timeout(IO_TIMEOUT, sink.subscribe(names)).await {
                Ok(Ok(())) => self.subscribed.extend(add),
                Ok(Err(e)) => return Err(format!("Redis SUBSCRIBE failed: {e}")),
                Err(_) => return Err("Redis SUBSCRIBE timed out".into()),
            }
        }
        if !remove.is_empty() {
            let names: Vec<String> = remove.iter().map(|t| channel(t)).collect();
            match tokio::time::timeout(IO_TIMEOUT, sink.unsubscribe(names)).await {
                Ok(Ok(())) => {
                    for t in &remove {
                        self.subscribed.remove(t);
                    }
                }
                Ok(Err(e)) => return Err(format!("Redis UNSUBSCRIBE failed: {e}")),
                Err(_) => return Err("Redis UNSUBSCRIBE timed out".into()),
            }
        }
        Ok(())
    }
}
