//! What the core knows about the files it serves, and the cache that keeps
//! it between requests of a `serveStatic` mount.
//!
//! Resolving a request to a file costs several system calls: a `stat` of the
//! path (and of the index file for a directory), a `canonicalize` to keep
//! symlinks inside the root, probes for `.br`/`.gz` siblings, then `open`,
//! `fstat` and `read`. A [`Resolved`] keeps what they found: the path, the
//! file's identity ([`Stamp`]), its validators and content type as ready
//! header values and, for files up to [`MAX_FILE`], the bytes themselves, so
//! a hit answers with a reference-counted clone and no system call at all.
//!
//! Freshness: an entry is served without a look at the disk for the mount's
//! `revalidate` interval (one second by default). After that, the next
//! request `stat`s the file (and the sibling names) and compares the stamps:
//! unchanged, the entry is good for another interval; changed or gone, it is
//! resolved again from scratch (a deleted file then gives 404). A file
//! written less than [`RACY`] before it was read may change again within the
//! same timestamp tick without its stamp changing, so such an entry is read
//! again at its next check instead of being compared.
//!
//! Bounds: [`MAX_ENTRIES`] entries and [`MAX_BYTES`] of file bytes per
//! server, evicting the least recently used. Larger files are never held:
//! their entry keeps the validators only and each request streams the file,
//! after checking on the open file that it is still the one described.

use bytes::Bytes;
use http::HeaderValue;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::body::encoder::Coding;
use crate::observe::stats::Stats;
use crate::respond::compress::{CompressConfig, Encodings};

/// Entries per server.
pub(crate) const MAX_ENTRIES: usize = 10_000;
/// File bytes held per server.
pub(crate) const MAX_BYTES: usize = 64 * 1024 * 1024;
/// Files up to this size are held whole (and sent with one write).
pub(crate) const MAX_FILE: u64 = 256 * 1024;
/// Default interval between two checks of a cached file.
pub const DEFAULT_REVALIDATE: Duration = Duration::from_secs(1);
/// A file read less than this after its last change is read again at its
/// next check: file systems stamp times with a coarse clock (a scheduler
/// tick; two seconds on FAT), so a second write within the same tick can
/// leave size and times unchanged.
pub(crate) const RACY: Duration = Duration::from_secs(2);
/// Bookkeeping counted per entry besides the file bytes.
const ENTRY_OVERHEAD: usize = 512;

/// The identity of one version of a file: two equal stamps are taken to
/// mean the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    dev: u64,
    #[cfg(unix)]
    ino: u64,
    #[cfg(unix)]
    changed: (i64, i64),
}

