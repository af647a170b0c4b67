//! The links between the worker processes of one server. Each worker
//! listens on a Unix socket in a directory the supervisor made
//! (`<pid>-<n>.sock`) and opens one outbound connection to every other
//! worker's socket: at start to those already there, later to each worker
//! that connects in (its hello names its socket). A worker only ever writes
//! on its outbound connections and only reads its inbound ones, so two
//! workers starting at the same instant still have exactly one path each
//! way and no message arrives twice.
//!
//! What crosses: published messages (in publish order: one connection and
//! one writer task per peer) and this worker's subscriber count per topic
//! (on every change; the full table first, when a link opens), which the
//! receiving side keeps per peer for `subscriber_count`.
//!
//! A slow or stuck peer cannot make this process buffer without bound: the
//! bytes queued per link are capped ([`LINK_LIMIT`]) and what would pass the
//! cap is dropped and counted.

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{UnixListener, UnixStream};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::wire::{self, Kind, TAG_COUNT, TAG_HELLO, TAG_METRICS};
use super::Shared;
use crate::error::{Error, ErrorKind as EK, Result};

/// Bytes queued towards one peer beyond which further messages to it are
/// dropped (and counted): 64 MiB.
const LINK_LIMIT: usize = 64 << 20;

/// Frames delivered from one link between two wake-ups of the local
/// writers, at most.
const FLUSH_EVERY: usize = 256;

/// How long a starting worker waits for every sibling it linked to to link
/// back before serving anyway.
const LINK_WAIT: Duration = Duration::from_secs(2);

/// One outbound connection: the queue its writer task drains.
struct Link {
    tx: mpsc::UnboundedSender<Bytes>,
    /// Bytes in `tx` not yet written (the writer subtracts what it writes).
    queued: Arc<AtomicUsize>,
}

impl Link {
    fn push(&self, f: Bytes) -> bool {
        self.queued.fetch_add(f.len(), Ordering::AcqRel);
        self.tx.send(f).is_ok()
    }
}

pub(crate) struct Cluster {
    shared: Arc<Shared>,
    /// Our socket's file name (the name peers know us by) and path.
    name: String,
    path: PathBuf,
    dir: PathBuf,
    /// Outbound links by peer name.
    out: RwLock<FxHashMap<String, Link>>,
    /// Subscriber counts per topic, as each peer (by name) last reported.
    counts: Mutex<FxHashMap<String, FxHashMap<String, usize>>>,
    /// Each peer's last metrics text.
    metrics: Mutex<FxHashMap<String, String>>,
    closed: AtomicBool,
    rt: tokio::runtime::Handle,
}

