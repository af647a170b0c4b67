//! How a server's tasks learn that it is closing: a graceful signal (stop
//! accepting, finish what has started), a forced one (drop everything now),
//! and the tracker the close waits on. Every layer that runs a task holds a
//! clone; none of them needs anything else of the server to stop.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The close signals of one server (each field is a cheap handle).
#[derive(Clone, Default)]
pub(crate) struct Lifecycle {
    /// Stop accepting; let connections finish what they have started.
    pub(crate) shutdown: CancellationToken,
    /// Drop every connection now.
    pub(crate) force: CancellationToken,
    /// Every connection task, so a close can wait for them.
    pub(crate) tracker: TaskTracker,
}
