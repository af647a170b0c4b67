//! HTTPy's engine: everything between the socket and the embedder's
//! handlers, with no knowledge of N-API or JavaScript.
//!
//! A [`Server`] owns a Tokio runtime, accepts connections, speaks HTTP/1.1
//! and HTTP/2 (h2c, or TLS by ALPN), matches routes with a [`Router`], answers what needs no
//! handler (404/405, overload, limits) and queues the rest. The embedder is
//! told through a [`Waker`] that work is waiting, takes it in batches with
//! [`Server::take_batch`], and answers each request through its
//! [`Responder`].

mod access_log;
mod body;
mod cache;
mod client_ip;
mod compress;
mod config;
mod conn;
mod error;
mod fault;
mod file_cache;
mod metrics;
pub mod native_path;
mod observe;
mod proto;
mod queue;
pub mod record;
mod reply;
pub mod router;
mod server;
mod service;
mod static_files;
mod stats;
mod tls;
mod trim;
mod ws;

pub use body::{body_channel, BodyReceiver, BodySender, WriteOutcome};
pub use bytes::Bytes;
pub use client_ip::TrustProxy;
pub use compress::{compress_all, Coding, CompressConfig};
pub use config::{AccessLogConfig, AccessLogFormat, Http3Config, MetricsConfig, ServerConfig};
pub use error::{Error, ErrorKind, Result};
pub use fault::{Faults, PANIC_PATH_ENV};
pub use metrics::CONTENT_TYPE_TEXT as METRICS_CONTENT_TYPE;
pub use queue::{Incoming, Responder, Version, Waker};
pub use reply::{Reply, ReplyBatch};
pub use router::{Match, PatternError, Router};
pub use server::Server;
pub use static_files::{Dotfiles, StaticMount};
pub use stats::StatsSnapshot;
pub use tls::TlsSettings;
pub use ws::{
    encode_events as encode_ws_events, SendStatus, WsEvent, WsEventKind, WsFrame, WsOptions,
};
