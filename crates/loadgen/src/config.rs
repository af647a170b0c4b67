//! What to load and how hard: the target, the request to repeat, the
//! protocol, and when to stop. Validated once, before any socket opens, so a
//! bad option fails with a message instead of a half-run benchmark.

use std::time::Duration;

use bytes::Bytes;

use crate::error::LoadError;
use crate::tls::TlsOptions;

/// Wire protocol spoken by the generator. A new protocol is one module
/// implementing `client::Client` plus one arm in `driver::run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 keep-alive, one request in flight per connection.
    Http1,
    /// HTTP/2 over cleartext TCP (prior knowledge), many streams per connection.
    Http2,
    /// WebSocket echo: one connection per concurrent client; a "request"
    /// is one message (the body) and its echo.
    WebSocket,
    /// HTTP/3 over QUIC (quinn + h3), `https://` targets only; like
    /// HTTP/2, `concurrency` streams over `connections` connections.
    Http3,
}

impl Protocol {
    /// Parses `"http1"`, `"http1.1"`, `"h1"`, `"http2"`, `"h2"`, `"h2c"`.
    ///
    /// ```
    /// use httpy_loadgen::Protocol;
    /// assert_eq!(Protocol::parse("h2c").unwrap(), Protocol::Http2);
    /// assert!(Protocol::parse("spdy").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Protocol, LoadError> {
        match s.to_ascii_lowercase().as_str() {
            "http1" | "http1.1" | "h1" | "http/1.1" | "1.1" => Ok(Protocol::Http1),
            "http2" | "h2" | "h2c" | "http/2" | "2" => Ok(Protocol::Http2),
            "websocket" | "ws" => Ok(Protocol::WebSocket),
            "http3" | "h3" | "http/3" | "3" => Ok(Protocol::Http3),
            other => Err(LoadError::InvalidOption(format!(
                "unknown protocol {other:?} (expected http1, http2, http3 or websocket)"
            ))),
        }
    }
}

/// When the measured phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many measured requests have finished (success or failure).
    Requests(u64),
    /// After this much time; requests in flight at the end still count.
    Duration(Duration),
}

/// One load run.
///
/// ```
/// use httpy_loadgen::{LoadConfig, Protocol, Stop};
/// let cfg = LoadConfig::new("127.0.0.1", 8080, "/plaintext")
///     .protocol(Protocol::Http1)
///     .concurrency(64)
///     .stop(Stop::Requests(10_000));
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Host name or address to connect to.
    pub host: String,
    pub port: u16,
    /// Path and query sent in the request line (`/users/42?x=1`).
    pub path: String,
    /// `Host` header / `:authority`; defaults to `host:port`.
    pub authority: Option<String>,
    pub method: String,
    /// Extra request headers, in order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub protocol: Protocol,
    /// TCP connections. HTTP/1.1 always uses one per concurrent request;
    /// HTTP/2 spreads `concurrency` streams over this many.
    pub connections: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    pub stop: Stop,
    /// Load applied before measuring starts (connections stay open).
    pub warmup: Duration,
    /// A request not answered within this time fails as a timeout.
    pub timeout: Duration,
    /// Tokio worker threads of the generator's own runtime.
    pub threads: usize,
    /// Speak TLS (`https://`): HTTP/1.1 or HTTP/2 chosen by ALPN.
    pub tls: Option<TlsOptions>,
    /// Open a new connection for every request (HTTP/1.1 only): with TLS,
    /// each request then costs a full handshake, so the rate is handshakes
    /// per second.
    pub new_connection_per_request: bool,
}

impl LoadConfig {
    /// A GET over HTTP/1.1, 10 concurrent requests, 1000 requests, 10 s timeout.
    pub fn new(host: &str, port: u16, path: &str) -> LoadConfig {
        LoadConfig {
            host: host.to_string(),
            port,
            path: path.to_string(),
            authority: None,
            method: "GET".into(),
            headers: Vec::new(),
            body: Bytes::new(),
            protocol: Protocol::Http1,
            connections: 1,
            concurrency: 10,
            stop: Stop::Requests(1000),
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(10),
            threads: 1,
            tls: None,
            new_connection_per_request: false,
        }
    }

    pub fn tls(mut self, t: TlsOptions) -> Self {
        self.tls = Some(t);
        self
    }
    pub fn new_connection_per_request(mut self, on: bool) -> Self {
        self.new_connection_per_request = on;
        self
    }

