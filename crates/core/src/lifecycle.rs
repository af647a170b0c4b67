//! How a server's tasks learn that it is closing: a graceful signal (stop
//! accepting, finish what has started), a forced one (drop everything now),
//! and the tracker the close waits on. Every layer that runs a task holds a
//! clone; none of them needs anything else of the server to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The close signals of one server (each field is a cheap handle).
#[derive(Clone, Default)]
pub(crate) struct Lifecycle {
    /// Stop accepting; let connections finish what they have started.
    pub(crate) shutdown: Signal,
    /// Drop every connection now.
    pub(crate) force: Signal,
    /// Every connection task, so a close can wait for them.
    pub(crate) tracker: TaskTracker,
}

/// A one-way signal: a `CancellationToken` to wait on, and a flag raised
/// before it fires. Why the flag: the token's `is_cancelled` takes its
/// mutex, and a poll of its `cancelled()` future takes that mutex and the
/// lock of its waiter list; the own HTTP/1.1 driver looked at both signals
/// several times per request (~10 locks on a JS request,
/// docs/performance.md §17.7). With the flag, a look is one atomic load;
/// a task that must be woken still registers on the token, once.
#[derive(Clone, Default)]
pub(crate) struct Signal {
    token: CancellationToken,
    raised: Arc<AtomicBool>,
}

impl Signal {
    /// Raises the signal: the flag first, so a task woken by the token
    /// finds it set.
    pub(crate) fn cancel(&self) {
        self.raised.store(true, Ordering::Release);
        self.token.cancel();
    }

    /// Whether the signal was raised: one atomic load, no lock.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// Completes when the signal is raised (the token's future).
    pub(crate) fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// The token, for code that takes one.
    pub(crate) fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_flag_and_the_token_agree() {
        let s = Signal::default();
        let copy = s.clone();
        assert!(!copy.is_cancelled());
        let waiter = tokio::spawn(async move {
            copy.cancelled().await;
            copy.is_cancelled()
        });
        tokio::task::yield_now().await;
        s.cancel();
        assert!(s.is_cancelled());
        assert!(s.token().is_cancelled());
        assert!(waiter.await.unwrap(), "the woken task sees the flag");
    }
}
