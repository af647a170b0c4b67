//! The slot through which an answer from the embedder is written straight
//! into its connection's socket by the code that hands the batch of
//! answers over (`Server::deliver`), with the own HTTP/1.1 driver, on plain
//! TCP and over TLS on TCP (the answer encrypted under the connection's
//! session lock, `net::shared_tls`; `HTTPY_DELIVERY_WRITE_TLS=0` turns that
//! off); the driver's side and the encoding of the answer are in
//! `proto::h1::direct`.
//!
//! Without it an answer from JavaScript goes through a oneshot to the
//! connection's task, which is woken, polled a second time for this
//! request, turns the `Reply` into a `Response`, encodes it and writes it.
//! With it, the code that hands the batch over tries one non-blocking
//! `send` of the encoded answer on the socket. When every byte went, the
//! request is marked answered here and the task is *not* woken: it finds
//! the mark the next time it runs anyway (the client's next request or its
//! EOF makes the socket readable, a shutdown, its park clock). A partial
//! write leaves the rest here and wakes the task to write it; a full socket
//! or an error hands the answer back for the usual path.
//!
//! Where the write runs: by default on the I/O thread, in the one task
//! that delivers a batch of answers (docs/performance.md §17: it saves the
//! connection task's second poll and the oneshot's wake-up per request);
//! with `HTTPY_DIRECT_WRITE=N`, on the embedder's thread for batches of at
//! most `N` (§10: cheaper at few connections, but the `send`, which on
//! loopback also runs the client's TCP receive, then lands on the one
//! thread that cannot scale past a core).
//!
//! The handler's deadline (`requestTimeout`) of an armed request is kept
//! here, not in a timer of the dispatcher's: the driver reads it with the
//! clock it runs anyway and answers 503 itself when it passes
//! (docs/performance.md §17.5).
//!
//! An armed request has no oneshot either: a reply that is not written
//! directly (or word that none will come) is left here for the request's
//! future, and its task woken (docs/performance.md §17.7).
//!
//! Ordering: the driver offers a request only when it has nothing of its
//! own to write before it, and takes the slot back before it writes
//! anything itself. The descriptor is used only by a writer that moved the
//! slot's state from armed (for its request id) to writing; taking the
//! slot back and closing it wait until no writer is in that state, and the
//! driver closes the slot before the socket can be dropped, so a late
//! answer never reaches a descriptor that was closed or reused. The state
//! is one atomic word: the normal path takes no lock (docs/performance.md
//! §17.9).

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use std::sync::atomic::{
    AtomicI64, AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use std::sync::Arc;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

use super::reply::Reply;

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

/// `HTTPY_DELIVERY_WRITE=0` (read once per process) turns off the default
/// write of answers from the task that delivers a batch on the I/O thread,
/// for measuring against the channel path (docs/performance.md §17).
pub(crate) static ON_DELIVERY: LazyLock<bool> =
    LazyLock::new(|| std::env::var("HTTPY_DELIVERY_WRITE").as_deref() != Ok("0"));

/// `HTTPY_DELIVERY_WRITE_TLS=0` (read once per process) keeps answers on
/// HTTPS connections on the connection's task (the path before
/// docs/performance.md §16.5), for measuring.
pub(crate) static ON_TLS: LazyLock<bool> =
    LazyLock::new(|| std::env::var("HTTPY_DELIVERY_WRITE_TLS").as_deref() != Ok("0"));

/// Whether connections get a slot at all.
pub(crate) fn enabled() -> bool {
    *ON_DELIVERY || *MAX_BATCH > 0
}

/// The part of a TLS connection both its task and the delivering task
/// use (`net::shared_tls`).
pub(crate) struct TlsShared {
    pub(crate) conn: rustls::ServerConnection,
    /// The stream below holds bytes that must leave before any record
    /// written now (the tickets, or the rest of a partial write).
    pub(crate) io_holds: bool,
}

// The slot's state is one atomic word (docs/performance.md §17.9): the
// normal path of an armed request (offer, arm, the driver's look, the
// delivering task's write, the driver taking the slot back) takes no lock;
// before, it took five (four on the I/O thread's connection task, one in
// the delivering task), each a lock and an unlock. The word holds a tag
// (the low bits), the `WAKE` flag and the armed request's id (the high 32
// bits). Only the rare paths take `parcel`'s lock: a rest left by a
// partial write, and a reply not written directly.

/// The driver is between requests, or writes itself.
const IDLE: u64 = 0;
/// The driver would accept a direct answer for the request it is
/// dispatching; the service has not yet decided.
const OFFERED: u64 = 1;
/// The request with the word's id is with the embedder and may be
/// answered directly.
const ARMED: u64 = 2;
/// As `ARMED`, and a writer is using the descriptor now: the driver does
/// not take the slot back or close it until the writer leaves this state
/// (it spins: the writer is in one non-blocking `send`).
const WRITING: u64 = 3;
/// Answered directly, every byte written (at `done_at`).
const DONE: u64 = 4;
/// Answered directly; the bytes in `parcel` are still to be written by
/// the driver.
const REST: u64 = 5;
/// The armed request's reply is in `parcel`, for the dispatcher's future
/// to take (an answer not written directly).
const REPLIED: u64 = 6;
/// The armed request's responder was dropped without a reply.
const DROPPED: u64 = 7;
/// The connection is closing: the descriptor must not be used.
const CLOSED: u64 = 8;
const TAG: u64 = 0xf;
/// With `ARMED` or `WRITING`: the driver has work waiting (buffered
/// input, an EOF, a shutdown) and must be woken when the answer is
/// written. Set by the driver with one `fetch_or`, read by the writer in
/// the swap that ends its write: whichever comes second sees the other.
const WAKE: u64 = 0x10;

fn tag(s: u64) -> u64 {
    s & TAG
}

fn armed(id: u32) -> u64 {
    ((id as u64) << 32) | ARMED
}

fn id_of(s: u64) -> u32 {
    (s >> 32) as u32
}

/// Instants kept in atomics, as signed nanoseconds from this one.
static BASE: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);

