//! Route matching: method and path to a route id and its parameters.
//! Generic over what a route carries (`T`), so it knows nothing of what the
//! server does with a match.
//!
//! Patterns are `/`-separated segments; a segment is literal text, a
//! parameter `{name}` (one non-empty segment) or, in last position only, a
//! catch-all `{name:path}` (the rest of the path, `/` included, possibly
//! empty). Matching is independent of registration order: at every depth a
//! literal segment is tried before a parameter, and a parameter before a
//! catch-all; a failed deeper match backtracks to the next candidate.
//!
//! The tree is built once per route-table change and then only read, so it
//! is shared between Tokio workers behind an `Arc` without locks.

use rustc_hash::FxHashMap;
use std::fmt;

/// Index of a route in the table the embedder registered.
pub type RouteId = u32;

/// A route pattern that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid route pattern {:?}: {}",
            self.pattern, self.reason
        )
    }
}

impl std::error::Error for PatternError {}

/// What the router found for a method and path.
#[derive(Debug, PartialEq, Eq)]
pub enum Match {
    /// A route for this method; parameter values in pattern order,
    /// percent-decoded.
    Found {
        route: RouteId,
        params: Vec<String>,
    },
    /// The path exists, but not for this method; `allow` lists the methods
    /// that do exist (HEAD included wherever GET is).
    MethodNotAllowed {
        allow: Vec<String>,
    },
    NotFound,
}

#[derive(Default)]
struct Node {
    literals: FxHashMap<Box<str>, Node>,
    param: Option<Box<Node>>,
    catch_all: Option<Endpoints>,
    here: Option<Endpoints>,
}

#[derive(Default)]
struct Endpoints {
    /// (method, route). A handful per path, so a vector beats a map.
    methods: Vec<(Box<str>, RouteId)>,
}

impl Endpoints {
    fn lookup(&self, method: &str) -> Option<RouteId> {
        let exact = self
            .methods
            .iter()
            .find(|(m, _)| &**m == method)
            .map(|(_, r)| *r);
        // HEAD is answered by the GET route when there is no HEAD route;
        // the protocol layer drops the body.
        exact.or_else(|| {
            if method == "HEAD" {
                self.methods
                    .iter()
                    .find(|(m, _)| &**m == "GET")
                    .map(|(_, r)| *r)
            } else {
                None
            }
        })
    }

    fn allow(&self) -> Vec<String> {
        let mut out: Vec<String> = self.methods.iter().map(|(m, _)| m.to_string()).collect();
        if out.iter().any(|m| m == "GET") && !out.iter().any(|m| m == "HEAD") {
            out.push("HEAD".into());
        }
        out.sort();
        out.dedup();
        out
    }
}

enum Segment {
    Literal(String),
    Param,
    CatchAll,
}

