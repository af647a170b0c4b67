//! The links between the worker processes of one server. Each worker
//! listens on a Unix socket and opens one outbound connection to every
//! other worker's socket: at start to those already there, later to each
//! worker that connects in (its hello names its socket). A worker only ever writes
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
//!
//! Where the sockets are ([`Place`]): on Linux, in the abstract namespace
//! (`@<prefix>-<pid>-<n>`, the prefix chosen by the supervisor), found
//! through `/proc/net/unix`; such a name has no file and vanishes with the
//! last descriptor of its socket, so a worker or primary killed by SIGKILL
//! leaves nothing behind. Elsewhere, files `<pid>-<n>.sock` in a directory
//! the supervisor made. Abstract sockets have no file permissions, so
//! every link, both ways, is checked to be with a process of our own user
//! (`SO_PEERCRED`), which is what the directory's mode 0700 gave.

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

/// Where the workers' sockets are, from the `cluster_dir` setting: a
/// directory, or (Linux) `@prefix` for the abstract namespace.
enum Place {
    Dir(PathBuf),
    #[cfg(target_os = "linux")]
    Abstract(String),
}

impl Place {
    fn from_setting(dir: &Path) -> Result<Place> {
        match dir.to_str().and_then(|s| s.strip_prefix('@')) {
            #[cfg(target_os = "linux")]
            Some(prefix) => Ok(Place::Abstract(prefix.to_owned())),
            #[cfg(not(target_os = "linux"))]
            Some(_) => Err(Error::new(
                EK::Listen,
                "pub/sub: abstract Unix sockets (@…) exist on Linux only",
            )),
            None => Ok(Place::Dir(dir.to_path_buf())),
        }
    }

    /// The name this process's `n`-th cluster listens under.
    fn own_name(&self, n: usize) -> String {
        match self {
            Place::Dir(_) => format!("{}-{n}.sock", std::process::id()),
            #[cfg(target_os = "linux")]
            Place::Abstract(prefix) => format!("{prefix}-{}-{n}", std::process::id()),
        }
    }

    /// For messages: the path or `@name`.
    fn show(&self, name: &str) -> String {
        match self {
            Place::Dir(dir) => dir.join(name).display().to_string(),
            #[cfg(target_os = "linux")]
            Place::Abstract(_) => format!("@{name}"),
        }
    }

    fn bind(&self, name: &str) -> std::io::Result<std::os::unix::net::UnixListener> {
        match self {
            Place::Dir(dir) => {
                let path = dir.join(name);
                let _ = std::fs::remove_file(&path);
                std::os::unix::net::UnixListener::bind(path)
            }
            #[cfg(target_os = "linux")]
            Place::Abstract(_) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                std::os::unix::net::UnixListener::bind_addr(&addr)
            }
        }
    }

    fn connect(&self, name: &str) -> std::io::Result<std::os::unix::net::UnixStream> {
        match self {
            Place::Dir(dir) => std::os::unix::net::UnixStream::connect(dir.join(name)),
            #[cfg(target_os = "linux")]
            Place::Abstract(_) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                std::os::unix::net::UnixStream::connect_addr(&addr)
            }
        }
    }

    /// The names of the sockets listening here now (ours included).
    fn listening(&self) -> Vec<String> {
        match self {
            Place::Dir(dir) => std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(".sock"))
                        .collect()
                })
                .unwrap_or_default(),
            #[cfg(target_os = "linux")]
            Place::Abstract(prefix) => {
                // One line per Unix socket of this network namespace, the
                // path last, `@` marking the abstract ones; accepted
                // connections repeat their listener's name, hence the
                // dedup. Read once per worker start: a few ms on a host
                // with tens of thousands of sockets.
                let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
                let mut names = abstract_names(&table, prefix);
                names.sort_unstable();
                names.dedup();
                names
            }
        }
    }

    /// A socket nobody listens on any more: a dead worker's. Its file is
    /// removed; an abstract name is already gone.
    fn forget(&self, name: &str) {
        match self {
            Place::Dir(dir) => {
                let _ = std::fs::remove_file(dir.join(name));
            }
            #[cfg(target_os = "linux")]
            Place::Abstract(_) => {}
        }
    }
}

