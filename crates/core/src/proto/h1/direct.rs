//! Writing an answer from the embedder's thread straight into the socket
//! (`HTTPY_DIRECT_WRITE`, with the own driver, plain TCP only).
//!
//! Without it an answer from JavaScript goes through a oneshot to the
//! connection's task, which is woken on a Tokio thread, turns the `Reply`
//! into a `Response`, encodes it and writes it: a cross-thread wake and a
//! task poll per answer. With it, the thread that hands the batch over
//! (`Server::deliver`) encodes a small whole answer itself and tries one
//! non-blocking `send` on the connection's socket. When every byte went,
//! the request is marked answered here, in the connection's slot, and the
//! task is *not* woken: it finds the mark the next time it runs anyway
//! (the client's next request or its EOF makes the socket readable, or a
//! timer of the request fires). A partial write leaves the rest here and
//! wakes the task to write it; a full socket, an error, or an answer this
//! path does not take (large or streamed body, `Connection: close`, a
//! file, a push list) goes the usual way.
//!
//! Ordering: the driver offers a request for direct writing only when it
//! has nothing of its own to write (no earlier answer pending, no `100
//! Continue`, no body still being read, no pipelined input buffered), and
//! takes the slot back (under its lock) before it writes anything itself.
//! The socket's descriptor is used only under that lock and only while the
//! slot is armed for one request id; the driver marks the slot closed
//! before the socket can be dropped, so a late answer never reaches a
//! descriptor that was closed or reused.
//!
//! Cost: the `send` (on loopback it also runs the client's TCP receive) and
//! the head's encoding move from the I/O thread to the embedder's thread,
//! the one thread that cannot scale past a core; see docs/performance.md
//! §10 for what that buys and costs.

