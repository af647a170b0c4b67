//! The route cache: responses of routes registered with `{cache: {ttl}}`
//! (or `cached({ttl})`) answered by the core after the first one, without
//! entering JS.
//!
//! Key: path + query (GET and HEAD share entries; only GET responses are
//! stored, since a HEAD handler may leave the body out), refined by the
//! request headers the response names in `Vary`. Only whole-body 200
//! responses without `Cache-Control: no-store/private`, `Set-Cookie` or
//! `Vary: *` are kept. The cache is bounded by entries and bytes, evicting
//! the least recently used. Concurrent misses for one key wait for the first
//! one's answer instead of each running the handler.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::body::canned::Canned;
use crate::respond::compress::Encodings;

/// Default bounds of one server's cache.
pub(crate) const MAX_ENTRIES: usize = 10_000;
pub(crate) const MAX_BYTES: usize = 64 * 1024 * 1024;

/// One stored response.
pub(crate) struct Variant {
    vary_values: Vec<Option<HeaderValue>>,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    expires: Instant,
    size: usize,
    /// Compressed forms made on demand, so hits do not compress again.
    pub(crate) encoded: Encodings,
    /// The HTTP/1.1 bytes of this answer, made at the first hit the own
    /// driver answers from them (`None`: this answer is not one it can).
    pub(crate) h1: OnceLock<Option<Canned>>,
}

struct Entry {
    vary: Vec<HeaderName>,
    variants: Vec<Arc<Variant>>,
    last_used: u64,
    /// Set while a miss for this key is being answered by JS.
    filling: Option<watch::Receiver<()>>,
}

struct Inner {
    map: FxHashMap<String, Entry>,
    tick: u64,
    bytes: usize,
    variants: usize,
}

pub(crate) struct RouteCache {
    inner: Arc<Mutex<Inner>>,
    max_entries: usize,
    max_bytes: usize,
}

/// Result of [`RouteCache::lookup`].
pub(crate) enum Lookup {
    Hit(Arc<Variant>),
    /// This request answers the miss; store its reply with [`Fill::store`].
    Fill(Fill),
    /// Another request is answering this key; wait, then look up again.
    Wait(watch::Receiver<()>),
}

/// The right (and duty) to fill one key. Dropping it without storing wakes
/// the waiters, who then go to the handler themselves.
pub(crate) struct Fill {
    key: String,
    _done: watch::Sender<()>,
    inner: Option<Arc<Mutex<Inner>>>,
}

impl Drop for Fill {
    fn drop(&mut self) {
        // Not stored: clear the marker (and the entry if it holds nothing)
        // so the next request fills the key afresh.
        if let Some(inner) = self.inner.take() {
            let mut g = inner.lock();
            if let Some(e) = g.map.get_mut(&self.key) {
                e.filling = None;
                if e.variants.is_empty() {
                    g.map.remove(&self.key);
                }
            }
        }
    }
}

fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut out = Vec::new();
    for v in headers.get_all(VARY) {
        for name in v.to_str().ok()?.split(',') {
            let name = name.trim();
            if name == "*" {
                return None;
            }
            if name.is_empty() {
                continue;
            }
            out.push(HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()?);
        }
    }
    Some(out)
}

fn values_of(names: &[HeaderName], req: &HeaderMap) -> Vec<Option<HeaderValue>> {
    names.iter().map(|n| req.get(n).cloned()).collect()
}