/// The abstract names in a `/proc/net/unix` table that belong to the
/// cluster named `prefix` (`<prefix>-<pid>-<n>`), without their `@`.
#[cfg(target_os = "linux")]
fn abstract_names(table: &str, prefix: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_ascii_whitespace().nth(7))
        .filter_map(|path| path.strip_prefix('@'))
        .filter(|name| {
            name.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|rest| {
                    let mut parts = rest.split('-');
                    let digits = |p: Option<&str>| {
                        p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    };
                    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
                })
        })
        .map(str::to_owned)
        .collect()
}

/// True when the process at the other end of `s` runs as our user: links
/// with anyone else are refused (an abstract socket has no permissions of
/// its own). Costs one `getsockopt` per link.
fn same_user(s: &UnixStream) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    s.peer_cred().is_ok_and(|c| c.uid() == me)
}

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
    /// Our socket's name (the name peers know us by) and where it is.
    name: String,
    place: Place,
    /// The task holding our listener: aborted on close, which closes the
    /// socket (and frees an abstract name at once).
    accepting: Mutex<Option<tokio::task::AbortHandle>>,
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
        let place = Place::from_setting(dir)?;
        let name = place.own_name(SEQ.fetch_add(1, Ordering::Relaxed));
        let fail = |what: &str, e: std::io::Error| {
            Error::new(
                EK::Listen,
                format!("pub/sub: cannot {what} {}: {e}", place.show(&name)),
            )
        };
        let std_listener = place.bind(&name).map_err(|e| fail("listen on", e))?;
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
            place,
            accepting: Mutex::new(None),
            out: RwLock::new(FxHashMap::default()),
            counts: Mutex::new(FxHashMap::default()),
            metrics: Mutex::new(FxHashMap::default()),
            closed: AtomicBool::new(false),
            rt: rt.handle().clone(),
        });
        let accepting = rt.spawn(cluster.clone().accept_loop(listener));
        *cluster.accepting.lock() = Some(accepting.abort_handle());
        // Link to every sibling already there; each links back once our
        // hello arrives. Wait (boundedly) for those links back.
        let mut expected = Vec::new();
        for peer in cluster.place.listening() {
            if peer != cluster.name && cluster.link_to(&peer) {
                expected.push(peer);
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
    /// nobody listens on is a dead worker's: removed. A peer of another
    /// user is not linked to.
    fn link_to(self: &Arc<Self>, peer: &str) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        if self.out.read().contains_key(peer) {
            return true;
        }
        let stream = match self.place.connect(peer) {
            Ok(s) => s,
            Err(e) => {
                if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound) {
                    self.place.forget(peer);
                }
                return false;
            }
        };
        let stream = match stream.set_nonblocking(true).and_then(|_| {
            let _g = self.rt.enter();
            UnixStream::from_std(stream)
        }) {
            Ok(s) if same_user(&s) => s,
            _ => return false,
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
                Ok((s, _)) if same_user(&s) => {
                    self.rt.spawn(self.clone().read_loop(s));
                }
                Ok(_) => {} // another user's process: dropped unread
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
            self.place.forget(&self.name);
            if let Some(task) = self.accepting.lock().take() {
                task.abort();
            }
            self.out.write().clear();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.place.forget(&self.name);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn abstract_names_keep_only_this_clusters_listeners() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 11 @httpy-pubsub-9-ab-100-0\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 12 @httpy-pubsub-9-ab-100-0\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 13 @httpy-pubsub-9-ab-101-0\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 14 @httpy-pubsub-9-cd-102-0\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 15 @httpy-pubsub-9-ab-103-x\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 16 @httpy-pubsub-9-ab-104-0-1\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 17 /tmp/httpy-pubsub-9-ab-105-0\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 18\n";
        let mut names = abstract_names(table, "httpy-pubsub-9-ab");
        names.dedup();
        assert_eq!(
            names,
            ["httpy-pubsub-9-ab-100-0", "httpy-pubsub-9-ab-101-0"]
        );
    }
}
