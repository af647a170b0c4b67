//! Node-API binding for `httpy-core`.
//!
//! This crate only converts values between JS and the core: options in,
//! request batches out (one buffer per batch), replies in. Every exported
//! function catches panics (`catch_unwind`) so none can reach the process.
//!
//! One module per concern, in the order a request meets them:
//!
//! - `contract`: every number JS must agree on (event codes, record and
//!   WebSocket event layouts, result codes), exported as `#[napi]` consts and
//!   enums so the TypeScript side imports them instead of retyping them.
//! - `options`: `NativeOptions` → `ServerConfig`, with `tls` (TLS, HTTP/2)
//!   and `http3` (HTTP/3) for their parts.
//! - `routes`: the route table (`NativeRoute`, static mounts, cached routes).
//! - `server`: the `NativeServer` class: start, where it is bound, the
//!   request/response crossing (`drain`, `respond*`), close.
//! - `streams`: `NativeStream`, a streamed response body written from JS.
//! - `uploads`: `NativeUpload`, a streamed request body read from JS, and
//!   the watch behind `request.signal`.
//! - `ws`, `stats`: the `NativeServer` methods of one concern each
//!   (WebSockets; counters, metrics and the access log).
//! - `convert`: conversions shared by the above (errors, durations, buffers).
//! - `loadgen`: the load generator behind `httpy/benchmark`.
//! - `meta`, `testing`: build metadata; test and benchmark hooks.

pub mod contract;
pub mod convert;
pub mod http3;
pub mod loadgen;
pub mod meta;
pub mod options;
pub mod routes;
pub mod server;
pub mod stats;
pub mod streams;
pub mod testing;
pub mod tls;
pub mod uploads;
pub mod ws;