impl Stamp {
    pub(crate) fn of(m: &Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Self {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            dev: m.dev(),
            #[cfg(unix)]
            ino: m.ino(),
            #[cfg(unix)]
            changed: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// One file as found at one moment.
pub(crate) struct FileData {
    /// The path it is opened by (not canonical: symlinks stay).
    pub(crate) path: PathBuf,
    pub(crate) stamp: Stamp,
    pub(crate) len: u64,
    pub(crate) modified: Option<SystemTime>,
    /// Strong validator from size and modification time.
    pub(crate) etag: HeaderValue,
    pub(crate) last_modified: Option<HeaderValue>,
    /// `len`, ready for `Content-Length`.
    pub(crate) length: HeaderValue,
    /// The whole file, when it is held.
    pub(crate) bytes: Option<Bytes>,
    /// Held bytes of a file changed just before they were read (see [`RACY`]).
    racy: bool,
}

impl FileData {
    fn new(path: PathBuf, meta: &Metadata, bytes: Option<Bytes>) -> Self {
        let len = meta.len();
        let modified = meta.modified().ok();
        let since_epoch = modified.and_then(|t| t.duration_since(UNIX_EPOCH).ok());
        let mtime = since_epoch.map_or(0, |d| d.as_nanos());
        let etag = HeaderValue::from_str(&format!("\"{len:x}-{mtime:x}\""))
            .expect("hex digits and quotes are a valid header value");
        let last_modified =
            modified.and_then(|m| HeaderValue::from_str(&httpdate::fmt_http_date(m)).ok());
        let racy = bytes.is_some()
            && modified.is_none_or(|m| {
                SystemTime::now()
                    .duration_since(m)
                    .map_or(true, |age| age < RACY)
            });
        Self {
            path,
            stamp: Stamp::of(meta),
            len,
            modified,
            etag,
            last_modified,
            length: HeaderValue::from(len),
            bytes,
            racy,
        }
    }

    /// The file at `path` by its metadata only; `None` when it is not a
    /// regular file.
    pub(crate) fn stat(path: PathBuf) -> Option<Self> {
        let meta = std::fs::metadata(&path).ok()?;
        meta.is_file().then(|| Self::new(path, &meta, None))
    }

    /// The file at `path` with its bytes when it is small enough to hold.
    /// Validators are taken from the open file, so the bytes are at least
    /// as new as the stamp.
    pub(crate) fn read(path: PathBuf) -> Option<Self> {
        let mut file = File::open(&path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let bytes = if meta.len() <= MAX_FILE {
            let mut buf = Vec::with_capacity(meta.len() as usize);
            file.by_ref().take(meta.len()).read_to_end(&mut buf).ok()?;
            if buf.len() as u64 != meta.len() {
                return None; // shrank while read: the caller tries again
            }
            Some(Bytes::from(buf))
        } else {
            None
        };
        Some(Self::new(path, &meta, bytes))
    }

    fn held(&self) -> usize {
        self.bytes.as_ref().map_or(0, Bytes::len)
    }
}

/// A file ready to be served: its data, its content type and the
/// precompressed siblings found next to it.
pub(crate) struct Resolved {
    pub(crate) file: FileData,
    pub(crate) content_type: HeaderValue,
    /// The content type is one the compression defaults apply to (only
    /// those get siblings and `Vary`).
    pub(crate) compressible: bool,
    /// `.br` and `.gz` siblings found, in order of preference.
    pub(crate) siblings: Vec<(Coding, FileData)>,
    /// Forms of the held bytes compressed by the `compression` option,
    /// made once per entry.
    pub(crate) encoded: Encodings,
}

/// Sibling codings in order of preference, with their file extensions.
const SIBLINGS: [(Coding, &str); 2] = [(Coding::Br, "br"), (Coding::Gzip, "gz")];

fn sibling_path(path: &Path, ext: &str) -> PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push(".");
    os.push(ext);
    PathBuf::from(os)
}

/// `path`, once symlinks are resolved, lies inside `root`.
pub(crate) fn inside(path: &Path, root: &Path) -> bool {
    std::fs::canonicalize(path).is_ok_and(|real| real.starts_with(root))
}

impl Resolved {
    /// Describes the regular file at `path`. `root` (a mount's canonical
    /// root) keeps it and its siblings inside; `hold` reads small files
    /// whole for the cache; `wanted` says which sibling codings to look for.
    pub(crate) fn load(
        path: PathBuf,
        root: Option<&Path>,
        hold: bool,
        wanted: impl Fn(Coding) -> bool,
    ) -> Option<Self> {
        let mime = mime_guess::from_path(&path).first_or_octet_stream();
        let content_type = HeaderValue::from_str(mime.essence_str())
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        let compressible = CompressConfig::default().compressible(mime.essence_str());
        let mut siblings = Vec::new();
        if compressible {
            for (c, ext) in SIBLINGS {
                if !wanted(c) {
                    continue;
                }
                let p = sibling_path(&path, ext);
                if root.is_some_and(|r| !inside(&p, r)) {
                    continue;
                }
                let found = if hold {
                    FileData::read(p)
                } else {
                    FileData::stat(p)
                };
                if let Some(f) = found {
                    siblings.push((c, f));
                }
            }
        }
        let file = if hold {
            FileData::read(path)
        } else {
            FileData::stat(path)
        }?;
        Some(Self {
            file,
            content_type,
            compressible,
            siblings,
            encoded: Encodings::default(),
        })
    }

    /// Whether the disk still holds what this entry describes: one `stat`
    /// of the file, and one per sibling name for a compressible file.
    fn current(&self) -> bool {
        let same = |f: &FileData| {
            !f.racy
                && std::fs::metadata(&f.path).is_ok_and(|m| m.is_file() && Stamp::of(&m) == f.stamp)
        };
        if !same(&self.file) {
            return false;
        }
        if !self.compressible {
            return true;
        }
        SIBLINGS.iter().all(|(c, ext)| {
            match self.siblings.iter().find(|(k, _)| k == c) {
                Some((_, f)) => same(f),
                // A sibling that appeared counts as a change.
                None => !sibling_path(&self.file.path, ext).exists(),
            }
        })
    }

    /// Memory charged to the cache for this entry.
    fn size(&self) -> usize {
        let mut n = ENTRY_OVERHEAD + self.file.path.as_os_str().len() + self.file.held();
        for (_, f) in &self.siblings {
            n += ENTRY_OVERHEAD / 2 + f.path.as_os_str().len() + f.held();
        }
        n
    }
}

struct Slot {
    res: Arc<Resolved>,
    /// When the entry was last found current.
    checked: Instant,
    last_used: u64,
    size: usize,
}

struct Inner {
    map: FxHashMap<Vec<u8>, Slot>,
    tick: u64,
    bytes: usize,
}

/// One server's cache of resolved files; see the module documentation.
pub(crate) struct FileCache {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_bytes: usize,
    stats: Arc<Stats>,
}

impl FileCache {
    pub(crate) fn new(max_entries: usize, max_bytes: usize, stats: Arc<Stats>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                map: FxHashMap::default(),
                tick: 0,
                bytes: 0,
            }),
            max_entries: max_entries.max(1),
            max_bytes,
            stats,
        }
    }

