//! Server settings, already validated by the embedder (the TypeScript layer
//! validates user input and names the offending option; this side only
//! trusts it and applies it).

use std::time::Duration;

pub use crate::observe::access_log::{AccessLogConfig, AccessLogFormat};
pub(crate) mod acme;
pub(crate) mod certs;
pub(crate) mod client_auth;
pub mod compression;
pub(crate) mod hkdf;
pub mod pubsub;
pub(crate) mod sni;
pub(crate) mod tls;

use tls::TlsSettings;

/// Everything one listener needs. Durations and sizes use the units of the
/// protocol layers; the public API converts seconds on the JS side.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// `SO_RCVBUF` for accepted sockets; `None` keeps the kernel's autotuning.
    pub read_buffer_size: Option<usize>,
    /// `SO_SNDBUF` for accepted sockets; `None` keeps the kernel's autotuning.
    pub write_buffer_size: Option<usize>,
    pub keep_alive: bool,
    /// Idle time allowed between requests on a kept-alive connection.
    pub keep_alive_timeout: Duration,
    /// Time allowed to receive a whole request, and for a handler to answer.
    pub request_timeout: Duration,
    /// Requests served on one connection before it is closed (0 = no limit).
    pub max_keep_alive_requests: u64,
    /// Open connections at once (0 = no limit); further clients wait in the
    /// kernel's accept backlog.
    pub max_connections: usize,
    /// Largest request body accepted; larger gives 413.
    pub max_body_size: u64,
    /// Largest request head accepted; larger gives 431.
    pub max_header_size: usize,
    /// Requests queued for or running in JS at once; beyond it, 503.
    pub max_pending_requests: usize,
    /// Tokio worker threads.
    pub threads: usize,
    /// When false, requests that match no route are answered directly
    /// (404/405) without entering JS; when true they go to JS so middleware
    /// sees every request.
    pub js_handles_misses: bool,
    /// When true, requests that match no route (and go to JS) stream their
    /// long bodies, as routes marked with `Router::set_streams_body` do.
    pub stream_miss_bodies: bool,
    /// With `stream_miss_bodies`: a missed request's `multipart/form-data`
    /// body may be taken as parts, with these limits
    /// (`BodyStreaming::RawOrParts`).
    pub miss_multipart: Option<crate::MultipartLimits>,
    /// Listen backlog.
    pub backlog: u32,
    /// Serve TLS (HTTP/2 and HTTP/1.1 chosen by ALPN) instead of cleartext.
    pub tls: Option<TlsSettings>,
    /// HTTP/2 streams a client may have open at once on one connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 receive window per stream (bytes).
    pub h2_stream_window: u32,
    /// HTTP/2 receive window per connection (bytes).
    pub h2_connection_window: u32,
    /// `SO_REUSEPORT`: let several processes listen on the same port, the
    /// kernel spreading connections between them (Linux). Unsupported
    /// platforms refuse it at bind time.
    pub reuse_port: bool,
    /// Count Prometheus metrics; `Some(path)` also serves them at `path`.
    pub metrics: Option<MetricsConfig>,
    /// Write an access log line per answered request.
    pub access_log: Option<AccessLogConfig>,
    /// Which peers may name the client in the access log (`trustProxy`).
    pub trust_proxy: crate::TrustProxy,
    /// HTTP/3 over QUIC on a UDP port (needs `tls` and the `http3` feature).
    pub http3: Option<Http3Config>,
    /// Response compression; `None` leaves bodies as they are.
    pub compression: Option<compression::CompressConfig>,
    /// Listen on a Unix domain socket instead of `host:port` (Unix only).
    pub unix_socket: Option<UnixSocketConfig>,
    /// Where `publish` reaches besides this process (sibling workers, Redis).
    pub pubsub: pubsub::PubSubConfig,
}

/// A Unix domain socket to listen on.
#[derive(Debug, Clone)]
pub struct UnixSocketConfig {
    pub path: std::path::PathBuf,
    /// File mode of the socket (e.g. `0o660`); `None` keeps the umask's.
    pub permissions: Option<u32>,
}

/// Metrics settings.
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    /// Path answered directly with the Prometheus text (GET/HEAD); `None`
    /// when the embedder serves it (to merge its own registry).
    pub path: Option<String>,
}

/// QUIC and HTTP/3 settings (the guide's `http3_config`).
#[derive(Debug, Clone)]
pub struct Http3Config {
    /// UDP port (0 = any free port; may equal the TCP port).
    pub port: u16,
    /// Largest UDP payload we send or accept (QUIC's floor is 1200).
    pub max_datagram_size: u16,
    /// Receive window per request stream (bytes).
    pub stream_window: u64,
    /// Receive window per connection (bytes).
    pub connection_window: u64,
    /// Request streams a client may have open at once.
    pub max_streams_bidi: u64,
    /// A connection silent for this long is closed.
    pub idle_timeout: Duration,
    /// Validate client addresses with a Retry round trip before accepting
    /// (protects against spoofed-source floods at the cost of one RTT).
    pub validate_address: bool,
}

impl Default for Http3Config {
    fn default() -> Self {
        Self {
            port: 0,
            max_datagram_size: 1350,
            stream_window: 1024 * 1024,
            connection_window: 5 * 1024 * 1024,
            max_streams_bidi: 100,
            idle_timeout: Duration::from_secs(30),
            validate_address: false,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            read_buffer_size: None,
            write_buffer_size: None,
            keep_alive: true,
            keep_alive_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            max_keep_alive_requests: 0,
            max_connections: 0,
            max_body_size: 10 * 1024 * 1024,
            max_header_size: 16 * 1024,
            max_pending_requests: 10_000,
            threads: 1,
            js_handles_misses: false,
            stream_miss_bodies: false,
            miss_multipart: None,
            backlog: 1024,
            tls: None,
            h2_max_concurrent_streams: 256,
            h2_stream_window: 1024 * 1024,
            h2_connection_window: 4 * 1024 * 1024,
            reuse_port: false,
            metrics: None,
            access_log: None,
            trust_proxy: crate::TrustProxy::None,
            http3: None,
            unix_socket: None,
            compression: None,
            pubsub: Default::default(),
        }
    }
}
