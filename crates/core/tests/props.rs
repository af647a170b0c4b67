//! Property tests of the parsing that is ours: route patterns, path matching
//! and percent-decoding (checked against a brute-force model of the
//! documented precedence), and the reply header block.
//!
//! Failing cases proptest finds are saved in `props.proptest-regressions`
//! next to this file (commit it) and replayed first on every run. More
//! cases: `PROPTEST_CASES=50000 cargo test -p httpy-core --test props`.

use bytes::Bytes;
use httpy_core::router::{Match, Router};
use httpy_core::Reply;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Seg {
    Lit(&'static str),
    Param,
    All,
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn pattern_of(segs: &[Seg]) -> String {
    let mut out = String::new();
    for (i, s) in segs.iter().enumerate() {
        out.push('/');
        match s {
            Seg::Lit(t) => out.push_str(t),
            Seg::Param => out.push_str(&format!("{{p{i}}}")),
            Seg::All => out.push_str(&format!("{{p{i}:path}}")),
        }
    }
    out
}

/// Segment kinds (0 literal, 1 parameter, 2 catch-all) with decoded literal text.
type Shape = Vec<(u8, String)>;

/// The routing key of a pattern: what makes two patterns the same route.
fn shape(segs: &[Seg]) -> Shape {
    segs.iter()
        .map(|s| match s {
            Seg::Lit(t) => (0, decode(t)),
            Seg::Param => (1, String::new()),
            Seg::All => (2, String::new()),
        })
        .collect()
}

/// Does `segs` match the path segments, and with which parameter values?
fn model_match(segs: &[Seg], path: &[&str]) -> Option<Vec<String>> {
    let mut params = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        match s {
            Seg::All => {
                // `/a/{p:path}` takes `/a/` (empty) but not `/a`.
                if path.len() <= i {
                    return None;
                }
                params.push(decode(&path[i..].join("/")));
                return Some(params);
            }
            Seg::Lit(t) => {
                if path.get(i).map(|p| decode(p)) != Some(decode(t)) {
                    return None;
                }
            }
            Seg::Param => match path.get(i) {
                Some(p) if !p.is_empty() => params.push(decode(p)),
                _ => return None,
            },
        }
    }
    (path.len() == segs.len()).then_some(params)
}

/// The documented behaviour: among routes that match the path and serve
/// the method (HEAD falls back to GET of the same route), the one whose
/// segment kinds are smallest position by position (literal < parameter <
/// catch-all) wins; if the path matches only for other methods, 405.
fn model_find(routes: &[(String, Vec<Seg>, u32)], method: &str, path: &str) -> Match {
    let Some(rest) = path.strip_prefix('/') else {
        return Match::NotFound;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let mut best: Option<(Shape, u32, Vec<String>)> = None;
    let mut path_exists = false;
    for (m, segs, id) in routes {
        let Some(params) = model_match(segs, &parts) else {
            continue;
        };
        path_exists = true;
        let key = shape(segs);
        let serves = m == method
            || (method == "HEAD"
                && m == "GET"
                && !routes
                    .iter()
                    .any(|(m2, s2, _)| m2 == "HEAD" && shape(s2) == key));
        if !serves {
            continue;
        }
        let kinds: Shape = key.iter().map(|(k, _)| (*k, String::new())).collect();
        if best.as_ref().is_none_or(|(b, _, _)| kinds < *b) {
            best = Some((kinds, *id, params));
        }
    }
    match best {
        Some((_, route, params)) => Match::Found { route, params },
        None if path_exists => Match::MethodNotAllowed { allow: Vec::new() },
        None => Match::NotFound,
    }
}

fn same_outcome(a: &Match, b: &Match) -> bool {
    match (a, b) {
        (Match::MethodNotAllowed { .. }, Match::MethodNotAllowed { .. }) => true,
        _ => a == b,
    }
}

const LITERALS: &[&str] = &["a", "b", "me", "A", "%41", ""];
const PATH_SEGMENTS: &[&str] = &[
    "a", "b", "me", "A", "%41", "", "7", "x%2Fy", "%zz", "%C3%A9", "é",
];

fn seg() -> impl Strategy<Value = Seg> {
    prop_oneof![
        3 => prop::sample::select(LITERALS).prop_map(Seg::Lit),
        2 => Just(Seg::Param),
    ]
}

fn pattern() -> impl Strategy<Value = Vec<Seg>> {
    (prop::collection::vec(seg(), 0..4), any::<bool>()).prop_map(|(mut v, all)| {
        if all {
            v.push(Seg::All);
        }
        if v.is_empty() {
            // The pattern "/" is one empty literal segment.
            v.push(Seg::Lit(""));
        }
        v
    })
}

fn route_set() -> impl Strategy<Value = Vec<(String, Vec<Seg>)>> {
    prop::collection::vec(
        (
            prop::sample::select(&["GET", "POST", "HEAD"][..]).prop_map(String::from),
            pattern(),
        ),
        1..10,
    )
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PATH_SEGMENTS), 0..5)
        .prop_map(|v| format!("/{}", v.join("/")))
}

