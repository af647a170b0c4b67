//! Conversions shared by the binding's modules: core errors to JS errors,
//! JS milliseconds to durations, JS buffers to bodies and batches back to
//! JS buffers, JS callbacks to functions callable from any thread.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
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

/// A body from a JS buffer: large ones referenced, small ones copied.
pub(crate) fn bytes_of(b: Buffer) -> Bytes {
    if b.len() >= ZERO_COPY_MIN {
        Bytes::from_owner(b)
    } else {
        Bytes::copy_from_slice(&b)
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