    /// The entry for `key`, checked against the disk when it was last
    /// checked `revalidate` or more ago; otherwise resolved anew by `load`
    /// (and stored). `None` when `load` finds nothing (the key is dropped).
    pub(crate) fn get(
        &self,
        key: &[u8],
        revalidate: Duration,
        load: impl FnOnce() -> Option<Resolved>,
    ) -> Option<Arc<Resolved>> {
        let now = Instant::now();
        let due = {
            let mut g = self.inner.lock();
            g.tick += 1;
            let tick = g.tick;
            match g.map.get_mut(key) {
                Some(slot) => {
                    slot.last_used = tick;
                    let due = now.duration_since(slot.checked) >= revalidate;
                    Some((slot.res.clone(), due))
                }
                None => None,
            }
        };
        match due {
            Some((res, false)) => {
                Stats::inc(&self.stats.static_cache_hits);
                return Some(res);
            }
            Some((res, true)) if res.current() => {
                if let Some(slot) = self.inner.lock().map.get_mut(key) {
                    if Arc::ptr_eq(&slot.res, &res) {
                        slot.checked = now;
                    }
                }
                Stats::inc(&self.stats.static_cache_hits);
                return Some(res);
            }
            _ => {}
        }
        Stats::inc(&self.stats.static_cache_misses);
        match load() {
            Some(res) => {
                let res = Arc::new(res);
                self.insert(key, res.clone(), now);
                Some(res)
            }
            None => {
                self.remove(key);
                None
            }
        }
    }

    fn insert(&self, key: &[u8], res: Arc<Resolved>, now: Instant) {
        let size = res.size();
        if size > self.max_bytes {
            self.remove(key);
            return;
        }
        let mut g = self.inner.lock();
        g.tick += 1;
        let slot = Slot {
            res,
            checked: now,
            last_used: g.tick,
            size,
        };
        g.bytes += size;
        if let Some(old) = g.map.insert(key.to_vec(), slot) {
            g.bytes -= old.size;
        }
        if g.map.len() > self.max_entries || g.bytes > self.max_bytes {
            self.shrink(&mut g, key);
        }
        self.publish(&g);
    }

    /// Charges `bytes` more to the entry for `key` if it still holds `res`
    /// (a compressed form was added to it).
    pub(crate) fn grow(&self, key: &[u8], res: &Arc<Resolved>, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut g = self.inner.lock();
        let Some(slot) = g.map.get_mut(key) else {
            return;
        };
        if !Arc::ptr_eq(&slot.res, res) {
            return;
        }
        slot.size += bytes;
        g.bytes += bytes;
        if g.bytes > self.max_bytes {
            self.shrink(&mut g, key);
        }
        self.publish(&g);
    }

    /// Drops the entry for `key` (its file is gone or changed under a
    /// response being made).
    pub(crate) fn remove(&self, key: &[u8]) {
        let mut g = self.inner.lock();
        if let Some(old) = g.map.remove(key) {
            g.bytes -= old.size;
            self.publish(&g);
        }
    }