/// Inserts the routes in order; returns the ones accepted (duplicates of an
/// already registered method + route are refused by design).
fn build(routes: &[(String, Vec<Seg>)]) -> (Router, Vec<(String, Vec<Seg>, u32)>) {
    let mut r = Router::new();
    let mut kept = Vec::new();
    for (i, (m, segs)) in routes.iter().enumerate() {
        if r.insert(m, &pattern_of(segs), i as u32).is_ok() {
            kept.push((m.clone(), segs.clone(), i as u32));
        } else {
            let key = shape(segs);
            assert!(
                kept.iter().any(|(m2, s2, _)| m2 == m && shape(s2) == key),
                "a valid pattern was refused: {m} {}",
                pattern_of(segs)
            );
        }
    }
    (r, kept)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn router_agrees_with_the_model(routes in route_set(), paths in prop::collection::vec(path(), 1..8)) {
        let (router, kept) = build(&routes);
        for p in &paths {
            for method in ["GET", "POST", "HEAD", "PUT"] {
                let got = router.find(method, p);
                let want = model_find(&kept, method, p);
                prop_assert!(same_outcome(&got, &want), "{} {}: router {:?}, model {:?}", method, p, got, want);
            }
        }
    }

    #[test]
    fn registration_order_does_not_matter(
        routes in route_set(),
        paths in prop::collection::vec(path(), 1..8),
        seed in any::<u64>(),
    ) {
        // Duplicates are refused by design (the first wins); keep the accepted set.
        let (_, kept) = build(&routes);
        let mut shuffled = kept.clone();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let mut a = Router::new();
        let mut b = Router::new();
        for (m, segs, id) in &kept {
            a.insert(m, &pattern_of(segs), *id).unwrap();
        }
        for (m, segs, id) in &shuffled {
            b.insert(m, &pattern_of(segs), *id).unwrap();
        }
        for p in &paths {
            for method in ["GET", "POST", "HEAD"] {
                let (x, y) = (a.find(method, p), b.find(method, p));
                let same = match (&x, &y) {
                    (Match::MethodNotAllowed { allow: l }, Match::MethodNotAllowed { allow: r }) => l == r,
                    _ => x == y,
                };
                prop_assert!(same, "{} {}: {:?} vs {:?}", method, p, x, y);
            }
        }
    }

    #[test]
    fn arbitrary_patterns_and_paths_never_panic(pattern in ".{0,40}", path in ".{0,60}", method in "[A-Z]{1,7}") {
        let mut r = Router::new();
        let _ = r.insert(&method, &pattern, 0);
        let _ = r.insert("GET", "/{a}/{b:path}", 1);
        let _ = r.find(&method, &path);
        let _ = r.find("GET", &path);
    }

    #[test]
    fn any_header_block_is_parsed_or_refused_never_unsafe(status in any::<u16>(), block in "(?s).{0,80}") {
        match Reply::from_parts(status, &block, Bytes::new()) {
            Ok(reply) => {
                prop_assert!(status == 101 || (200..=999).contains(&status));
                for (_, v) in reply.headers.iter() {
                    prop_assert!(!v.as_bytes().iter().any(|b| *b == b'\r' || *b == b'\n' || *b == 0));
                }
            }
            Err(e) => prop_assert_eq!(e.code(), "ERR_HTTPY_INVALID_RESPONSE"),
        }
    }

    #[test]
    fn valid_headers_round_trip_in_order(
        pairs in prop::collection::vec(("[a-z][a-z0-9-]{0,12}", "[ -~]{0,30}"), 0..12),
    ) {
        // HeaderValue keeps surrounding whitespace as sent; what must hold is
        // that every pair survives, values and order per name intact.
        let block = pairs.iter().map(|(k, v)| format!("{k}\n{v}")).collect::<Vec<_>>().join("\n");
        let reply = Reply::from_parts(200, &block, Bytes::new());
        prop_assert!(reply.is_ok(), "{:?}", block);
        let reply = reply.unwrap();
        prop_assert_eq!(reply.headers.len(), pairs.len());
        for (k, _) in &pairs {
            let want: Vec<&str> = pairs.iter().filter(|(k2, _)| k2 == k).map(|(_, v)| v.as_str()).collect();
            let got: Vec<&str> = reply.headers.get_all(k.as_str()).iter().map(|v| v.to_str().unwrap()).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_line_break_can_never_be_smuggled_into_a_header(
        name in "[a-z]{1,8}",
        before in "[ -~]{0,10}",
        bad in prop::sample::select(&["\r", "\r\nx-injected: 1", "\0"][..]),
        after in "[ -~]{0,10}",
    ) {
        let block = format!("{name}\n{before}{bad}{after}");
        if let Ok(reply) = Reply::from_parts(200, &block, Bytes::new()) {
            prop_assert!(reply.headers.get("x-injected").is_none());
            for (_, v) in reply.headers.iter() {
                prop_assert!(!v.as_bytes().contains(&b'\r'));
            }
        }
    }
}
