//! Fault injection for the WebSocket compressor: proof, from a real client,
//! that a compressor that cannot be built or a deflate that fails half-way
//! closes the socket with 1011 instead of panicking or sending a truncated
//! message, and that the server keeps serving.
//!
//! zlib-ng only fails on these paths when memory runs out, which a test
//! cannot arrange, so the failures are provoked on demand: with the
//! environment variable `HTTPY_TEST_WS_DEFLATE_FAULT` set when the process
//! first compresses a message, a message that starts with [`INIT_MARK`] finds
//! no compressor and builds one with arguments `deflateInit2` refuses, and
//! one that starts with [`MIDWAY_MARK`] gets a first deflate call with too
//! little output room and a second one with a flush mode `deflate` refuses.
//! Either way zlib-ng itself returns the error; only the trigger is staged.
//!
//! Cost when not armed: one load of an initialised `OnceLock` per
//! compressed message.

use std::sync::OnceLock;

/// The environment variable that arms the faults (any non-empty value).
pub const DEFLATE_FAULT_ENV: &str = "HTTPY_TEST_WS_DEFLATE_FAULT";

/// A message starting with this finds its compressor's construction refused.
pub const INIT_MARK: &[u8] = b"httpy-test-fault:deflate-init";

/// A message starting with this has its deflate fail after the first call.
pub const MIDWAY_MARK: &[u8] = b"httpy-test-fault:deflate-midway";

/// Which fault a message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    Init,
    Midway,
}

/// The fault `data` asks for, when the faults are armed.
pub(super) fn deflate_fault(data: &[u8]) -> Option<Fault> {
    static ARMED: OnceLock<bool> = OnceLock::new();
    if !*ARMED.get_or_init(|| std::env::var_os(DEFLATE_FAULT_ENV).is_some_and(|v| !v.is_empty())) {
        return None;
    }
    if data.starts_with(INIT_MARK) {
        Some(Fault::Init)
    } else if data.starts_with(MIDWAY_MARK) {
        Some(Fault::Midway)
    } else {
        None
    }
}
