//! Giving freed heap back to the OS after bursts of parked connections.
//!
//! Parking (see `proto::h1`) frees ~16 KiB of hyper buffers per idle
//! connection, but glibc's allocator keeps freed memory mapped: after a
//! burst of thousands of new connections the process would stay at its peak
//! RSS though the buffers are gone. Once a second, if many connections were
//! parked since the last look, `malloc_trim` returns the free pages
//! (on the blocking pool: it walks the whole heap). Other allocators and
//! platforms return memory by themselves; there this is a no-op.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Parks since the last trim, across servers in the process.
static PARKED: AtomicU64 = AtomicU64::new(0);

/// Enough freed buffers (~4 MiB) to be worth a walk of the heap.
const WORTH_TRIMMING: u64 = 256;

pub(crate) fn note_park() {
    PARKED.fetch_add(1, Relaxed);
}

/// Runs until the server shuts down.
pub(crate) async fn run(shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
        if PARKED.load(Relaxed) >= WORTH_TRIMMING {
            PARKED.store(0, Relaxed);
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free memory of the allocator's own
    // arenas; it is thread-safe and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
