//! Conversions shared by the binding's modules: core errors to JS errors,
//! JS milliseconds to durations, JS buffers to bodies and batches back to
//! JS buffers, JS callbacks to functions callable from any thread.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use httpy_core::Bytes;

/// Bodies smaller than this are copied out of the JS buffer: a copy is
/// cheaper than keeping a reference whose release must hop back to the JS
/// thread.
pub(crate) const ZERO_COPY_MIN: usize = 16 * 1024;

/// A core error as a JS error whose message starts with `CODE: ` (the TS
/// layer turns that prefix into `err.code`).
pub(crate) fn core_error(status: Status, e: httpy_core::Error) -> Error {
    Error::new(status, format!("{}: {}", e.code(), e.message()))
}

/// An invalid option or route, named by `code` (`ERR_HTTPY_…`).
pub(crate) fn invalid(code: &str, message: impl std::fmt::Display) -> Error {
    Error::new(Status::InvalidArg, format!("{code}: {message}"))
}

/// Milliseconds from JS (negative reads as 0).
pub(crate) fn ms(v: f64) -> Duration {
    Duration::from_micros((v.max(0.0) * 1000.0) as u64)
}

/// A status code from JS, saturated to the u16 the core takes.
pub(crate) fn status(v: u32) -> u16 {
    v.min(u16::MAX as u32) as u16
}

/// JS buffers the core has finished with, kept until the JS thread next
/// calls in and drops them there.
///
/// A large body is handed to the core by reference (no copy), so the JS
/// buffer must stay alive until the socket has taken its bytes. Dropping the
/// reference on a Tokio thread makes napi-rs post the release back to the JS
/// thread through a threadsafe function: one wake-up of the JS event loop per
/// body, measured at ~0.5 extra sleeps of the JS thread per request and ~10 µs
/// of server CPU per request for 100 KB responses at 16 connections (a sleep
/// and wake costs several µs of CPU on each side on a VM). Parking the
/// reference here costs a lock and a push; the JS thread empties the list on
/// its next call (every batch taken, every response given), where a drop is a
/// direct unref. Past `HELD_MAX` bytes waiting, buffers are released the slow
/// way instead, so an idle server never holds more than that.
#[derive(Clone, Default)]
pub(crate) struct Releases(Arc<Mutex<Held>>);

#[derive(Default)]
pub(crate) struct Held {
    buffers: Vec<Buffer>,
    bytes: usize,
}

/// Bytes waiting for release above which a finished buffer is released at
/// once (through napi-rs's threadsafe function) rather than parked.
const HELD_MAX: usize = 64 * 1024 * 1024;

impl Releases {
    // A poisoned lock only means a panic elsewhere held it; the list itself
    // is always consistent (a push or a take).
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A body from a JS buffer: large ones referenced, small ones copied.
    pub(crate) fn bytes_of(&self, b: Buffer) -> Bytes {
        if b.len() >= ZERO_COPY_MIN {
            Bytes::from_owner(Lent {
                buf: Some(b),
                home: self.clone(),
            })
        } else {
            Bytes::copy_from_slice(&b)
        }
    }

    /// Drops what the core has finished with. Call on the JS thread only.
    pub(crate) fn release(&self) {
        let done = {
            let mut held = self.lock();
            if held.buffers.is_empty() {
                return;
            }
            held.bytes = 0;
            std::mem::take(&mut held.buffers)
        };
        drop(done);
    }
}

/// A JS buffer lent to the core; on drop it goes back to its [`Releases`].
struct Lent {
    buf: Option<Buffer>,
    home: Releases,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_deref().unwrap_or(&[])
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let Some(buf) = self.buf.take() else { return };
        let mut held = self.home.lock();
        if held.bytes + buf.len() > HELD_MAX {
            drop(held);
            drop(buf);
            return;
        }
        held.bytes += buf.len();
        held.buffers.push(buf);
    }
}

/// A batch as JS takes it: `[records, ...external]`.
pub(crate) fn batch(records: Vec<u8>, external: Vec<Bytes>) -> Vec<Buffer> {
    let mut out = Vec::with_capacity(1 + external.len());
    out.push(Buffer::from(records));
    // `Vec::from(Bytes)` reuses the allocation when the body is uniquely
    // owned, so large bodies reach JS without a copy.
    out.extend(
        external
            .into_iter()
            .map(|b| Buffer::from(Vec::<u8>::from(b))),
    );
    out
}

/// A JS callback called from Rust threads with a number.
pub(crate) type EventFn = ThreadsafeFunction<u32, (), u32, Status, false>;

/// Builds a callback JS can be told things through from any thread.
pub(crate) fn event_fn(f: Function<u32, ()>) -> Result<EventFn> {
    f.build_threadsafe_function()
        .callee_handled::<false>()
        .build()
}
