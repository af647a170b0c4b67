//! The WebSocket compressor's deflate engine: zlib-ng, the C library (what
//! Bun's WebSocket uses), through `libz-ng-sys`, behind a small safe type.
//!
//! Why C here when the rest of the core's compression is pure Rust: on the
//! short messages WebSocket traffic is made of, every message of the shared
//! compressor is a reset plus one sync-flushed deflate, and zlib-ng does
//! that for less CPU than zlib-rs at the levels that build Huffman codes
//! (docs/websocket.md, *The deflate engine*, has the end-to-end numbers
//! that decided it). Inflating stays on `flate2` with zlib-rs: zlib-ng's
//! inflate was slower in the same echo.
//!
//! The unsafe surface is the four calls below on a stream that is only
//! ever touched through `&mut self`; the stream is boxed because zlib-ng's
//! state keeps a pointer back to it.

use libz_ng_sys as z;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_uint, c_void};

/// A raw-deflate (no zlib header) compressor.
pub(super) struct Deflate {
    strm: Box<z::z_stream>,
}

// SAFETY: the stream and its state are owned by this value alone and only
// used through `&mut self`; zlib-ng keeps no thread-local state.
unsafe impl Send for Deflate {}

unsafe extern "C" fn zalloc(_: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
    // SAFETY: plain malloc, as zlib's own default allocator does.
    unsafe { libc::malloc(items as usize * size as usize) }
}

unsafe extern "C" fn zfree(_: *mut c_void, p: *mut c_void) {
    // SAFETY: `p` came from `zalloc` above.
    unsafe { libc::free(p) }
}

/// A stream before `*Init2`: no buffers, our allocator.
fn empty_stream() -> z::z_stream {
    z::z_stream {
        next_in: std::ptr::null_mut(),
        avail_in: 0,
        total_in: 0,
        next_out: std::ptr::null_mut(),
        avail_out: 0,
        total_out: 0,
        msg: std::ptr::null_mut(),
        state: std::ptr::null_mut(),
        zalloc,
        zfree,
        opaque: std::ptr::null_mut(),
        data_type: 0,
        adler: 0,
        reserved: 0,
    }
}

/// `deflateInit2` refused to build a compressor (out of memory, or, for
/// the fault tests, a method it does not know); the zlib return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InitFailed(pub(super) c_int);

/// zlib's `Z_DEFLATED`, the only compression method there is.
const Z_DEFLATED: c_int = 8;

impl Deflate {
    /// `window_bits` 9..=15, `mem_level` 1..=9, `level` 0..=9; anything
    /// else is clamped (zlib-ng would refuse it). Fails only when zlib-ng
    /// cannot allocate its state.
    pub(super) fn new(level: u8, window_bits: u8, mem_level: u8) -> Result<Self, InitFailed> {
        Self::init(level, window_bits, mem_level, Z_DEFLATED)
    }

    /// `new` with a method zlib-ng refuses, so the failure path runs on a
    /// real `deflateInit2` error (the fault tests, `deflate.rs`).
    pub(super) fn new_refused() -> Result<Self, InitFailed> {
        Self::init(6, 15, 8, Z_DEFLATED + 1)
    }

    fn init(level: u8, window_bits: u8, mem_level: u8, method: c_int) -> Result<Self, InitFailed> {
        let mut strm = Box::new(empty_stream());
        // SAFETY: a zeroed stream with allocator functions set is what
        // deflateInit2 expects; negative window bits mean raw deflate.
        let rc = unsafe {
            z::deflateInit2_(
                &mut *strm,
                c_int::from(level.min(9)),
                method,
                -c_int::from(window_bits.clamp(9, 15)),
                c_int::from(mem_level.clamp(1, 9)),
                0, // Z_DEFAULT_STRATEGY
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        if rc != 0 {
            // Nothing was allocated (zlib frees what it took before
            // failing), so there is no stream to end.
            return Err(InitFailed(rc));
        }
        Ok(Self { strm })
    }

    /// Forgets all history (the next input starts a new block and may not
    /// refer to anything before it); keeps the allocated state.
    pub(super) fn reset(&mut self) {
        // SAFETY: the stream was initialised in `new` and not ended.
        unsafe { z::deflateReset(&mut *self.strm) };
    }

    pub(super) fn total_in(&self) -> u64 {
        self.strm.total_in as u64
    }

    pub(super) fn total_out(&self) -> u64 {
        self.strm.total_out as u64
    }

    /// One `deflate(Z_SYNC_FLUSH)` call over `input` into `out`; false if
    /// zlib-ng reported an error (impossible with a valid state, except for
    /// the fault tests' `broken` call, which passes a flush mode zlib-ng
    /// refuses). How much was written is `total_out`'s growth: `out` may be
    /// uninitialised, and exactly that many bytes of it are then written.
    pub(super) fn sync_flush(
        &mut self,
        input: &[u8],
        out: &mut [MaybeUninit<u8>],
        broken: bool,
    ) -> bool {
        let s = &mut *self.strm;
        // zlib counts in u32: larger slices are fed in several calls by the
        // caller's loop (it retries until all input is consumed).
        s.next_in = input.as_ptr().cast_mut();
        s.avail_in = input.len().min(u32::MAX as usize) as c_uint;
        s.next_out = out.as_mut_ptr().cast();
        s.avail_out = out.len().min(u32::MAX as usize) as c_uint;
        // Z_SYNC_FLUSH; the fault tests' mode is past Z_BLOCK, the largest
        // deflate takes, so it returns Z_STREAM_ERROR having done nothing.
        let flush = if broken { 99 } else { 2 };
        // SAFETY: next_in/next_out point into live slices of the given
        // lengths for the duration of the call; deflate only reads the
        // input (the `*mut` is zlib's API) and only writes the output.
        let rc = unsafe { z::deflate(s, flush) };
        s.next_in = std::ptr::null_mut();
        s.next_out = std::ptr::null_mut();
        s.avail_in = 0;
        s.avail_out = 0;
        // Z_OK, or Z_BUF_ERROR when there was nothing to do.
        rc == 0 || rc == -5
    }
}

impl Drop for Deflate {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, ended once here.
        unsafe { z::deflateEnd(&mut *self.strm) };
    }
}