fn to_nanos(at: Instant) -> i64 {
    let at = at.into_std();
    match at.checked_duration_since(*BASE) {
        Some(d) => d.as_nanos().min(i64::MAX as u128) as i64,
        None => -(BASE.duration_since(at).as_nanos().min(i64::MAX as u128) as i64),
    }
}

fn from_nanos(n: i64) -> Instant {
    let at = if n >= 0 {
        *BASE + Duration::from_nanos(n as u64)
    } else {
        *BASE - Duration::from_nanos(n.unsigned_abs())
    };
    Instant::from_std(at)
}

/// What travels through `parcel`.
enum Parcel {
    Rest(Bytes),
    Reply(Reply),
}

/// What the driver finds when it looks at the slot while it waits.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Look {
    /// Answered directly: take it with [`Slot::take`].
    Answered,
    /// With the embedder; the driver answers 503 at this deadline.
    Armed(Instant),
    /// Not armed (the dispatcher keeps its own deadline).
    No,
}

/// What the driver finds when it takes the slot back.
pub(crate) enum Taken {
    /// Not answered directly: write the dispatcher's response.
    No,
    /// Answered (at that time); nothing left to write.
    Done(Instant),
    /// Answered; write these bytes.
    Rest(Bytes),
}

/// One connection's slot, shared by its task and the embedder's thread.
pub(crate) struct Slot {
    fd: i32,
    /// Over TLS: the session the answer is encrypted with.
    tls: Option<Arc<Mutex<TlsShared>>>,
    /// Tag, `WAKE` and id (above).
    state: AtomicU64,
    /// The armed request's deadline (`requestTimeout`), set by `arm` and
    /// read by the driver (the same task).
    deadline: AtomicI64,
    /// When a whole answer was written (`DONE`).
    done_at: AtomicI64,
    /// A rest (`REST`) or a reply (`REPLIED`): written before the tag is
    /// published, taken after it was seen.
    parcel: Mutex<Option<Parcel>>,
    task: AtomicWaker,
}

impl Slot {
    pub(crate) fn new(fd: i32) -> Arc<Self> {
        Self::make(fd, None)
    }

