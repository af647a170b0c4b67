//! `httpy-loadgen`: the load generator behind HTTPy's `benchmarkRoute`,
//! `httpy bench` and `npm run bench`.
//!
//! It runs on its own Tokio runtime and threads and shares no code with the
//! server, so a server bug cannot hide in a matching client bug. HTTP/1.1
//! uses a small keep-alive client over `httparse`; HTTP/2 uses the `h2`
//! crate with several streams per connection; both also run over TLS
//! (rustls, ALPN), with an optional new connection per request; HTTP/3
//! runs on quinn and h3; WebSocket echo load is a
//! small RFC 6455 client. Latency goes into an HDR
//! histogram; failures and status codes are counted, never fatal.
//!
//! ```no_run
//! use httpy_loadgen::{run, LoadConfig, Stop};
//! let report = run(LoadConfig::new("127.0.0.1", 8080, "/plaintext").concurrency(64).stop(Stop::Requests(100_000)), None)?;
//! println!("{:.0} req/s, {} errors", report.requests_per_second(), report.errors());
//! # Ok::<(), httpy_loadgen::LoadError>(())
//! ```

mod client;
mod config;
mod driver;
mod error;
mod h1;
mod h2c;
mod h3;
mod shared;
mod stats;
mod tls;
mod ws;

pub use bytes::Bytes;
pub use config::{LoadConfig, Protocol, Stop};
pub use driver::{run, Progress, ProgressFn};
pub use error::LoadError;
pub use stats::{FailureKind, Latency, Report};
pub use tls::TlsOptions;