    pub fn protocol(mut self, p: Protocol) -> Self {
        self.protocol = p;
        self
    }
    pub fn concurrency(mut self, c: usize) -> Self {
        self.concurrency = c;
        self
    }
    pub fn connections(mut self, c: usize) -> Self {
        self.connections = c;
        self
    }
    pub fn stop(mut self, s: Stop) -> Self {
        self.stop = s;
        self
    }
    pub fn method(mut self, m: &str) -> Self {
        self.method = m.to_string();
        self
    }
    pub fn body(mut self, b: impl Into<Bytes>) -> Self {
        self.body = b.into();
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    pub fn warmup(mut self, t: Duration) -> Self {
        self.warmup = t;
        self
    }

    /// `Host` header value.
    pub(crate) fn authority(&self) -> String {
        match &self.authority {
            Some(a) => a.clone(),
            None if self.host.contains(':') => format!("[{}]:{}", self.host, self.port),
            None => format!("{}:{}", self.host, self.port),
        }
    }

    /// Checks every option; the message names the bad one.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |m: String| Err(LoadError::InvalidOption(m));
        if self.host.is_empty() {
            return bad("host must not be empty".into());
        }
        if self.port == 0 {
            return bad("port must be 1-65535".into());
        }
        if !self.path.starts_with('/') || self.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return bad(format!(
                "path {:?} must start with '/' and contain no spaces or control characters",
                self.path
            ));
        }
        if self.method.is_empty() || !self.method.bytes().all(is_token) {
            return bad(format!(
                "method {:?} is not a valid HTTP token",
                self.method
            ));
        }
        for (n, v) in &self.headers {
            if n.is_empty() || !n.bytes().all(is_token) {
                return bad(format!("header name {n:?} is not a valid HTTP token"));
            }
            if v.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
                return bad(format!("header {n:?} has a control character in its value"));
            }
        }
        if self.concurrency == 0 || self.concurrency > 100_000 {
            return bad(format!(
                "concurrency must be 1-100000 (got {})",
                self.concurrency
            ));
        }
        if self.connections == 0 || self.connections > 100_000 {
            return bad(format!(
                "connections must be 1-100000 (got {})",
                self.connections
            ));
        }
        match self.stop {
            Stop::Requests(0) => return bad("the request count must be at least 1".into()),
            Stop::Duration(d) if d.is_zero() => return bad("the duration must be positive".into()),
            _ => {}
        }
        if self.timeout.is_zero() {
            return bad("timeout must be positive".into());
        }
        if self.threads == 0 || self.threads > 256 {
            return bad(format!("threads must be 1-256 (got {})", self.threads));
        }
        if self.tls.is_some() && self.protocol == Protocol::WebSocket {
            return Err(LoadError::Unsupported(
                "WebSocket load over TLS (wss://) is not built into this generator".into(),
            ));
        }
        if self.protocol == Protocol::Http3 && self.tls.is_none() {
            return bad("HTTP/3 needs an https:// target (QUIC is always TLS)".into());
        }
        if self.new_connection_per_request && self.protocol != Protocol::Http1 {
            return bad("a new connection per request is an HTTP/1.1 mode".into());
        }
        Ok(())
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_options() {
        let ok = LoadConfig::new("127.0.0.1", 1, "/");
        assert!(ok.validate().is_ok());
        assert!(ok.clone().concurrency(0).validate().is_err());
        assert!(ok.clone().connections(0).validate().is_err());
        assert!(ok.clone().stop(Stop::Requests(0)).validate().is_err());
        assert!(ok
            .clone()
            .stop(Stop::Duration(Duration::ZERO))
            .validate()
            .is_err());
        assert!(ok.clone().method("G T").validate().is_err());
        assert!(ok.clone().header("x", "a\r\nb").validate().is_err());
        assert!(LoadConfig::new("127.0.0.1", 1, "nope").validate().is_err());
    }

    #[test]
    fn parses_protocols() {
        assert_eq!(Protocol::parse("HTTP1").unwrap(), Protocol::Http1);
        assert_eq!(Protocol::parse("h3").unwrap(), Protocol::Http3);
        assert!(matches!(
            Protocol::parse("spdy"),
            Err(LoadError::InvalidOption(_))
        ));
    }
}