use bytes::{Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use http::{StatusCode, Version};
use parking_lot::Mutex;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::sync::LazyLock;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::encode::{self, ReqFacts};
use crate::embedder::reply::{Reply, Source};

/// `HTTPY_DIRECT_WRITE=N` (read once per process; with the own driver):
/// the answers of a batch of at most `N` are written from the embedder's
/// thread; `all` for every batch; unset or `0`, off (the default, see
/// docs/performance.md §10). Why a bound: at high concurrency a batch holds
/// tens of answers, and their `send`s done one after another on the JS
/// thread keep it from taking the next batch while the I/O thread, which
/// would have written them in parallel, idles; small batches (few clients,
/// or a lull) are where the saved wake-up of the I/O thread pays.
pub(crate) static MAX_BATCH: LazyLock<usize> =
    LazyLock::new(|| match std::env::var("HTTPY_DIRECT_WRITE").as_deref() {
        Ok("all") => usize::MAX,
        Ok(n) => n.trim().parse().unwrap_or(0),
        Err(_) => 0,
    });

/// The largest answer (head and body) written from the embedder's thread:
/// the driver's own limit for copying a body behind its head.
const MAX_ANSWER: usize = 16 * 1024;

/// Where one request of a connection stands with respect to direct writing.
enum State {
    /// The driver is between requests, or writes itself.
    Idle,
    /// The driver would accept a direct answer for the request it is
    /// dispatching; the service has not yet decided.
    Offered,
    /// The request with this id is with the embedder and may be answered
    /// directly. `wake`: the driver has work waiting (buffered input, an
    /// EOF, a shutdown) and must be woken when the answer is written.
    Armed { id: u32, wake: bool },
    /// Answered directly, every byte written, at this time. The sender is
    /// kept (not dropped) because dropping it would wake the waiting task.
    Done(oneshot::Sender<Reply>, Instant),
    /// Answered directly, these bytes still to be written by the driver.
    Rest(Bytes, oneshot::Sender<Reply>),
    /// The connection is closing: the descriptor must not be used.
    Closed,
}

/// What the driver finds when it takes the slot back.
pub(crate) enum Taken {
    /// Not answered directly: write the dispatcher's response.
    No,
    /// Answered; nothing left to write. The sender is to be dropped after
    /// the dispatcher's future (which holds its receiver).
    Done(oneshot::Sender<Reply>, Instant),
    /// Answered; write these bytes.
    Rest(Bytes, oneshot::Sender<Reply>),
}

/// One connection's slot, shared by its task and the embedder's thread.
pub(crate) struct Slot {
    fd: i32,
    state: Mutex<State>,
    task: AtomicWaker,
    /// Set while the driver watches: `Armed` is possible.
    live: AtomicBool,
}

impl Slot {
    pub(crate) fn new(fd: i32) -> Arc<Self> {
        Arc::new(Self {
            fd,
            state: Mutex::new(State::Idle),
            task: AtomicWaker::new(),
            live: AtomicBool::new(false),
        })
    }

    /// Driver: the request about to be dispatched may be answered directly.
    pub(crate) fn offer(&self) {
        let mut s = self.state.lock();
        if !matches!(*s, State::Closed) {
            *s = State::Offered;
            self.live.store(true, Relaxed);
        }
    }

    /// Service: the request (queued as `id`) will be answered by the
    /// embedder and nothing after the reply changes it. True if the driver
    /// offered it, and it is armed now.
    pub(crate) fn arm(&self, id: u32) -> bool {
        if !self.live.load(Relaxed) {
            return false;
        }
        let mut s = self.state.lock();
        if matches!(*s, State::Offered) {
            *s = State::Armed { id, wake: false };
            return true;
        }
        false
    }

    /// Driver, while it waits for the answer: registers its waker and says
    /// whether it has work waiting. True when the request was answered
    /// directly (take it with [`Slot::take`]).
    pub(crate) fn answered(&self, cx: &std::task::Context<'_>, pending_work: bool) -> bool {
        self.task.register(cx.waker());
        let mut s = self.state.lock();
        match &mut *s {
            State::Done(..) | State::Rest(..) => true,
            State::Armed { wake, .. } => {
                *wake = pending_work;
                false
            }
            _ => false,
        }
    }

    /// Driver: takes the slot back before writing anything itself.
    pub(crate) fn take(&self) -> Taken {
        self.live.store(false, Relaxed);
        let mut s = self.state.lock();
        if matches!(*s, State::Closed) {
            return Taken::No;
        }
        match std::mem::replace(&mut *s, State::Idle) {
            State::Done(tx, at) => Taken::Done(tx, at),
            State::Rest(rest, tx) => Taken::Rest(rest, tx),
            _ => Taken::No,
        }
    }

    /// Driver: the socket is about to be dropped (or handed on).
    pub(crate) fn close(&self) {
        self.live.store(false, Relaxed);
        *self.state.lock() = State::Closed;
    }

    /// Embedder's thread: tries to write `reply` for request `id` on the
    /// socket. `Ok(())`: answered (the sender is kept here until the driver
    /// looks). `Err`: the reply and sender are handed back, untouched, for
    /// the usual path.
    // The reply and sender come back by value on the usual path (a move of
    // ~200 bytes; a box would cost an allocation per answer).
    #[allow(clippy::result_large_err)]
    pub(crate) fn write(
        &self,
        id: u32,
        reply: Reply,
        tx: oneshot::Sender<Reply>,
    ) -> Result<(), (Reply, oneshot::Sender<Reply>)> {
        if !takes(&reply) {
            return Err((reply, tx));
        }
        OUT.with(|out| {
            let mut out = out.borrow_mut();
            out.clear();
            let facts = ReqFacts {
                version: Version::HTTP_11,
                head: false,
                keep_alive: true,
            };
            let body = &reply.body;
            encode::head(
                &mut out,
                &facts,
                reply.status,
                &reply.headers,
                Some(body.len() as u64),
            );
            out.extend_from_slice(body);
            if out.len() > MAX_ANSWER {
                return Err((reply, tx));
            }
            let mut s = self.state.lock();
            let wake = match &*s {
                State::Armed { id: armed, wake } if *armed == id => *wake,
                _ => return Err((reply, tx)),
            };
            let n = send(self.fd, &out);
            if n <= 0 {
                // Full (EAGAIN) or broken: the driver writes, or finds out.
                return Err((reply, tx));
            }
            let n = n as usize;
            let rest = n < out.len();
            *s = if rest {
                State::Rest(Bytes::copy_from_slice(&out[n..]), tx)
            } else {
                State::Done(tx, Instant::now())
            };
            drop(s);
            if rest || wake {
                self.task.wake();
            }
            Ok(())
        })
    }
}

/// Whether this path takes the reply: a whole small body, an ordinary
/// final status, nothing that closes the connection or needs the driver.
fn takes(reply: &Reply) -> bool {
    matches!(reply.source, Source::Bytes)
        && reply.push.is_empty()
        && reply.status != StatusCode::SWITCHING_PROTOCOLS
        && reply.body.len() < MAX_ANSWER
        && !encode::asks_close(&reply.headers)
}

thread_local! {
    /// The embedder thread's encoding buffer, reused for every answer.
    static OUT: RefCell<BytesMut> = RefCell::new(BytesMut::with_capacity(4096));
}

/// One non-blocking send; never raises SIGPIPE. Returns bytes written, or
/// a negative value (EAGAIN included).
#[cfg(unix)]
fn send(fd: i32, buf: &[u8]) -> isize {
    #[cfg(target_os = "linux")]
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // Elsewhere the socket is non-blocking already (Tokio) and SIGPIPE is
    // ignored by Node.js.
    #[cfg(not(target_os = "linux"))]
    let flags = 0;
    // SAFETY: `fd` is the connection's open socket: the caller holds the
    // slot's lock and the slot is armed, and the driver closes the slot
    // under that lock before the socket can be dropped.
    unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) }
}

