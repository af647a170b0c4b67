//! HTTPy's engine: everything between the socket and the embedder's
//! handlers, with no knowledge of N-API or JavaScript.
//!
//! A [`Server`] owns a Tokio runtime, accepts connections, speaks HTTP/1.1,
//! HTTP/2 (h2c, or TLS by ALPN) and HTTP/3, matches routes with a
//! [`Router`], answers directly what needs no handler (404/405, overload,
//! limits, static files, cached routes) and queues the rest. The embedder is
//! told through a [`Waker`] that work is waiting, takes it in batches with
//! [`Server::take_batch`], and answers each request through its
//! [`Responder`].
//!
//! The modules below are listed in the order a request travels through
//! them; each depends only on those after it.

mod body;
mod config;
mod dispatch;
mod embedder;
mod error;
mod lifecycle;
mod net;
mod observe;
mod proto;
mod pubsub;
mod respond;
mod server;
mod ws;

pub use body::encoder::{compress_all, Coding};
pub use body::multipart::{BodyStreaming, MultipartLimits};
/// The frames of a multipart stream, as the embedder reads them.
pub mod multipart {
    pub use crate::body::multipart::{FRAME_DATA, FRAME_END, FRAME_HEAD};
}
pub use body::upload::{UploadError, UploadRead, UploadReceiver, WHOLE_MAX as UPLOAD_WHOLE_MAX};
pub use body::{body_channel, BodyReceiver, BodySender, WriteOutcome};
pub use bytes::Bytes;
pub use config::acme::{AcmeChallenge, AcmeSource, AcmeStatus};
pub use config::client_auth::{ClientAuthSource, ClientCert, TlsPeer};
pub use config::tls::{CertSource, TlsSettings, TlsSource};
/// The crypto provider of the server's TLS handshakes: aws-lc-rs, its TLS
/// 1.3 key schedule on HMAC keys made once per secret (`config/hkdf.rs`).
/// Public for the `tls_handshake` benchmark.
pub fn tls_provider() -> rustls::crypto::CryptoProvider {
    config::hkdf::provider()
}
/// [`tls_provider`] with its suites in the server's order, AES-128-GCM
/// first: the configuration a client that lists an AES-GCM suite first
/// gets (`config/tls.rs`). Public for the `tls_handshake` benchmark.
pub fn tls_provider_aes128_first() -> rustls::crypto::CryptoProvider {
    config::tls::aes128_first(config::hkdf::provider())
}
pub use config::{
    AccessLogConfig, AccessLogFormat, Http3Config, MetricsConfig, ServerConfig, UnixSocketConfig,
};
pub use dispatch::fault::{quiet_injected_panics, Faults, INJECTED_PANIC, PANIC_PATH_ENV};
pub use dispatch::router::{Match, PatternError, RouteId};
pub use embedder::queue::{Incoming, Records, Responder, Version, Waker};
pub use embedder::record;
pub use embedder::reply::{Reply, ReplyBatch};
pub use error::{Error, ErrorKind, Result};
/// The header map of a [`Reply`] (`http`'s), named here for the embedder that
/// keeps emptied ones between batches ([`Server::spare_maps`]).
pub use http::HeaderMap;
pub use observe::client_ip::TrustProxy;
pub use observe::metrics::CONTENT_TYPE_TEXT as METRICS_CONTENT_TYPE;
pub use observe::stats::StatsSnapshot;
pub use pubsub::{PubSubConfig, PubSubSnapshot};
pub use respond::compress::CompressConfig;
pub use respond::route::RouteExtra;
pub use respond::static_files::{Dotfiles, StaticMount};
pub use server::Server;
pub use ws::{
    deflated_messages, CheckedText, SendStatus, WsCompression, WsEvent, WsEventKind, WsEvents,
    WsFrame, WsOptions, WsSender,
};

/// The route table the server matches against: each route may carry a
/// [`RouteExtra`] saying what the core answers for it directly.
pub type Router = dispatch::router::Router<RouteExtra>;

/// Route matching, as the embedder sees it.
pub mod router {
    pub use crate::dispatch::router::{Match, PatternError, RouteId};
    pub use crate::Router;
}

#[cfg(test)]
mod fuzz_targets;
