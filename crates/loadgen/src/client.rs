//! The seam between the scheduler and a protocol: a `Client` performs one
//! request at a time and owns whatever connection state it needs. A new
//! protocol (HTTP/3) is one more implementation of this trait.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::net::TcpStream;

use crate::config::{LoadConfig, Protocol};
use crate::error::LoadError;
use crate::stats::{Failure, FailureKind, Outcome};
use crate::tls::{Stream, Tls};

/// Performs requests, one at a time, against the configured target.
pub(crate) trait Client: Send + 'static {
    /// Sends the configured request and reads the whole response.
    fn request(&mut self) -> impl Future<Output = Result<Outcome, Failure>> + Send;
    /// Forgets in-flight state after a timeout: the connection (HTTP/1.1)
    /// or stream (HTTP/2) is in an unknown state and must not be reused.
    fn reset(&mut self);
    /// Ends the client's connection politely once the run is over (after
    /// the measured phase; its time is not counted). Default: nothing, the
    /// connection is simply dropped.
    fn finish(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Everything a client needs, resolved and encoded once per run.
pub(crate) struct Target {
    pub addrs: Vec<SocketAddr>,
    pub config: LoadConfig,
    /// The complete HTTP/1.1 request, head and body.
    pub h1_request: Bytes,
    pub is_head: bool,
    /// TCP connections opened so far (all clients).
    pub connections: AtomicU64,
    /// Set for `https://` targets.
    pub tls: Option<Tls>,
}

impl Target {
    pub fn new(config: LoadConfig, addrs: Vec<SocketAddr>) -> Result<Target, LoadError> {
        let tls = match &config.tls {
            None => None,
            Some(opts) => {
                let alpn: &'static [u8] = match config.protocol {
                    Protocol::Http2 => b"h2",
                    // QUIC connections are set up by the h3 module.
                    Protocol::Http3 => return Target::build(config, addrs, None),
                    _ => b"http/1.1",
                };
                Some(Tls::new(opts, &config.host, alpn)?)
            }
        };
        Target::build(config, addrs, tls)
    }

    fn build(
        config: LoadConfig,
        addrs: Vec<SocketAddr>,
        tls: Option<Tls>,
    ) -> Result<Target, LoadError> {
        let mut head = format!("{} {} HTTP/1.1\r\n", config.method, config.path);
        let has = |name: &str| {
            config
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        if !has("host") {
            head.push_str(&format!("host: {}\r\n", config.authority()));
        }
        for (n, v) in &config.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if config.new_connection_per_request && !has("connection") {
            head.push_str("connection: close\r\n");
        }
        if !config.body.is_empty() && !has("content-length") {
            head.push_str(&format!("content-length: {}\r\n", config.body.len()));
        }
        head.push_str("\r\n");
        let mut req = head.into_bytes();
        req.extend_from_slice(&config.body);
        Ok(Target {
            addrs,
            is_head: config.method.eq_ignore_ascii_case("HEAD"),
            h1_request: Bytes::from(req),
            config,
            connections: AtomicU64::new(0),
            tls,
        })
    }

    /// A connection for HTTP: TCP, then the TLS handshake for `https://`.
    pub async fn open(&self) -> Result<Stream, Failure> {
        let tcp = self.connect().await?;
        match &self.tls {
            None => Ok(Stream::Tcp(tcp)),
            Some(tls) => tls
                .handshake(tcp)
                .await
                .map_err(|e| Failure::new(FailureKind::Connect, e)),
        }
    }

    /// Opens a TCP connection to the first address that accepts one.
    pub async fn connect(&self) -> Result<TcpStream, Failure> {
        let mut last = None;
        for addr in &self.addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    // Small requests and responses: never wait for Nagle.
                    let _ = s.set_nodelay(true);
                    self.connections.fetch_add(1, Ordering::Relaxed);
                    return Ok(s);
                }
                Err(e) => last = Some(format!("connect to {addr}: {e}")),
            }
        }
        Err(Failure::new(
            FailureKind::Connect,
            last.unwrap_or_else(|| "no address to connect to".into()),
        ))
    }
}