    /// A slot on a TLS connection: answers are encrypted under its
    /// session's lock, then written (see `net::shared_tls`).
    pub(crate) fn with_tls(fd: i32, tls: Arc<Mutex<TlsShared>>) -> Arc<Self> {
        Self::make(fd, Some(tls))
    }

    fn make(fd: i32, tls: Option<Arc<Mutex<TlsShared>>>) -> Arc<Self> {
        LazyLock::force(&BASE);
        Arc::new(Self {
            fd,
            tls,
            state: AtomicU64::new(IDLE),
            deadline: AtomicI64::new(0),
            done_at: AtomicI64::new(0),
            parcel: Mutex::new(None),
            task: AtomicWaker::new(),
        })
    }

    /// The state once no writer holds the descriptor (the driver's wait
    /// before taking the slot back or closing it; a writer is in one
    /// non-blocking `send`, so this is short; it never happens when the
    /// writer runs on the driver's own thread).
    fn settled(&self) -> u64 {
        let mut spins = 0u32;
        loop {
            let s = self.state.load(Acquire);
            if tag(s) != WRITING {
                return s;
            }
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            spins += 1;
        }
    }

    /// Driver: the request about to be dispatched may be answered directly.
    pub(crate) fn offer(&self) {
        // Between requests only the driver changes the word (others change
        // it from `ARMED` only, and `take` left it `IDLE`): a plain store.
        if tag(self.state.load(Relaxed)) != CLOSED {
            self.state.store(OFFERED, Relaxed);
        }
    }

    /// Service: the request (queued as `id`) will be answered by the
    /// embedder and nothing after the reply changes it. True if the driver
    /// offered it, and it is armed now: the driver then answers 503 at
    /// `deadline` if nothing came (the service sets no timer of its own).
    pub(crate) fn arm(&self, id: u32, deadline: Instant) -> bool {
        if self.state.load(Relaxed) != OFFERED {
            return false;
        }
        self.deadline.store(to_nanos(deadline), Relaxed);
        // Release: a writer that sees `ARMED` sees the slot as set here.
        self.state
            .compare_exchange(OFFERED, armed(id), Release, Relaxed)
            .is_ok()
    }

    /// Driver, while it waits for the answer: registers its waker and says
    /// whether it has work waiting; what it finds says what to do.
    pub(crate) fn answered(&self, cx: &std::task::Context<'_>, pending_work: bool) -> Look {
        self.task.register(cx.waker());
        let mut s = self.state.load(Acquire);
        if pending_work && matches!(tag(s), ARMED | WRITING) && s & WAKE == 0 {
            s = self.state.fetch_or(WAKE, AcqRel);
        }
        match tag(s) {
            DONE | REST => Look::Answered,
            // A writer's `send` under way: it wakes this task if told to
            // (`WAKE`); otherwise the next look finds the answer.
            ARMED | WRITING => Look::Armed(from_nanos(self.deadline.load(Relaxed))),
            // A reply came after the dispatcher's future was polled, maybe
            // before this waker was registered: poll again.
            REPLIED | DROPPED => {
                cx.waker().wake_by_ref();
                Look::No
            }
            _ => Look::No,
        }
    }

    /// Service, for its armed request (in place of a oneshot's receiver):
    /// the reply, `None` if the responder was dropped without one. The
    /// driver drops the future instead when it answers itself (a direct
    /// answer, its deadline). No waker is registered here: this future is
    /// polled by the driver's task, which registers the same waker in its
    /// look ([`Slot::answered`]) right after, and that look finds a reply
    /// that came in between.
    pub(crate) fn poll_reply(&self, _cx: &Context<'_>) -> Poll<Option<Reply>> {
        let s = self.state.load(Acquire);
        match tag(s) {
            REPLIED => {
                let parcel = self.parcel.lock().take();
                // Nobody else moves the word from `REPLIED`.
                self.state.store(IDLE, Relaxed);
                match parcel {
                    Some(Parcel::Reply(r)) => Poll::Ready(Some(r)),
                    _ => Poll::Ready(None),
                }
            }
            DROPPED => {
                self.state.store(IDLE, Relaxed);
                Poll::Ready(None)
            }
            _ => Poll::Pending,
        }
    }