impl Cluster {
    pub(crate) fn start(dir: &Path, shared: Arc<Shared>, rt: &Runtime) -> Result<Arc<Cluster>> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{}-{}.sock",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(&name);
        let fail = |what: &str, e: std::io::Error| {
            Error::new(
                EK::Listen,
                format!("pub/sub: cannot {what} {}: {e}", path.display()),
            )
        };
        let _ = std::fs::remove_file(&path);
        let std_listener =
            std::os::unix::net::UnixListener::bind(&path).map_err(|e| fail("listen on", e))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| fail("listen on", e))?;
        let listener = {
            let _g = rt.enter();
            UnixListener::from_std(std_listener).map_err(|e| fail("listen on", e))?
        };
        let cluster = Arc::new(Cluster {
            shared,
            name,
            path,
            dir: dir.to_path_buf(),
            out: RwLock::new(FxHashMap::default()),
            counts: Mutex::new(FxHashMap::default()),
            metrics: Mutex::new(FxHashMap::default()),
            closed: AtomicBool::new(false),
            rt: rt.handle().clone(),
        });
        rt.spawn(cluster.clone().accept_loop(listener));
        // Link to every sibling already there; each links back once our
        // hello arrives. Wait (boundedly) for those links back.
        let mut expected = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let peer = e.file_name().to_string_lossy().into_owned();
                if peer.ends_with(".sock") && peer != cluster.name && cluster.link_to(&peer) {
                    expected.push(peer);
                }
            }
        }
        let c = cluster.clone();
        rt.block_on(async move {
            let deadline = tokio::time::Instant::now() + LINK_WAIT;
            while tokio::time::Instant::now() < deadline {
                let linked = {
                    let counts = c.counts.lock();
                    expected.iter().all(|p| counts.contains_key(p))
                };
                if linked {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Ok(cluster)
    }

    /// Opens the outbound link to `peer` unless there is one. A socket file
    /// nobody listens on is a dead worker's: removed.
    fn link_to(self: &Arc<Self>, peer: &str) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        if self.out.read().contains_key(peer) {
            return true;
        }
        let path = self.dir.join(peer);
        let stream = match std::os::unix::net::UnixStream::connect(&path) {
            Ok(s) => s,
            Err(e) => {
                if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound) {
                    let _ = std::fs::remove_file(&path);
                }
                return false;
            }
        };
        let stream = match stream.set_nonblocking(true).and_then(|_| {
            let _g = self.rt.enter();
            UnixStream::from_std(stream)
        }) {
            Ok(s) => s,
            Err(_) => return false,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let link = Link {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
        };
        let queued = link.queued.clone();
        // The hello, then our whole count table, then (in order) every later
        // change: the table is read, and the link made visible, under the
        // hub's topics lock, which every change holds while it queues its
        // update (lock order: hub topics, then `out`, as in `count_changed`).
        link.push(wire::frame(TAG_HELLO, &self.name, &[]));
        let mut fresh = false;
        self.shared.ws.hub.with_topics(|topics| {
            let mut out = self.out.write();
            if out.contains_key(peer) {
                return; // linked meanwhile by another hello: this stream is dropped
            }
            for (t, n) in topics {
                if t.len() <= u16::MAX as usize {
                    link.push(wire::frame(TAG_COUNT, t, &(n as u32).to_le_bytes()));
                }
            }
            out.insert(peer.to_owned(), link);
            fresh = true;
        });
        if fresh {
            self.rt
                .spawn(self.clone().write_loop(peer.to_owned(), stream, rx, queued));
        }
        true
    }

    async fn accept_loop(self: Arc<Self>, listener: UnixListener) {
        loop {
            match listener.accept().await {
                Ok((s, _)) => {
                    self.rt.spawn(self.clone().read_loop(s));
                }
                Err(_) if self.closed.load(Ordering::Acquire) => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Drains one outbound queue into its socket, flushing when the queue is
    /// empty (a burst of publishes is one write).
    async fn write_loop(
        self: Arc<Self>,
        peer: String,
        stream: UnixStream,
        mut rx: mpsc::UnboundedReceiver<Bytes>,
        queued: Arc<AtomicUsize>,
    ) {
        let mut w = BufWriter::with_capacity(64 * 1024, stream);
        'run: while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(f) = next {
                queued.fetch_sub(f.len(), Ordering::AcqRel);
                if w.write_all(&f).await.is_err() {
                    break 'run;
                }
                next = rx.try_recv().ok();
            }
            if w.flush().await.is_err() {
                break;
            }
        }
        // The peer is gone (or we are closing): forget the link; a restarted
        // worker links in again with a new name.
        self.out.write().remove(&peer);
    }

    /// Reads one inbound link: a hello, then messages and counts.
    async fn read_loop(self: Arc<Self>, stream: UnixStream) {
        let mut r = BufReader::with_capacity(64 * 1024, stream);
        let mut peer: Option<String> = None;
        let hub = &self.shared.ws.hub;
        let mut pending = 0usize;
        while let Ok(len) = r.read_u32_le().await {
            let len = len as usize;
            if len > wire::MAX_FRAME {
                break;
            }
            let mut buf = BytesMut::zeroed(len);
            if r.read_exact(&mut buf).await.is_err() {
                break;
            }
            let Some((tag, topic, body)) = wire::parse(buf.freeze()) else {
                break;
            };
            match (tag, &peer) {
                (TAG_HELLO, None) => {
                    self.counts
                        .lock()
                        .insert(topic.clone(), FxHashMap::default());
                    let me = self.clone();
                    let name = topic.clone();
                    // Linking back connects synchronously: off this task.
                    tokio::task::spawn_blocking(move || me.link_to(&name));
                    peer = Some(topic);
                }
                (TAG_COUNT, Some(p)) if body.len() == 4 => {
                    let n = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
                    if let Some(table) = self.counts.lock().get_mut(p) {
                        if n == 0 {
                            table.remove(&topic);
                        } else {
                            table.insert(topic, n);
                        }
                    }
                }
                (TAG_METRICS, Some(p)) => {
                    if let Ok(text) = String::from_utf8(body.to_vec()) {
                        self.metrics.lock().insert(p.clone(), text);
                    }
                }
                (tag, Some(_)) => match Kind::from_tag(tag) {
                    Some(kind) => self.shared.deliver(&topic, kind, body),
                    None => break,
                },
                _ => break,
            }
            // Wake the writers once per burst: when neither our buffer nor
            // the socket has another frame ready (one non-blocking read
            // attempt, which the next frame's read would make anyway), and
            // at least every FLUSH_EVERY frames so a long burst still flows.
            pending += 1;
            if pending >= FLUSH_EVERY
                || (r.buffer().is_empty()
                    && !matches!(r.fill_buf().now_or_never(), Some(Ok(b)) if !b.is_empty()))
            {
                hub.flush();
                pending = 0;
            }
        }
        hub.flush();
        if let Some(p) = peer {
            self.counts.lock().remove(&p);
            self.metrics.lock().remove(&p);
        }
    }

    /// Queues a message for every sibling; true when at least one got it.
    pub(crate) fn publish(&self, topic: &str, kind: Kind, payload: &[u8]) -> bool {
        let out = self.out.read();
        if out.is_empty() {
            return false;
        }
        if topic.len() > u16::MAX as usize {
            self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        // Encoded once; every link's queue holds a reference to the same bytes.
        let f = wire::frame(kind.tag(), topic, payload);
        let mut any = false;
        for link in out.values() {
            if link.queued.load(Ordering::Acquire) + f.len() > LINK_LIMIT {
                self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            any |= link.push(f.clone());
        }
        any
    }

    /// Tells every sibling our new count for `topic` (called with the hub's
    /// topics lock held: queues only).
    pub(crate) fn count_changed(&self, topic: &str, local: usize) {
        if topic.len() > u16::MAX as usize {
            return;
        }
        let out = self.out.read();
        if out.is_empty() {
            return;
        }
        let f = wire::frame(TAG_COUNT, topic, &(local as u32).to_le_bytes());
        for link in out.values() {
            link.push(f.clone());
        }
    }

    /// Sends this worker's metrics text to every sibling (skipped for a
    /// link over its bound: the next second's text replaces it anyway).
    pub(crate) fn share_metrics(&self, text: &str) {
        let f = wire::frame(TAG_METRICS, "", text.as_bytes());
        for link in self.out.read().values() {
            if link.queued.load(Ordering::Acquire) + f.len() <= LINK_LIMIT {
                link.push(f.clone());
            }
        }
    }

    /// The siblings' last metrics texts.
    pub(crate) fn peer_metrics(&self) -> Vec<String> {
        self.metrics.lock().values().cloned().collect()
    }

    /// Subscribers of `topic` in the siblings, as they last reported.
    pub(crate) fn peer_count(&self, topic: &str) -> usize {
        self.counts
            .lock()
            .values()
            .map(|t| t.get(topic).copied().unwrap_or(0))
            .sum()
    }

    /// Siblings linked both ways now.
    pub(crate) fn peers(&self) -> usize {
        let out = self.out.read();
        self.counts
            .lock()
            .keys()
            .filter(|p| out.contains_key(*p))
            .count()
    }

    pub(crate) fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            let _ = std::fs::remove_file(&self.path);
            self.out.write().clear();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