#[cfg(not(unix))]
fn send(_fd: i32, _buf: &[u8]) -> isize {
    -1
}

/// The descriptor of a plain TCP connection, where the direct path is on.
pub(crate) fn fd_of<T: super::Transport>(io: &T) -> Option<i32> {
    if *MAX_BATCH > 0 {
        io.raw_fd()
    } else {
        None
    }
}

/// Closes the slot when dropped: declared after the socket is owned, it
/// runs before the socket is dropped or handed to hyper.
pub(crate) struct CloseOnDrop(pub(crate) Arc<Slot>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Wake, Waker};

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    fn reply(body: &[u8], headers: &str) -> Reply {
        Reply::from_parts(200, headers, Bytes::copy_from_slice(body)).unwrap()
    }

    fn sender() -> (oneshot::Sender<Reply>, oneshot::Receiver<Reply>) {
        oneshot::channel()
    }

    /// A slot on one end of a socket pair, armed for request `id`, with the
    /// driver's waker registered (`work`: it has input waiting).
    fn armed(id: u32, work: bool) -> (Arc<Slot>, UnixStream, UnixStream, Arc<Count>) {
        let (ours, peer) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let slot = Slot::new(ours.as_raw_fd());
        slot.offer();
        assert!(slot.arm(id));
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        assert!(!slot.answered(&Context::from_waker(&waker), work));
        (slot, ours, peer, count)
    }

    #[test]
    fn a_whole_answer_is_written_and_the_driver_is_not_woken() {
        let (slot, _ours, mut peer, count) = armed(7, false);
        let (tx, _rx) = sender();
        assert!(slot
            .write(7, reply(b"hello", "content-type\ntext/plain"), tx)
            .is_ok());
        let mut head = [0u8; 17];
        peer.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200 OK\r\n");
        assert_eq!(count.0.load(Relaxed), 0, "a whole write wakes nobody");
        assert!(matches!(slot.take(), Taken::Done(..)));
    }

    #[test]
    fn a_whole_answer_wakes_a_driver_with_input_waiting() {
        let (slot, _ours, _peer, count) = armed(1, true);
        let (tx, _rx) = sender();
        assert!(slot.write(1, reply(b"x", ""), tx).is_ok());
        assert_eq!(count.0.load(Relaxed), 1);
    }

    #[test]
    fn a_partial_write_leaves_the_rest_for_the_driver_and_wakes_it() {
        let (slot, ours, mut peer, count) = armed(3, false);
        // A small send buffer: a 15 KB answer goes out in part (~8 KB).
        let size: libc::c_int = 4096;
        // SAFETY: a valid socket and a c_int option of the right size.
        let rc = unsafe {
            libc::setsockopt(
                ours.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        let body = vec![b'b'; 15_000];
        let (tx, _rx) = sender();
        assert!(slot.write(3, reply(&body, ""), tx).is_ok());
        assert_eq!(count.0.load(Relaxed), 1, "the driver is woken for the rest");
        let Taken::Rest(rest, _tx) = slot.take() else {
            panic!("a partial write leaves a rest");
        };
        // What was sent and the rest make one whole answer, body last.
        let sent = {
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = Vec::new();
            peer.set_nonblocking(true).unwrap();
            while let Ok(n) = peer.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            got
        };
        assert!(!sent.is_empty() && !rest.is_empty());
        let mut whole = sent;
        whole.extend_from_slice(&rest);
        let text = String::from_utf8(whole).unwrap();
        let (head, got_body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("content-length: 15000"), "{head}");
        assert_eq!(got_body.as_bytes(), &body[..]);
    }

    #[test]
    fn a_stale_id_a_closed_slot_and_a_taken_slot_hand_the_reply_back() {
        let (slot, _ours, _peer, _) = armed(5, false);
        let (tx, _rx) = sender();
        let Err((back, tx)) = slot.write(4, reply(b"late", ""), tx) else {
            panic!("an answer to an earlier request is not written");
        };
        assert_eq!(&back.body[..], b"late");
        slot.close();
        assert!(slot.write(5, reply(b"x", ""), tx).is_err());
        let (slot, _ours, _peer, _) = armed(6, false);
        assert!(matches!(slot.take(), Taken::No));
        let (tx, _rx) = sender();
        assert!(
            slot.write(6, reply(b"x", ""), tx).is_err(),
            "the driver took it back"
        );
    }

    #[test]
    fn answers_this_path_does_not_take_go_the_usual_way() {
        let (slot, _ours, _peer, _) = armed(9, false);
        let (tx, _rx) = sender();
        let Err((_, tx)) = slot.write(9, reply(b"bye", "connection\nclose"), tx) else {
            panic!("a closing answer is the driver's");
        };
        let big = vec![0u8; MAX_ANSWER];
        let Err((_, tx)) = slot.write(9, reply(&big, ""), tx) else {
            panic!("a large answer is the driver's");
        };
        // Still armed: a small answer goes.
        assert!(slot.write(9, reply(b"ok", ""), tx).is_ok());
    }

    #[test]
    fn a_gone_peer_hands_the_reply_back_without_a_signal() {
        let (slot, _ours, peer, _) = armed(2, false);
        drop(peer);
        let (tx, _rx) = sender();
        // EPIPE, not SIGPIPE (which would end this test process).
        assert!(slot.write(2, reply(b"x", ""), tx).is_err());
        assert!(matches!(slot.take(), Taken::No));
    }

    #[test]
    fn only_an_offered_request_is_armed() {
        let (ours, _peer) = UnixStream::pair().unwrap();
        let slot = Slot::new(ours.as_raw_fd());
        assert!(!slot.arm(1), "not offered");
        slot.offer();
        assert!(slot.arm(1));
        assert!(!slot.arm(2), "armed once");
    }
}
