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

impl Deflate {
    /// `window_bits` 9..=15, `mem_level` 1..=9, `level` 0..=9; anything
    /// else is clamped (zlib-ng would refuse it).
    pub(super) fn new(level: u8, window_bits: u8, mem_level: u8) -> Self {
        let mut strm = Box::new(empty_stream());
        // SAFETY: a zeroed stream with allocator functions set is what
        // deflateInit2 expects; negative window bits mean raw deflate.
        let rc = unsafe {
            z::deflateInit2_(
                &mut *strm,
                c_int::from(level.min(9)),
                8, // Z_DEFLATED
                -c_int::from(window_bits.clamp(9, 15)),
                c_int::from(mem_level.clamp(1, 9)),
                0, // Z_DEFAULT_STRATEGY
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        // Only out of memory can fail with these arguments.
        assert_eq!(rc, 0, "zlib-ng deflateInit2 failed ({rc})");
        Self { strm }
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
    /// zlib-ng reported an error (impossible with a valid state).
    pub(super) fn sync_flush(&mut self, input: &[u8], out: &mut [u8]) -> bool {
        let s = &mut *self.strm;
        // zlib counts in u32: larger slices are fed in several calls by the
        // caller's loop (it retries until all input is consumed).
        s.next_in = input.as_ptr().cast_mut();
        s.avail_in = input.len().min(u32::MAX as usize) as c_uint;
        s.next_out = out.as_mut_ptr();
        s.avail_out = out.len().min(u32::MAX as usize) as c_uint;
        // SAFETY: next_in/next_out point into live slices of the given
        // lengths for the duration of the call; deflate only reads the
        // input (the `*mut` is zlib's API).
        let rc = unsafe {
            z::deflate(s, 2 /* Z_SYNC_FLUSH */)
        };
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