fn parse_pattern(pattern: &str) -> Result<Vec<Segment>, PatternError> {
    let err = |reason: &str| PatternError {
        pattern: pattern.to_string(),
        reason: reason.to_string(),
    };
    let rest = pattern
        .strip_prefix('/')
        .ok_or_else(|| err("must start with '/'"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let mut out = Vec::with_capacity(parts.len());
    let mut names: Vec<&str> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if let Some(inner) = part.strip_prefix('{') {
            let inner = inner
                .strip_suffix('}')
                .ok_or_else(|| err("a parameter must fill its whole segment, as in {id}"))?;
            let (name, kind) = match inner.split_once(':') {
                Some((n, k)) => (n, Some(k)),
                None => (inner, None),
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
            {
                return Err(err("parameter names use letters, digits, '_' and '$'"));
            }
            if names.contains(&name) {
                return Err(err(&format!("parameter {name:?} appears twice")));
            }
            names.push(name);
            match kind {
                None => out.push(Segment::Param),
                Some("path") => {
                    if i != parts.len() - 1 {
                        return Err(err("a {name:path} catch-all must be the last segment"));
                    }
                    out.push(Segment::CatchAll)
                }
                Some(other) => {
                    return Err(err(&format!(
                        "unknown parameter type {other:?} (only {{name}} and {{name:path}} exist)"
                    )))
                }
            }
        } else if part.contains('{') || part.contains('}') {
            return Err(err("braces are only allowed around a whole segment"));
        } else {
            out.push(Segment::Literal(decode(part)));
        }
    }
    Ok(out)
}

fn decode(segment: &str) -> String {
    if !segment.contains('%') {
        return segment.to_string();
    }
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// An immutable route table.
///
/// ```
/// use httpy_core::router::{Router, Match};
/// let mut r = Router::new();
/// r.insert("GET", "/users/{id}", 0).unwrap();
/// r.insert("GET", "/users/me", 1).unwrap();
/// assert_eq!(r.find("GET", "/users/me"), Match::Found { route: 1, params: vec![] });
/// assert_eq!(r.find("GET", "/users/7"), Match::Found { route: 0, params: vec!["7".into()] });
/// ```
pub struct Router<T> {
    root: Node,
    len: usize,
    /// Pattern text of each route, for labels that must stay bounded
    /// (metrics name the pattern, never the raw path).
    patterns: FxHashMap<RouteId, std::sync::Arc<str>>,
    /// What some routes carry besides their id (the server keeps there what
    /// it answers directly); kept here so it changes atomically with the
    /// table. The router never looks inside.
    extras: FxHashMap<RouteId, std::sync::Arc<T>>,
    /// Routes whose request bodies stream to the embedder (`streamBody`),
    /// and how.
    streamed: FxHashMap<RouteId, crate::body::multipart::BodyStreaming>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            len: 0,
            patterns: FxHashMap::default(),
            extras: FxHashMap::default(),
            streamed: Default::default(),
        }
    }
}

impl<T> Router<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches `extra` to `route`.
    pub fn set_extra(&mut self, route: RouteId, extra: T) {
        self.extras.insert(route, std::sync::Arc::new(extra));
    }

    /// Whether any route carries something.
    pub fn has_extras(&self) -> bool {
        !self.extras.is_empty()
    }

    /// What `route` carries, if anything.
    pub fn extra(&self, route: RouteId) -> Option<std::sync::Arc<T>> {
        if self.extras.is_empty() {
            return None;
        }
        self.extras.get(&route).cloned()
    }

    /// Makes `route`'s request bodies stream (see `body::upload`).
    pub fn set_streams_body(&mut self, route: RouteId, how: crate::body::multipart::BodyStreaming) {
        self.streamed.insert(route, how);
    }

    /// How `route`'s request bodies stream, if they do.
    pub fn streams_body(&self, route: RouteId) -> Option<crate::body::multipart::BodyStreaming> {
        if self.streamed.is_empty() {
            return None;
        }
        self.streamed.get(&route).copied()
    }

    /// Number of (method, pattern) pairs registered.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `method pattern`. Registering the same method and pattern twice
    /// is an error, so a typo cannot silently shadow a route.
    pub fn insert(
        &mut self,
        method: &str,
        pattern: &str,
        route: RouteId,
    ) -> Result<(), PatternError> {
        let segments = parse_pattern(pattern)?;
        let mut node = &mut self.root;
        let mut target: Option<&mut Endpoints> = None;
        for seg in segments {
            match seg {
                Segment::Literal(text) => {
                    node = node.literals.entry(text.into_boxed_str()).or_default();
                }
                Segment::Param => {
                    node = node.param.get_or_insert_with(Default::default);
                }
                Segment::CatchAll => {
                    target = Some(node.catch_all.get_or_insert_with(Default::default));
                    break;
                }
            }
        }
        let endpoints = match target {
            Some(t) => t,
            None => node.here.get_or_insert_with(Default::default),
        };
        let method = method.to_ascii_uppercase();
        if endpoints.methods.iter().any(|(m, _)| **m == *method) {
            return Err(PatternError {
                pattern: pattern.to_string(),
                reason: format!("{method} {pattern} is already registered"),
            });
        }
        endpoints.methods.push((method.into_boxed_str(), route));
        self.len += 1;
        self.patterns.insert(route, pattern.into());
        Ok(())
    }

    /// The pattern `route` was registered with.
    ///
    /// ```
    /// let mut r = httpy_core::Router::new();
    /// r.insert("GET", "/users/{id}", 3).unwrap();
    /// assert_eq!(r.pattern(3).as_deref(), Some("/users/{id}"));
    /// ```
    pub fn pattern(&self, route: RouteId) -> Option<std::sync::Arc<str>> {
        self.patterns.get(&route).cloned()
    }

    /// Finds the route for `method` and the request path (without query),
    /// as received (percent-encoded).
    pub fn find(&self, method: &str, path: &str) -> Match {
        let Some(rest) = path.strip_prefix('/') else {
            return Match::NotFound;
        };
        let mut params = Vec::new();
        let mut allow: Option<Vec<String>> = None;
        if let Some(route) = walk(&self.root, rest, method, &mut params, &mut allow) {
            return Match::Found { route, params };
        }
        match allow {
            Some(allow) => Match::MethodNotAllowed { allow },
            None => Match::NotFound,
        }
    }
}

