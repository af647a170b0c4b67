//! Telling the embedder that an answer is no longer wanted: the client went
//! away (connection closed, HTTP/2 or HTTP/3 stream reset) or the core
//! already answered for the handler (timeout, 413 mid-upload). This is what
//! the JS side turns into `request.signal`.
//!
//! Watching is opt-in per request: the embedder registers a call-back only
//! when a handler touches the signal. Every request pays one atomic load
//! when it ends (is anyone watching at all?); the map is locked only while
//! some request is watched.

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

type Callback = Box<dyn FnOnce() + Send>;

#[derive(Default)]
pub(crate) struct AbortWatch {
    watched: AtomicUsize,
    callbacks: Mutex<FxHashMap<u32, Callback>>,
}

impl AbortWatch {
    /// Calls `f` once if request `id` ends without its reply being taken.
    /// The caller must then check whether the request is already over (its
    /// responder abandoned) and `unwatch` it: a request that ended just
    /// before this call looked at an empty map.
    pub(crate) fn watch(&self, id: u32, f: Callback) {
        let mut map = self.callbacks.lock();
        if map.insert(id, f).is_none() {
            self.watched.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Removes the call-back of `id`, returning it if it was still there.
    pub(crate) fn unwatch(&self, id: u32) -> Option<Callback> {
        let f = self.callbacks.lock().remove(&id);
        if f.is_some() {
            self.watched.fetch_sub(1, Ordering::SeqCst);
        }
        f
    }

    /// The request `id` is over; `gone`: without its reply being taken.
    fn settle(&self, id: u32, gone: bool) {
        // One atomic load for requests nobody watches (nearly all).
        if self.watched.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(f) = self.unwatch(id) {
            if gone {
                f();
            }
        }
    }

    /// A guard for request `id`: when dropped before `replied`, the
    /// request's watcher (if any) is told.
    pub(crate) fn guard(&self, id: u32) -> Watching<'_> {
        Watching {
            watch: self,
            id,
            replied: false,
        }
    }
}

pub(crate) struct Watching<'a> {
    watch: &'a AbortWatch,
    id: u32,
    pub(crate) replied: bool,
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.watch.settle(self.id, !self.replied);
    }
}

/// Tells a protocol layer that the embedder started watching a request.
///
/// Some departures cost something to watch on every request (HTTP/3: the
/// stream's `stopped()` future takes the QUIC connection's lock and
/// registers a notification on each poll), while nearly no handler looks
/// at its signal. Such a layer puts one of these in the request's
/// extensions; the dispatcher hands it to the request's responder, and
/// [`crate::Server::watch_abort`] fires it after registering the watcher.
/// The layer starts its check only then: a departure that happened
/// earlier is found at once by that first check, and dropping the request
/// then tells the watcher just registered. Cost per request that carries
/// one: an `Arc` and the extension; telling it, an atomic store and a wake.
#[derive(Clone, Default)]
pub(crate) struct WatchWanted(Arc<Wanted>);

#[derive(Default)]
struct Wanted {
    told: AtomicBool,
    waker: AtomicWaker,
}

impl WatchWanted {
    /// The embedder watches the request from now on.
    pub(crate) fn tell(&self) {
        self.0.told.store(true, Ordering::Release);
        self.0.waker.wake();
    }

    /// Resolves once [`WatchWanted::tell`] was called.
    pub(crate) fn told(&self) -> Told<'_> {
        Told(&self.0)
    }
}

/// The future of [`WatchWanted::told`].
pub(crate) struct Told<'a>(&'a Wanted);

impl Future for Told<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.told.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.0.waker.register(cx.waker());
        // Told between the load and the registration: the wake went nowhere.
        if self.0.told.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn counter() -> (Arc<AtomicUsize>, Callback) {
        let n = Arc::new(AtomicUsize::new(0));
        let m = n.clone();
        (
            n,
            Box::new(move || {
                m.fetch_add(1, Ordering::SeqCst);
            }),
        )
    }

    #[test]
    fn only_unanswered_watched_requests_fire() {
        let w = AbortWatch::default();
        let (fired, f) = counter();
        w.watch(1, f);
        drop(w.guard(1));
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        let (fired, f) = counter();
        w.watch(2, f);
        let mut g = w.guard(2);
        g.replied = true;
        drop(g);
        assert_eq!(fired.load(Ordering::SeqCst), 0);
        assert!(
            w.unwatch(2).is_none(),
            "the answered request's watcher is gone"
        );
        drop(w.guard(3)); // nobody watches: nothing to do
        assert_eq!(w.watched.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn watch_wanted_resolves_when_told_before_or_while_waiting() {
        use futures_util::FutureExt;
        let early = WatchWanted::default();
        assert!(early.told().now_or_never().is_none());
        early.tell();
        assert!(early.told().now_or_never().is_some());

        let late = WatchWanted::default();
        let teller = late.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let told = rt.block_on(async {
            let t = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                teller.tell();
            });
            let r = tokio::time::timeout(std::time::Duration::from_secs(5), late.told()).await;
            t.join().unwrap();
            r
        });
        assert!(told.is_ok(), "a waiting task is woken by tell()");
    }
}