impl RouteCache {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                map: FxHashMap::default(),
                tick: 0,
                bytes: 0,
                variants: 0,
            })),
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    pub(crate) fn key(path: &str, query: &str) -> String {
        let mut k = String::with_capacity(path.len() + query.len() + 1);
        k.push_str(path);
        k.push('?');
        k.push_str(query);
        k
    }

    /// Finds a fresh response for `key` and these request headers. `fill`
    /// says whether this request may fill a miss (GET) or must not (HEAD).
    pub(crate) fn lookup(&self, key: &str, req: &HeaderMap, fill: bool) -> Lookup {
        let now = Instant::now();
        let mut g = self.inner.lock();
        g.tick += 1;
        let tick = g.tick;
        let inner = &mut *g;
        if let Some(e) = inner.map.get_mut(key) {
            e.last_used = tick;
            let values = values_of(&e.vary, req);
            let before = e.variants.len();
            let mut freed = 0;
            e.variants.retain(|v| {
                let keep = v.expires > now;
                if !keep {
                    freed += v.size;
                }
                keep
            });
            let dropped = before - e.variants.len();
            if let Some(v) = e.variants.iter().find(|v| v.vary_values == values) {
                let v = v.clone();
                inner.bytes -= freed;
                inner.variants -= dropped;
                return Lookup::Hit(v);
            }
            inner.bytes -= freed;
            inner.variants -= dropped;
            if let Some(rx) = &e.filling {
                if rx.has_changed().is_ok() {
                    return Lookup::Wait(rx.clone());
                }
            }
        }
        if !fill {
            // HEAD never fills: hand it to the handler.
            let (tx, _) = watch::channel(());
            return Lookup::Fill(Fill {
                key: String::new(),
                _done: tx,
                inner: None,
            });
        }
        let (tx, rx) = watch::channel(());
        let e = inner.map.entry(key.to_string()).or_insert_with(|| Entry {
            vary: Vec::new(),
            variants: Vec::new(),
            last_used: tick,
            filling: None,
        });
        e.filling = Some(rx);
        Lookup::Fill(Fill {
            key: key.to_string(),
            _done: tx,
            inner: Some(self.inner.clone()),
        })
    }

    /// [`lookup`](Self::lookup) for a key whose answers vary on no request
    /// header: the fresh answer if there is one, with the same bookkeeping
    /// (use tick, expired answers dropped). `None` for anything else (a
    /// miss, an entry that varies): the caller then takes the general path,
    /// which looks again.
    pub(crate) fn lookup_plain(&self, key: &str) -> Option<Arc<Variant>> {
        let now = Instant::now();
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let e = inner.map.get_mut(key)?;
        if !e.vary.is_empty() {
            return None;
        }
        inner.tick += 1;
        e.last_used = inner.tick;
        let v = e.variants.iter().find(|v| v.vary_values.is_empty())?;
        if v.expires > now {
            return Some(v.clone());
        }
        // Expired: the general path drops it (and fills the key afresh).
        None
    }

    /// Stores a reply for a miss if it may be cached; returns whether it was.
    pub(crate) fn store(
        &self,
        mut fill: Fill,
        req: &HeaderMap,
        status: StatusCode,
        headers: &HeaderMap,
        body: &Bytes,
        ttl: Duration,
    ) -> bool {
        if fill.key.is_empty() || !cacheable(status, headers) {
            return false;
        }
        let Some(vary) = vary_names(headers) else {
            return false;
        };
        let size = body.len()
            + headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len())
                .sum::<usize>()
            + 128;
        if size > self.max_bytes {
            return false;
        }
        let variant = Arc::new(Variant {
            vary_values: values_of(&vary, req),
            status,
            headers: headers.clone(),
            body: body.clone(),
            expires: Instant::now() + ttl,
            size,
            encoded: Encodings::default(),
            h1: OnceLock::new(),
        });
        fill.inner = None;
        let mut g = self.inner.lock();
        g.tick += 1;
        let tick = g.tick;
        let inner = &mut *g;
        let e = inner.map.entry(fill.key.clone()).or_insert_with(|| Entry {
            vary: Vec::new(),
            variants: Vec::new(),
            last_used: tick,
            filling: None,
        });
        e.filling = None;
        e.last_used = tick;
        if e.vary != vary {
            // The response changed what it varies on: older variants were
            // keyed differently and are dropped.
            for v in e.variants.drain(..) {
                inner.bytes -= v.size;
                inner.variants -= 1;
            }
            e.vary = vary;
        }
        if let Some(i) = e
            .variants
            .iter()
            .position(|v| v.vary_values == variant.vary_values)
        {
            let old = e.variants.remove(i);
            inner.bytes -= old.size;
            inner.variants -= 1;
        }
        e.variants.push(variant);
        inner.bytes += size;
        inner.variants += 1;
        Self::evict(inner, self.max_entries, self.max_bytes, &fill.key);
        true
    }

    /// Drops least recently used keys until both bounds hold (the key just
    /// stored is kept).
    fn evict(inner: &mut Inner, max_entries: usize, max_bytes: usize, keep: &str) {
        while inner.variants > max_entries || inner.bytes > max_bytes {
            let victim = inner
                .map
                .iter()
                .filter(|(k, e)| k.as_str() != keep && !e.variants.is_empty())
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            let Some(k) = victim else { break };
            if let Some(e) = inner.map.remove(&k) {
                for v in e.variants {
                    inner.bytes -= v.size;
                    inner.variants -= 1;
                }
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let g = self.inner.lock();
        (g.variants, g.bytes)
    }
}

fn cacheable(status: StatusCode, headers: &HeaderMap) -> bool {
    if status != StatusCode::OK || headers.contains_key(SET_COOKIE) {
        return false;
    }
    !headers.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().map_or(true, |s| {
            let s = s.to_ascii_lowercase();
            s.contains("no-store") || s.contains("private") || s.contains("no-cache")
        })
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn fill(c: &RouteCache, key: &str, req: &HeaderMap) -> Fill {
        match c.lookup(key, req, true) {
            Lookup::Fill(f) => f,
            _ => panic!("expected a miss for {key}"),
        }
    }

    #[tokio::test]
    async fn hit_after_store_and_expiry() {
        let c = RouteCache::new(10, 1 << 20);
        let req = HeaderMap::new();
        let f = fill(&c, "/a?", &req);
        assert!(c.store(
            f,
            &req,
            StatusCode::OK,
            &hm(&[]),
            &Bytes::from("x"),
            Duration::from_millis(50)
        ));
        assert!(matches!(c.lookup("/a?", &req, true), Lookup::Hit(_)));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(matches!(c.lookup("/a?", &req, true), Lookup::Fill(_)));
    }

    #[test]
    fn concurrent_miss_waits() {
        let c = RouteCache::new(10, 1 << 20);
        let req = HeaderMap::new();
        let f = fill(&c, "/a?", &req);
        let Lookup::Wait(rx) = c.lookup("/a?", &req, true) else {
            panic!("second miss must wait")
        };
        drop(f);
        // Dropping the filler wakes the waiter.
        assert!(rx.has_changed().is_err());
        assert!(matches!(c.lookup("/a?", &req, true), Lookup::Fill(_)));
    }

    #[test]
    fn not_cacheable() {
        let c = RouteCache::new(10, 1 << 20);
        let req = HeaderMap::new();
        let t = Duration::from_secs(60);
        for h in [
            hm(&[("cache-control", "no-store")]),
            hm(&[("cache-control", "private, max-age=5")]),
            hm(&[("set-cookie", "a=1")]),
            hm(&[("vary", "*")]),
        ] {
            let f = fill(&c, "/a?", &req);
            assert!(!c.store(f, &req, StatusCode::OK, &h, &Bytes::from("x"), t));
        }
        let f = fill(&c, "/a?", &req);
        assert!(!c.store(f, &req, StatusCode::CREATED, &hm(&[]), &Bytes::from("x"), t));
        assert!(matches!(c.lookup("/a?", &req, true), Lookup::Fill(_)));
    }

    #[test]
    fn vary_splits_variants() {
        let c = RouteCache::new(10, 1 << 20);
        let t = Duration::from_secs(60);
        let en = hm(&[("accept-language", "en")]);
        let fr = hm(&[("accept-language", "fr")]);
        let f = fill(&c, "/a?", &en);
        c.store(
            f,
            &en,
            StatusCode::OK,
            &hm(&[("vary", "Accept-Language")]),
            &Bytes::from("hello"),
            t,
        );
        assert!(matches!(c.lookup("/a?", &en, true), Lookup::Hit(_)));
        let f = fill(&c, "/a?", &fr);
        c.store(
            f,
            &fr,
            StatusCode::OK,
            &hm(&[("vary", "Accept-Language")]),
            &Bytes::from("bonjour"),
            t,
        );
        let Lookup::Hit(v) = c.lookup("/a?", &fr, true) else {
            panic!()
        };
        assert_eq!(v.body, "bonjour");
        let Lookup::Hit(v) = c.lookup("/a?", &en, true) else {
            panic!()
        };
        assert_eq!(v.body, "hello");
    }

    #[test]
    fn lru_bounds_entries_and_bytes() {
        let c = RouteCache::new(3, 1 << 20);
        let req = HeaderMap::new();
        let t = Duration::from_secs(60);
        for k in ["/1?", "/2?", "/3?"] {
            let f = fill(&c, k, &req);
            c.store(f, &req, StatusCode::OK, &hm(&[]), &Bytes::from("x"), t);
        }
        // Touch /1 so /2 is the least recently used.
        assert!(matches!(c.lookup("/1?", &req, true), Lookup::Hit(_)));
        let f = fill(&c, "/4?", &req);
        c.store(f, &req, StatusCode::OK, &hm(&[]), &Bytes::from("x"), t);
        assert_eq!(c.len().0, 3);
        assert!(matches!(c.lookup("/2?", &req, true), Lookup::Fill(_)));
        assert!(matches!(c.lookup("/1?", &req, true), Lookup::Hit(_)));

        let small = RouteCache::new(100, 1000);
        for k in ["/a?", "/b?", "/c?"] {
            let f = fill(&small, k, &req);
            small.store(
                f,
                &req,
                StatusCode::OK,
                &hm(&[]),
                &Bytes::from(vec![0u8; 400]),
                t,
            );
        }
        assert!(small.len().1 <= 1000);
        assert!(matches!(small.lookup("/a?", &req, true), Lookup::Fill(_)));
        let f = fill(&small, "/big?", &req);
        assert!(!small.store(
            f,
            &req,
            StatusCode::OK,
            &hm(&[]),
            &Bytes::from(vec![0u8; 5000]),
            t
        ));
    }
}