/// Depth-first search in precedence order. `rest` is the path after the
/// current node's segment (no leading '/'); `None` means "path ended".
fn walk(
    node: &Node,
    rest: &str,
    method: &str,
    params: &mut Vec<String>,
    allow: &mut Option<Vec<String>>,
) -> Option<RouteId> {
    let (segment, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let mut try_child = |child: &Node, params: &mut Vec<String>| -> Option<RouteId> {
        match tail {
            None => {
                let ep = child.here.as_ref()?;
                match ep.lookup(method) {
                    Some(r) => Some(r),
                    None => {
                        if allow.is_none() {
                            *allow = Some(ep.allow());
                        }
                        // A catch-all below this node may still take an empty rest.
                        None
                    }
                }
            }
            Some(t) => walk(child, t, method, params, allow),
        }
    };

    // 1. literal
    let literal = if segment.contains('%') {
        node.literals.get(decode(segment).as_str())
    } else {
        node.literals.get(segment)
    };
    if let Some(child) = literal {
        if let Some(r) = try_child(child, params) {
            return Some(r);
        }
    }
    // 2. parameter (non-empty segment)
    if !segment.is_empty() {
        if let Some(child) = node.param.as_deref() {
            params.push(decode(segment));
            if let Some(r) = try_child(child, params) {
                return Some(r);
            }
            params.pop();
        }
    }
    // 3. catch-all: takes this segment and everything after it
    if let Some(ep) = node.catch_all.as_ref() {
        match ep.lookup(method) {
            Some(r) => {
                params.push(decode(rest));
                return Some(r);
            }
            None => {
                if allow.is_none() {
                    *allow = Some(ep.allow());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(r: RouteId, p: &[&str]) -> Match {
        Match::Found {
            route: r,
            params: p.iter().map(|s| s.to_string()).collect(),
        }
    }

    const GUIDE: [(&str, &str); 3] = [
        ("GET", "/api/users/{id}/profile"),
        ("GET", "/api/users/{id}"),
        ("GET", "/api/users"),
    ];

    #[test]
    fn guide_routes_in_every_order() {
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for order in orders {
            let mut r = Router::<()>::new();
            for i in order {
                r.insert(GUIDE[i].0, GUIDE[i].1, i as u32).unwrap();
            }
            assert_eq!(r.find("GET", "/api/users"), found(2, &[]));
            assert_eq!(r.find("GET", "/api/users/42"), found(1, &["42"]));
            assert_eq!(r.find("GET", "/api/users/42/profile"), found(0, &["42"]));
            assert_eq!(r.find("GET", "/api/users/42/other"), Match::NotFound);
        }
    }

    #[test]
    fn literal_beats_param_beats_catch_all_with_backtracking() {
        let mut r = Router::<()>::new();
        r.insert("GET", "/files/{path:path}", 0).unwrap();
        r.insert("GET", "/files/{id}/meta", 1).unwrap();
        r.insert("GET", "/files/special/meta", 2).unwrap();
        r.insert("GET", "/files/special", 3).unwrap();
        assert_eq!(r.find("GET", "/files/special/meta"), found(2, &[]));
        assert_eq!(r.find("GET", "/files/special"), found(3, &[]));
        assert_eq!(r.find("GET", "/files/x/meta"), found(1, &["x"]));
        // literal 'special' fails deeper, param fails deeper, catch-all takes it
        assert_eq!(
            r.find("GET", "/files/special/a/b"),
            found(0, &["special/a/b"])
        );
        assert_eq!(r.find("GET", "/files/"), found(0, &[""]));
        assert_eq!(r.find("GET", "/files"), Match::NotFound);
    }

    #[test]
    fn percent_decoding_of_params() {
        let mut r = Router::<()>::new();
        r.insert("GET", "/u/{name}", 0).unwrap();
        r.insert("GET", "/s/{p:path}", 1).unwrap();
        assert_eq!(
            r.find("GET", "/u/hello%20world"),
            found(0, &["hello world"])
        );
        assert_eq!(r.find("GET", "/u/a%2Fb"), found(0, &["a/b"]));
        assert_eq!(r.find("GET", "/s/a/b%20c.css"), found(1, &["a/b c.css"]));
        assert_eq!(r.find("GET", "/u/"), Match::NotFound);
    }

    #[test]
    fn method_not_allowed_lists_methods_and_head_falls_back_to_get() {
        let mut r = Router::<()>::new();
        r.insert("GET", "/x", 0).unwrap();
        r.insert("post", "/x", 1).unwrap();
        assert_eq!(r.find("HEAD", "/x"), found(0, &[]));
        assert_eq!(r.find("POST", "/x"), found(1, &[]));
        assert_eq!(
            r.find("DELETE", "/x"),
            Match::MethodNotAllowed {
                allow: vec!["GET".into(), "HEAD".into(), "POST".into()]
            }
        );
    }

    #[test]
    fn root_and_trailing_slash_are_distinct() {
        let mut r = Router::<()>::new();
        r.insert("GET", "/", 0).unwrap();
        r.insert("GET", "/a", 1).unwrap();
        assert_eq!(r.find("GET", "/"), found(0, &[]));
        assert_eq!(r.find("GET", "/a"), found(1, &[]));
        assert_eq!(r.find("GET", "/a/"), Match::NotFound);
        assert_eq!(r.find("GET", ""), Match::NotFound);
        assert_eq!(r.find("GET", "*"), Match::NotFound);
    }

    #[test]
    fn bad_patterns_are_rejected_with_reason() {
        let mut r = Router::<()>::new();
        for bad in [
            "x",
            "/a/{p:path}/b",
            "/a/{}",
            "/a/{x:int}",
            "/a/b{x}",
            "/{a}/{a}",
        ] {
            let e = r.insert("GET", bad, 0).unwrap_err();
            assert_eq!(e.pattern, bad);
            assert!(!e.reason.is_empty());
        }
        r.insert("GET", "/dup", 0).unwrap();
        assert!(r.insert("GET", "/dup", 1).is_err());
    }
}