    /// Responder: hands the reply of armed request `id` to the waiting
    /// dispatcher's future and wakes it. False when nobody waits for it
    /// any more (the driver answered, or the connection closed).
    pub(crate) fn reply(&self, id: u32, reply: Reply) -> bool {
        if !self.waits_for(id) {
            return false;
        }
        // Held until the tag is published or the parcel restored: a rest
        // of another request's write (which takes this lock) is never
        // overwritten.
        let mut parcel = self.parcel.lock();
        let before = parcel.replace(Parcel::Reply(reply));
        if self.settle(id, REPLIED) {
            return true;
        }
        *parcel = before;
        false
    }

    /// Responder: request `id` will get no reply (dropped unanswered).
    pub(crate) fn abandon(&self, id: u32) {
        self.settle(id, DROPPED);
    }

    /// Moves the word from `ARMED` for `id` (with or without `WAKE`) to
    /// `to`, and wakes the driver's task.
    fn settle(&self, id: u32, to: u64) -> bool {
        let mut s = self.state.load(Relaxed);
        loop {
            if s & !WAKE != armed(id) {
                return false;
            }
            match self.state.compare_exchange_weak(s, to, AcqRel, Relaxed) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        self.task.wake();
        true
    }

    /// Responder: whether armed request `id` still waits for its reply.
    pub(crate) fn waits_for(&self, id: u32) -> bool {
        let s = self.state.load(Acquire);
        matches!(tag(s), ARMED | WRITING) && id_of(s) == id
    }

    /// Driver: whether the request was answered directly (a woken
    /// driver's first look).
    pub(crate) fn is_answered(&self) -> bool {
        matches!(tag(self.state.load(Acquire)), DONE | REST)
    }

    /// Driver: takes the slot back before writing anything itself.
    pub(crate) fn take(&self) -> Taken {
        let mut s = self.settled();
        loop {
            match tag(s) {
                CLOSED => return Taken::No,
                // Nobody but the driver moves the word from `DONE`.
                DONE => {
                    self.state.store(IDLE, Relaxed);
                    return Taken::Done(from_nanos(self.done_at.load(Relaxed)));
                }
                _ => {}
            }
            match self.state.compare_exchange(s, IDLE, AcqRel, Acquire) {
                Ok(_) => break,
                Err(now) if tag(now) == WRITING => s = self.settled(),
                Err(now) => s = now,
            }
        }
        match tag(s) {
            REST => match self.parcel.lock().take() {
                Some(Parcel::Rest(rest)) => Taken::Rest(rest),
                _ => Taken::No,
            },
            REPLIED => {
                // Not taken by the future (the driver answered itself).
                self.parcel.lock().take();
                Taken::No
            }
            _ => Taken::No,
        }
    }

    /// Driver: the socket is about to be dropped (or handed on).
    pub(crate) fn close(&self) {
        let mut s = self.settled();
        while let Err(now) = self.state.compare_exchange(s, CLOSED, AcqRel, Acquire) {
            s = if tag(now) == WRITING {
                self.settled()
            } else {
                now
            };
        }
        if matches!(tag(s), REST | REPLIED) {
            self.parcel.lock().take();
        }
    }

    /// Delivering code (I/O or embedder's thread): tries to write `answer` (a whole encoded
    /// response) for request `id` on the socket. True: answered. False:
    /// nothing was written; the reply takes the usual path
    /// ([`Slot::reply`]).
    pub(crate) fn write(&self, id: u32, answer: &[u8]) -> bool {
        // `ARMED` → `WRITING`: the descriptor is this thread's until the
        // word leaves `WRITING` (the driver waits for that before it takes
        // the slot back or closes it).
        let mut s = self.state.load(Relaxed);
        loop {
            if s & !WAKE != armed(id) {
                return false;
            }
            let writing = (s & !TAG) | WRITING;
            match self
                .state
                .compare_exchange_weak(s, writing, Acquire, Relaxed)
            {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if let Some(tls) = &self.tls {
            return self.write_tls(tls, answer);
        }
        let n = send(self.fd, answer);
        if n <= 0 {
            // Full (EAGAIN) or broken: the driver writes, or finds out.
            self.unwrite();
            return false;
        }
        let n = n as usize;
        self.wrote((n < answer.len()).then(|| Bytes::copy_from_slice(&answer[n..])));
        true
    }

    /// `WRITING` → `ARMED` (keeping `WAKE` and the id): nothing was written.
    fn unwrite(&self) {
        self.state.fetch_xor(WRITING ^ ARMED, Release);
    }

    /// Ends a write that sent something: `DONE`, or `REST` with the bytes
    /// left; wakes the driver for a rest or when it asked (`WAKE`).
    fn wrote(&self, rest: Option<Bytes>) {
        let to = match rest {
            Some(rest) => {
                *self.parcel.lock() = Some(Parcel::Rest(rest));
                REST
            }
            None => {
                self.done_at.store(to_nanos(Instant::now()), Relaxed);
                DONE
            }
        };
        // Release: the driver that sees the tag sees `done_at` or the rest.
        let was = self.state.swap(to, AcqRel);
        if to == REST || was & WAKE != 0 {
            self.task.wake();
        }
    }
}

#[cfg(test)]
impl Slot {
    /// Moves armed request `id` to `WRITING`, as `write` does before its
    /// `send`: a test then plays the rest of the write.
    fn write_state_for_test(&self, id: u32) -> bool {
        let s = self.state.load(Relaxed);
        s & !WAKE == armed(id)
            && self
                .state
                .compare_exchange(s, (s & !TAG) | WRITING, Acquire, Relaxed)
                .is_ok()
    }
}

impl Slot {
    /// [`Slot::write`] over TLS, the word `WRITING`. The session is taken
    /// only if free (`try_lock`: the connection's task reading it means the
    /// answer takes the usual way) and only with nothing queued before the
    /// answer (records, or the handshake's tickets held below the session:
    /// those leave with the driver's own write). The answer is encrypted as
    /// one record and sent; what the socket does not take stays in the
    /// session and the driver is woken to flush it.
    fn write_tls(&self, tls: &Mutex<TlsShared>, answer: &[u8]) -> bool {
        let Some(mut g) = tls.try_lock() else {
            self.unwrite();
            return false;
        };
        if g.io_holds || g.conn.wants_write() || g.conn.is_handshaking() {
            drop(g);
            self.unwrite();
            return false;
        }
        // Under rustls' 64 KiB buffer limit (answers here are < 16 KiB and
        // nothing is queued), so all of it is taken; a rest would go to the
        // driver as plaintext.
        let taken = std::io::Write::write(&mut g.conn.writer(), answer).unwrap_or(0);
        if taken == 0 {
            drop(g);
            self.unwrite();
            return false;
        }
        let mut out = Fd(self.fd);
        while g.conn.wants_write() {
            match g.conn.write_tls(&mut out) {
                Ok(n) if n > 0 => {}
                // Full (EAGAIN) or broken: the driver sends the rest, or
                // finds out.
                _ => break,
            }
        }
        let rest = &answer[taken..];
        let all = rest.is_empty() && !g.conn.wants_write();
        drop(g);
        // Records left in the session (not all sent) are flushed by the
        // driver, woken by the rest (empty then).
        self.wrote((!all).then(|| Bytes::copy_from_slice(rest)));
        true
    }
}

/// The socket as a `Write` for rustls' records: non-blocking sends.
struct Fd(i32);

impl std::io::Write for Fd {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = send(self.0, buf);
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
    // SAFETY: `fd` is the connection's open socket: the caller moved the
    // slot to `WRITING`, and the driver closes the slot (waiting for a
    // writer to leave that state) before the socket can be dropped.
    unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) }
}

#[cfg(not(unix))]
fn send(_fd: i32, _buf: &[u8]) -> isize {
    -1
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

    /// A slot on one end of a socket pair, armed for request `id`, with the
    /// driver's waker registered (`work`: it has input waiting).
    fn armed(id: u32, work: bool) -> (Arc<Slot>, UnixStream, UnixStream, Arc<Count>) {
        let (ours, peer) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let slot = Slot::new(ours.as_raw_fd());
        slot.offer();
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        assert!(slot.arm(id, deadline));
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let look = slot.answered(&Context::from_waker(&waker), work);
        assert_eq!(look, Look::Armed(deadline), "the driver reads the deadline");
        (slot, ours, peer, count)
    }

    #[test]
    fn a_whole_answer_is_written_and_the_driver_is_not_woken() {
        let (slot, _ours, mut peer, count) = armed(7, false);
        assert!(slot.write(7, b"HTTP/1.1 200 OK\r\n"));
        let mut head = [0u8; 17];
        peer.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200 OK\r\n");
        assert_eq!(count.0.load(Relaxed), 0, "a whole write wakes nobody");
        assert!(slot.is_answered(), "seen without the lock");
        assert!(matches!(slot.take(), Taken::Done(..)));
        assert!(!slot.is_answered(), "taken back");
    }

    #[test]
    fn a_whole_answer_wakes_a_driver_with_input_waiting() {
        let (slot, _ours, _peer, count) = armed(1, true);
        assert!(slot.write(1, b"x"));
        assert_eq!(count.0.load(Relaxed), 1);
    }

    #[test]
    fn a_partial_write_leaves_the_rest_for_the_driver_and_wakes_it() {
        let (slot, ours, mut peer, count) = armed(3, false);
        // A small send buffer: 15 KB go out in part (~8 KB).
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
        let answer: Vec<u8> = (0..15_000u32).map(|i| (i % 251) as u8).collect();
        assert!(slot.write(3, &answer));
        assert_eq!(count.0.load(Relaxed), 1, "the driver is woken for the rest");
        assert!(slot.is_answered(), "a rest is an answer too");
        let Taken::Rest(rest) = slot.take() else {
            panic!("a partial write leaves a rest");
        };
        let mut sent = vec![0u8; answer.len() - rest.len()];
        peer.read_exact(&mut sent).unwrap();
        assert!(!sent.is_empty() && !rest.is_empty());
        // What was sent and the rest make the whole answer, in order.
        sent.extend_from_slice(&rest);
        assert_eq!(sent, answer);
    }

    #[test]
    fn a_stale_id_a_closed_slot_and_a_taken_slot_write_nothing() {
        let (slot, _ours, _peer, _) = armed(5, false);
        assert!(
            !slot.write(4, b"late"),
            "an answer to an earlier request is not written"
        );
        slot.close();
        assert!(!slot.write(5, b"x"));
        let (slot, _ours, _peer, _) = armed(6, false);
        assert!(matches!(slot.take(), Taken::No));
        assert!(!slot.write(6, b"x"), "the driver took it back");
    }

    #[test]
    fn a_gone_peer_writes_nothing_and_raises_no_signal() {
        let (slot, _ours, peer, _) = armed(2, false);
        drop(peer);
        // EPIPE, not SIGPIPE (which would end this test process).
        assert!(!slot.write(2, b"x"));
        assert!(!slot.is_answered());
        assert!(matches!(slot.take(), Taken::No));
    }

    fn reply(status: u16) -> Reply {
        Reply::from_parts(status, "", Bytes::new()).unwrap()
    }

    /// An armed request has no oneshot: a reply not written directly, or
    /// word that none comes, reaches the waiting future through the slot
    /// (waking the driver's task), and only for the request still armed.
    #[test]
    fn a_reply_not_written_directly_travels_through_the_slot() {
        let (slot, _ours, _peer, count) = armed(8, false);
        let waker = Waker::from(count.clone());
        let cx = Context::from_waker(&waker);
        assert!(slot.poll_reply(&cx).is_pending());
        assert!(slot.waits_for(8) && !slot.waits_for(7));
        assert!(!slot.reply(7, reply(500)), "another request's reply");
        assert!(slot.reply(8, reply(201)));
        assert_eq!(count.0.load(Relaxed), 1, "the waiting task is woken");
        assert!(!slot.waits_for(8), "answered");
        assert!(!slot.is_answered(), "not written: the driver frames it");
        match slot.poll_reply(&cx) {
            Poll::Ready(Some(r)) => assert_eq!(r.status.as_u16(), 201),
            _ => panic!("the reply is there"),
        }
        assert!(matches!(slot.take(), Taken::No));
        assert!(!slot.reply(8, reply(200)), "taken back: nobody waits");

        let (slot, _ours, _peer, _) = armed(9, false);
        slot.abandon(9);
        assert!(matches!(slot.poll_reply(&cx), Poll::Ready(None)));
    }

    /// A late reply to a request the driver took back must not touch the
    /// rest that the next request's partial write left for the driver.
    #[test]
    fn a_stale_reply_leaves_another_requests_rest_alone() {
        let (slot, _ours, _peer, _) = armed(10, false);
        assert!(matches!(slot.take(), Taken::No));
        slot.offer();
        assert!(slot.arm(11, Instant::now() + std::time::Duration::from_secs(60)));
        // A partial write's state, as `write` leaves it.
        assert!(slot.write_state_for_test(11));
        slot.wrote(Some(Bytes::from_static(b"rest of 11")));
        assert!(!slot.reply(10, reply(200)), "request 10 was taken back");
        slot.abandon(10);
        match slot.take() {
            Taken::Rest(rest) => assert_eq!(&rest[..], b"rest of 11"),
            _ => panic!("the rest of request 11 is still there"),
        }
    }

    /// The driver does not take the slot back (nor close it) while a
    /// writer holds the descriptor: it waits for the write to end.
    #[test]
    fn taking_back_waits_for_a_write_under_way() {
        let (slot, _ours, _peer, _) = armed(12, false);
        assert!(slot.write_state_for_test(12));
        assert!(!slot.write(12, b"x"), "one writer at a time");
        let writer = slot.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            writer.wrote(None);
        });
        let start = std::time::Instant::now();
        assert!(
            matches!(slot.take(), Taken::Done(..)),
            "the write's end seen"
        );
        assert!(start.elapsed() >= std::time::Duration::from_millis(40));
        t.join().unwrap();
        let (slot, _ours, _peer, _) = armed(13, false);
        assert!(slot.write_state_for_test(13));
        let writer = slot.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            writer.unwrite();
        });
        let start = std::time::Instant::now();
        slot.close();
        assert!(start.elapsed() >= std::time::Duration::from_millis(40));
        t.join().unwrap();
        assert!(!slot.write(13, b"x"), "closed");
    }

    /// Work waiting in the driver, told while a write is under way, still
    /// gets the driver woken when the write ends (`WAKE` survives it).
    #[test]
    fn work_told_during_a_write_wakes_the_driver() {
        let (slot, _ours, _peer, count) = armed(14, false);
        assert!(slot.write_state_for_test(14));
        let waker = Waker::from(count.clone());
        let look = slot.answered(&Context::from_waker(&waker), true);
        assert!(matches!(look, Look::Armed(_)));
        slot.wrote(None);
        assert_eq!(count.0.load(Relaxed), 1);
        // And told before a write that failed, for the reply that follows.
        let (slot, _ours, _peer, count) = armed(15, false);
        let waker = Waker::from(count.clone());
        let _ = slot.answered(&Context::from_waker(&waker), true);
        assert!(slot.write_state_for_test(15));
        slot.unwrite();
        assert!(slot.waits_for(15));
        assert!(slot.reply(15, reply(200)));
        assert_eq!(count.0.load(Relaxed), 1);
    }

    /// The armed request's deadline comes back as it was set.
    #[test]
    fn the_deadline_round_trips() {
        let now = Instant::now();
        for at in [now, now + std::time::Duration::from_nanos(1_234_567_891)] {
            assert_eq!(from_nanos(to_nanos(at)), at);
        }
    }

    #[test]
    fn only_an_offered_request_is_armed() {
        let (ours, _peer) = UnixStream::pair().unwrap();
        let slot = Slot::new(ours.as_raw_fd());
        let at = Instant::now();
        assert!(!slot.arm(1, at), "not offered");
        slot.offer();
        assert!(slot.arm(1, at));
        assert!(!slot.arm(2, at), "armed once");
    }
}
