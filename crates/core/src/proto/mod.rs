//! The HTTP protocol drivers. Each one turns a connection's byte stream
//! into requests for the dispatcher (through [`Dispatch`]) and writes its
//! responses back; none of them knows what the dispatcher does.

pub(crate) mod h1;
pub(crate) mod h2;
#[cfg(feature = "http3")]
pub(crate) mod h3;
#[cfg(feature = "http3")]
pub(crate) mod h3_quic;
pub(crate) mod head;
pub(crate) mod io;
pub(crate) mod trim;

use std::sync::Arc;

use crate::config::ServerConfig;
#[cfg(not(feature = "http3"))]
use crate::dispatch::Dispatch;
use crate::lifecycle::Lifecycle;
use crate::observe::metrics::Metrics;
use crate::observe::stats::Stats;

/// What the listener and the protocol drivers get from the server: the
/// settings, the close signals, the counters, and the dispatcher `D` every
/// request goes to.
pub(crate) struct Env<D> {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) life: Lifecycle,
    pub(crate) stats: Arc<Stats>,
    pub(crate) metrics: Option<Arc<Metrics>>,
    pub(crate) dispatch: D,
}

impl<D> Env<D> {
    /// How long a connection may wait for a request head (or its first
    /// bytes) before it is closed.
    pub(crate) fn idle_limit(&self) -> std::time::Duration {
        self.config
            .keep_alive_timeout
            .min(self.config.request_timeout)
    }
}

/// Binds the HTTP/3 UDP socket when the configuration asks for one.
#[cfg(feature = "http3")]
pub(crate) fn bind_http3(
    config: &crate::ServerConfig,
) -> crate::Result<Option<std::net::UdpSocket>> {
    match &config.http3 {
        None => Ok(None),
        Some(_) if config.tls.is_none() => Err(crate::Error::new(
            crate::ErrorKind::Tls,
            "HTTP/3 needs TLS: set the tls option",
        )),
        Some(h3) => h3::bind(config, h3).map(Some),
    }
}

#[cfg(feature = "http3")]
pub(crate) use h3::start as start_http3;

#[cfg(not(feature = "http3"))]
pub(crate) fn bind_http3(
    config: &crate::ServerConfig,
) -> crate::Result<Option<std::net::UdpSocket>> {
    match config.http3 {
        None => Ok(None),
        Some(_) => Err(crate::Error::new(
            crate::ErrorKind::Listen,
            "this build of httpy has no HTTP/3 (the http3 feature is off)",
        )),
    }
}

#[cfg(not(feature = "http3"))]
pub(crate) fn start_http3<D: Dispatch>(
    _env: Arc<Env<D>>,
    _socket: std::net::UdpSocket,
) -> crate::Result<()> {
    Ok(())
}
