//! Redis as the broker between servers (the `redis` crate: see
//! docs/scaling.md for why). One task per process owns two connections, a
//! multiplexed one for `PUBLISH` and a subscriber one, and is fed through a
//! channel, so the thread that publishes only queues and a slow or dead
//! Redis never blocks it. The durable mode keeps this task, its channel,
//! its queue bound and its reconnection, and replaces the session (what is
//! done while connected) with the one in `streams.rs`.
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
use super::{streams, Shared};
use crate::error::{Error, ErrorKind, Result};

/// Prefix of the Redis channel of a topic.
pub(crate) const CHANNEL_PREFIX: &str = "httpy:";

/// Bytes queued towards Redis beyond which publishes are dropped: 64 MiB.
const QUEUE_LIMIT: usize = 64 << 20;
/// A connect or a command that takes longer counts as a failure.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(5);
pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(super) enum Cmd {
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
    /// `durable`: the streams' cap, in the durable mode.
    pub(crate) fn start(
        url: &str,
        durable: Option<u64>,
        shared: Arc<Shared>,
        rt: &Runtime,
    ) -> Result<Arc<Broker>> {
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
            durable: durable.map(streams::Reading::new),
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

pub(super) struct Task {
    pub(super) client: redis::Client,
    pub(super) shared: Arc<Shared>,
    pub(super) queued: Arc<AtomicUsize>,
    /// Topics with local subscribers (what Redis should have).
    pub(super) wanted: FxHashSet<Arc<str>>,
    /// Topics subscribed on the current connection.
    subscribed: FxHashSet<Arc<str>>,
    connected_once: bool,
    /// The current session got connected (the back-off starts over).
    was_up: bool,
    /// The durable mode's state (the last id read per topic), kept across
    /// reconnections.
    pub(super) durable: Option<streams::Reading>,
}

/// Whether a Redis error ends the session (the link is gone or unusable),
/// rather than failing one command on a working link.
pub(super) fn fatal(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() || e.is_timeout()
}

/// How the task's multiplexed connections are made. The task bounds every
/// command itself ([`IO_TIMEOUT`]), and a durable read waits its `BLOCK` by
/// design, so the client's own response timeout (500 ms by default, which
/// failed a pipeline that waited on a busy Redis) is off.
pub(super) fn connection_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(IO_TIMEOUT))
        .set_response_timeout(None)
}

