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
//! zlib-ng is built with a 16,384-entry hash table (32 KB) instead of its
//! 65,536 (128 KB): every message of the shared compressor starts with a
//! reset, and the reset clears that table, 3.3 µs per message at 128 KB
//! against 0.35 at 32 KB in a C loop, for the same bytes on 1 KB to 64 KB
//! JSON; messages of 16 KB and more deflate 4-10% slower for it (more hash
//! collisions to walk). The size is zlib-ng's compile-time `HASH_SIZE`, set
//! by the workspace's `.cargo/config.toml` (docs/websocket.md, *A smaller
//! zlib-ng hash table*); `tests::hash_table_is_small` fails if a build
//! lost it.
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

/// The highest level handed to zlib-ng; `compressionLevel: 9` runs its
/// level 8. zlib-ng's level 9 switches to a rolling hash whose values go
/// up to 32,767 whatever the table's size: with the 16,384-entry table
/// this build uses (see the module's notes) it would index past the table
/// (a C loop crashed on it). Level 8 is the same lazy matcher with a
/// shorter chain and sends no more bytes here: 198.22 against 198.91 per
/// 1 KB JSON message, 1,738.5 against 1,746.25 at 16 KB, 6,524 against
/// 6,526 at 64 KB.
const MAX_LEVEL: c_int = 8;

// SAFETY: the stream and its state are owned by this value alone and only
// used through `&mut self`; zlib-ng keeps no thread-local state.
unsafe impl Send for Deflate {}

// The largest block zlib-ng asked for on this thread (tests only: the
// state, hash table included, is one block).
#[cfg(test)]
thread_local! {
    static LARGEST_ALLOC: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

unsafe extern "C" fn zalloc(_: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
    let n = items as usize * size as usize;
    #[cfg(test)]
    LARGEST_ALLOC.with(|c| c.set(c.get().max(n)));
    // SAFETY: plain malloc, as zlib's own default allocator does.
    unsafe { libc::malloc(n) }
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
            c_int::from(level).min(MAX_LEVEL)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// zlib-ng allocates its deflate state in one block: the 32 KB window
    /// twice over (64 KB), the 64 KB chain table, the pending and symbol
    /// buffers with the state itself (86 KB at memLevel 8) and the hash
    /// table, `HASH_SIZE` two-byte entries. With zlib-ng's default 65,536 entries the block is 350,336
    /// bytes on x86-64 Linux, with the 16,384 of `.cargo/config.toml`
    /// 252,032: a build that lost the setting (a `CFLAGS` in the
    /// environment replaces it; a `libz-ng-sys` built before it is not
    /// rebuilt: delete `target/*/build/libz-ng-sys-*`) is caught here.
    #[test]
    fn hash_table_is_small() {
        LARGEST_ALLOC.with(|c| c.set(0));
        let d = Deflate::new(6, 15, 8).expect("deflateInit2");
        let block = LARGEST_ALLOC.with(|c| c.get());
        drop(d);
        assert!(block > 192 * 1024, "not the state block: {block} bytes");
        assert!(
            block < 256 * 1024,
            "zlib-ng's state is {block} bytes: built with its 128 KB hash table, not HASH_SIZE=16384"
        );
    }

    fn deflate_all(d: &mut Deflate, input: &[u8]) -> Vec<u8> {
        let mut out = vec![MaybeUninit::uninit(); input.len() + 1024];
        let before = d.total_out();
        assert!(d.sync_flush(input, &mut out, false));
        let n = (d.total_out() - before) as usize;
        // SAFETY: zlib-ng wrote exactly the first `n` bytes of `out`.
        out[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect()
    }

    /// Every level, 1 KB to 64 KB of JSON-like text, a reset between
    /// messages as the shared compressor does: each message inflates back
    /// on its own. Level 9 is the one that would index past the smaller
    /// hash table if it reached zlib-ng's level 9 (`MAX_LEVEL`).
    #[test]
    fn every_level_round_trips_with_the_small_table() {
        let text: Vec<u8> = (0..4000)
            .flat_map(|i| {
                format!(
                    "{{\"id\":{i},\"user\":\"user{}\",\"text\":\"hello {}\"}},",
                    i % 13,
                    i * 7 % 101
                )
                .into_bytes()
            })
            .collect();
        for level in 0..=9 {
            let mut d = Deflate::new(level, 15, 8).expect("deflateInit2");
            for len in [1024, 16 * 1024, 64 * 1024] {
                d.reset();
                let packed = deflate_all(&mut d, &text[..len]);
                // A sync flush ends with an empty stored block: Sync
                // inflates everything before it.
                let mut back = Vec::with_capacity(len + 64);
                flate2::Decompress::new(false)
                    .decompress_vec(&packed, &mut back, flate2::FlushDecompress::Sync)
                    .expect("inflate");
                assert_eq!(back, &text[..len], "level {level}, {len} bytes");
            }
        }
    }
}
