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
//! Levels 5 and 6 run zlib's algorithm rather than zlib-ng's own: zlib-ng
//! answers them with its "medium" strategy, which on 1 KB JSON sends 0.17
//! bytes more per message than zlib (what uWebSockets.js and `ws` use) and
//! costs more, where its lazy-matching strategy (level 7 and up) given
//! zlib's parameters for the level sends zlib's bytes exactly
//! (docs/websocket.md, *zlib's level 6 on zlib-ng*).
//!
//! The unsafe surface is the five calls below on a stream that is only
//! ever touched through `&mut self`; the stream is boxed because zlib-ng's
//! state keeps a pointer back to it.

use libz_ng_sys as z;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_uint, c_void};

/// A raw-deflate (no zlib header) compressor.
pub(super) struct Deflate {
    strm: Box<z::z_stream>,
    /// zlib's match parameters for the level, when zlib-ng's table would
    /// pick other ones (see [`ZLIB_LAZY`]); applied after every reset.
    tune: Option<Tune>,
}

/// `good_length`, `max_lazy`, `nice_length`, `max_chain` (zlib's `config`).
type Tune = [c_int; 4];

/// zlib's parameters for levels 5 and 6 (its `configuration_table`): lazy
/// matching, which zlib-ng runs at level 7 and up and replaces by its
/// "medium" strategy at 3-6. Given these, zlib-ng's lazy matcher sends the
/// same bytes as zlib at level 5 or 6 on the benchmark's 1 KB JSON (198.75
/// bytes per message against 198.92 from its medium strategy), in 8% less
/// time in a C loop of 64,000 messages (12.8 against 13.9 µs, medians).
/// Cost: one `deflateTune` call (four stores) per reset. Level 4 stays
/// medium: zlib's level-4 parameters send 207 bytes there against 200.
const ZLIB_LAZY: [(u8, Tune); 2] = [(5, [8, 16, 32, 32]), (6, [8, 16, 128, 128])];

/// zlib-ng's first level whose strategy is lazy matching (`deflate_slow`).
const LAZY_LEVEL: c_int = 7;

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
        let level = level.min(9);
        let tune = ZLIB_LAZY.iter().find(|(l, _)| *l == level).map(|(_, t)| *t);
        let zng_level = if tune.is_some() {
            LAZY_LEVEL
        } else {
            c_int::from(level)
        };
        // SAFETY: a zeroed stream with allocator functions set is what
        // deflateInit2 expects; negative window bits mean raw deflate.
        let rc = unsafe {
            z::deflateInit2_(
                &mut *strm,
                zng_level,
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
        let mut d = Self { strm, tune };
        d.apply_tune();
        Ok(d)
    }

    /// Forgets all history (the next input starts a new block and may not
    /// refer to anything before it); keeps the allocated state.
    pub(super) fn reset(&mut self) {
        // SAFETY: the stream was initialised in `new` and not ended.
        unsafe { z::deflateReset(&mut *self.strm) };
        // The reset put back zlib-ng's parameters for its level.
        self.apply_tune();
    }

    fn apply_tune(&mut self) {
        if let Some([good, lazy, nice, chain]) = self.tune {
            // SAFETY: the stream was initialised in `new` and not ended;
            // deflateTune only stores the four numbers in its state.
            unsafe { z::deflateTune(&mut *self.strm, good, lazy, nice, chain) };
        }
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