pub(super) fn channel(topic: &str) -> String {
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
                e = self.any_session(&mut rx) => e,
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

    async fn any_session(&mut self, rx: &mut mpsc::UnboundedReceiver<Cmd>) -> Option<String> {
        if self.durable.is_some() {
            self.durable_session(rx).await
        } else {
            self.session(rx).await
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
                if let Some(d) = &mut self.durable {
                    d.forget(&t);
                }
                self.wanted.remove(&t);
            }
        }
    }

    /// The session is connected and in step with `wanted`: report it.
    pub(super) fn up(&mut self) {
        if self.connected_once {
            self.shared.counters.broker_reconnects.fetch_add(1, Relaxed);
        }
        self.connected_once = true;
        self.was_up = true;
        self.shared.counters.broker_up.store(true, Release);
    }

    /// One connection's life: connect, subscribe what is wanted, then serve
    /// commands and messages. Returns why it ended (`None`: the server is
    /// gone).
    async fn session(&mut self, rx: &mut mpsc::UnboundedReceiver<Cmd>) -> Option<String> {
        let connect = async {
            let publisher = self
                .client
                .get_multiplexed_async_connection_with_config(&connection_config())
                .await?;
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
        self.up();
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
                    take_batch(cmd?, rx, &mut batch);
                    if let Err(e) = self.run_batch(&mut batch, &mut publisher, Some(&mut sink)).await {
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
        self.receive_payload(topic, Bytes::copy_from_slice(msg.get_payload_bytes()));
    }

    /// A message read from Redis (either mode): fanned out here unless this
    /// process published it. The caller flushes the hub after a burst.
    pub(super) fn receive_payload(&self, topic: &str, payload: Bytes) {
        let Some((kind, origin, _)) = wire::parse_redis(&payload) else {
            self.shared.counters.dropped.fetch_add(1, Relaxed);
            return;
        };
        if origin == self.shared.origin {
            return; // our own publish, delivered locally already
        }
        self.shared
            .deliver(topic, kind, payload.slice(wire::REDIS_HEADER..));
    }

    /// Runs a batch of commands: interest changes first (`SUBSCRIBE` and
    /// `UNSUBSCRIBE` on `sink`; without one, the durable mode's start ids),
    /// then the publishes in one pipeline. `Ok(true)`: the durable mode has
    /// topics to read that it did not have.
    pub(super) async fn run_batch(
        &mut self,
        batch: &mut Vec<Cmd>,
        publisher: &mut redis::aio::MultiplexedConnection,
        sink: Option<&mut redis::aio::PubSubSink>,
    ) -> std::result::Result<bool, String> {
        let mut pipe = redis::pipe();
        // One result per publish, so a command Redis refuses (a key of
        // another type, an ACL) is counted alone and the link stays up. Cost:
        // the replies are kept in a Vec until counted, a few bytes each.
        pipe.ignore_errors();
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
                    match &self.durable {
                        Some(d) => d.append(&mut pipe, &topic, body),
                        None => {
                            pipe.cmd("PUBLISH").arg(channel(&topic)).arg(body);
                        }
                    }
                    published += 1;
                }
                Cmd::Interest(t, true) => {
                    self.wanted.insert(t);
                    interest = true;
                }
                Cmd::Interest(t, false) => {
                    if let Some(d) = &mut self.durable {
                        d.forget(&t);
                    }
                    self.wanted.remove(&t);
                    interest = true;
                }
            }
        }
        let mut added = false;
        if interest {
            match sink {
                Some(sink) => self.sync_subscriptions(sink).await?,
                None => added = self.start_ids(publisher).await?,
            }
        }
        if published == 0 {
            return Ok(added);
        }
        let sent = tokio::time::timeout(
            IO_TIMEOUT,
            pipe.query_async::<Vec<redis::RedisResult<()>>>(publisher),
        )
        .await;
        self.queued.fetch_sub(bytes, AcqRel);
        let verb = if self.durable.is_some() {
            "XADD"
        } else {
            "PUBLISH"
        };
        match sent {
            Ok(Ok(results)) => {
                // Refused on a working link: counted and reported, the
                // session goes on.
                let mut refused = results.into_iter().filter_map(|r| r.err());
                if let Some(first) = refused.next() {
                    let n = 1 + refused.count() as u64;
                    self.shared.counters.dropped.fetch_add(n, Relaxed);
                    self.shared
                        .counters
                        .error(format!("Redis refused {n} {verb}: {first}"));
                }
                Ok(added)
            }
            Ok(Err(e)) if !fatal(&e) => {
                self.shared.counters.dropped.fetch_add(published, Relaxed);
                self.shared
                    .counters
                    .error(format!("Redis {verb} failed: {e}"));
                Ok(added)
            }
            failed => {
                self.shared.counters.dropped.fetch_add(published, Relaxed);
                Err(match failed {
                    Ok(Err(e)) => format!("Redis {verb} failed: {e}"),
                    _ => format!("Redis {verb} timed out"),
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

/// Moves `first` and whatever else is queued (up to 4096 commands) into
/// `batch`: one pipeline for a burst.
pub(super) fn take_batch(first: Cmd, rx: &mut mpsc::UnboundedReceiver<Cmd>, batch: &mut Vec<Cmd>) {
    batch.push(first);
    while batch.len() < 4096 {
        match rx.try_recv() {
            Ok(c) => batch.push(c),
            Err(_) => break,
        }
    }
}
