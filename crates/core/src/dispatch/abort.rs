//! Telling the embedder that an answer is no longer wanted: the client went
//! away (connection closed, HTTP/2 or HTTP/3 stream reset) or the core
//! already answered for the handler (timeout, 413 mid-upload). This is what
//! the JS side turns into `request.signal`.
//!
//! Watching is opt-in per request: the embedder registers a call-back only
//! when a handler touches the signal. Every request pays one atomic load
//! when it ends (is anyone watching at all?); the map is locked only while
//! some request is watched.

use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    pub(crate) fn settle(&self, id: u32, gone: bool) {
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
}