    /// Evicts least recently used entries (never `keep`, the one just
    /// stored) down to seven eighths of both bounds, so that a stream of
    /// misses pays for one scan per many insertions rather than per each.
    fn shrink(&self, g: &mut Inner, keep: &[u8]) {
        let entries = self.max_entries - self.max_entries / 8;
        let bytes = self.max_bytes - self.max_bytes / 8;
        let mut order: Vec<(u64, Vec<u8>)> = g
            .map
            .iter()
            .filter(|(k, _)| k.as_slice() != keep)
            .map(|(k, s)| (s.last_used, k.clone()))
            .collect();
        order.sort_unstable_by_key(|(used, _)| *used);
        for (_, k) in order {
            if g.map.len() <= entries && g.bytes <= bytes {
                break;
            }
            if let Some(old) = g.map.remove(&k) {
                g.bytes -= old.size;
            }
        }
    }

    fn publish(&self, g: &Inner) {
        self.stats
            .static_cache_entries
            .store(g.map.len() as u64, Relaxed);
        self.stats.static_cache_bytes.store(g.bytes as u64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(path: &Path) -> Option<Resolved> {
        Resolved::load(path.to_path_buf(), None, true, |_| true)
    }

    #[test]
    fn hit_change_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "one").unwrap();
        let stats = Arc::new(Stats::default());
        let cache = FileCache::new(10, 1 << 20, stats.clone());
        let key = path.as_os_str().as_encoded_bytes();
        let a = cache.get(key, Duration::from_secs(60), || resolved(&path));
        assert_eq!(a.unwrap().file.bytes.as_deref(), Some(&b"one"[..]));
        // Within the interval the entry is served as it is.
        let b = cache.get(key, Duration::from_secs(60), || panic!("must hit"));
        assert!(b.is_some());
        assert_eq!(stats.snapshot().static_cache_hits, 1);
        // Due for a check: the changed file is read again.
        std::fs::write(&path, "two!").unwrap();
        let c = cache.get(key, Duration::ZERO, || resolved(&path)).unwrap();
        assert_eq!(c.file.bytes.as_deref(), Some(&b"two!"[..]));
        std::fs::remove_file(&path).unwrap();
        assert!(cache.get(key, Duration::ZERO, || resolved(&path)).is_none());
        assert_eq!(stats.snapshot().static_cache_entries, 0);
        assert_eq!(stats.snapshot().static_cache_bytes, 0);
    }

    #[test]
    fn racy_entries_are_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "x").unwrap();
        let r = resolved(&path).unwrap();
        // Just written: the stamp alone cannot be trusted yet.
        assert!(r.file.racy);
        assert!(!r.current());
        let old = SystemTime::now() - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let r = resolved(&path).unwrap();
        assert!(!r.file.racy);
        assert!(r.current());
    }

    #[test]
    fn bounds_evict_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(Stats::default());
        let cache = FileCache::new(8, 1 << 20, stats.clone());
        let long = Duration::from_secs(60);
        let paths: Vec<PathBuf> = (0..20)
            .map(|i| {
                let p = dir.path().join(format!("{i}.txt"));
                std::fs::write(&p, "x").unwrap();
                p
            })
            .collect();
        for p in &paths {
            cache
                .get(p.as_os_str().as_encoded_bytes(), long, || resolved(p))
                .unwrap();
            // The first file stays in use, so it is never the victim.
            cache.get(paths[0].as_os_str().as_encoded_bytes(), long, || {
                resolved(&paths[0])
            });
        }
        let s = stats.snapshot();
        assert!(s.static_cache_entries <= 8, "{s:?}");
        assert!(cache
            .inner
            .lock()
            .map
            .contains_key(paths[0].as_os_str().as_encoded_bytes()));
        assert!(cache
            .inner
            .lock()
            .map
            .contains_key(paths[19].as_os_str().as_encoded_bytes()));

        // Bytes: 64 KiB files in a 200 KiB budget.
        let small = FileCache::new(100, 200 * 1024, stats.clone());
        let body = vec![7u8; 64 * 1024];
        for p in &paths[..10] {
            std::fs::write(p, &body).unwrap();
            small
                .get(p.as_os_str().as_encoded_bytes(), long, || resolved(p))
                .unwrap();
            assert!(small.inner.lock().bytes <= 200 * 1024);
        }
        assert!(stats.snapshot().static_cache_bytes <= 200 * 1024);
    }

    #[test]
    fn large_files_keep_validators_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        std::fs::write(&path, vec![1u8; MAX_FILE as usize + 1]).unwrap();
        let r = resolved(&path).unwrap();
        assert!(r.file.bytes.is_none());
        assert_eq!(r.file.len, MAX_FILE + 1);
        assert!(r.size() < 4096);
    }
}
