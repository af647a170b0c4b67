//! Node-API binding for `httpy-core`.
//!
//! This crate only converts values between JS and the core: options in,
//! request batches out (one buffer per batch), replies in. Every exported
//! function catches panics (`catch_unwind`) so none can reach the process.

pub mod meta;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use rustc_hash::FxHashMap;
use std::time::Duration;

mod ws;

use httpy_core::{Bytes, Reply, Responder, Router, Server, ServerConfig};

pub mod http3;
pub mod loadgen;
mod native_path;
mod production;
pub mod testing;
mod tls;

/// Bodies smaller than this are copied out of the JS buffer: a copy is
/// cheaper than keeping a reference whose release must hop back to the JS
/// thread.
pub(crate) const ZERO_COPY_MIN: usize = 16 * 1024;

#[napi(object)]
pub struct NativeOptions {
    pub host: String,
    pub port: u32,
    pub read_buffer_size: Option<u32>,
    pub write_buffer_size: Option<u32>,
    pub keep_alive: bool,
    pub keep_alive_timeout_ms: f64,
    pub request_timeout_ms: f64,
    pub max_keep_alive_requests: f64,
    pub max_connections: u32,
    pub max_body_size: f64,
    pub max_header_size: u32,
    pub max_pending_requests: u32,
    pub threads: u32,
    pub js_handles_misses: bool,
    pub backlog: u32,
    /// Production settings (`src/production.rs`).
    pub reuse_port: Option<bool>,
    pub metrics: Option<bool>,
    pub metrics_path: Option<String>,
    pub access_log_format: Option<String>,
    pub access_log_path: Option<String>,
    /// `trustProxy`, as the JS side validated it: every peer, the nearest
    /// `n` hops, or addresses/CIDRs (named ranges already expanded).
    pub trust_proxy_all: Option<bool>,
    pub trust_proxy_hops: Option<u32>,
    pub trust_proxy_nets: Option<Vec<String>>,
    pub tls: Option<tls::NativeTls>,
    pub http2: Option<tls::NativeHttp2>,
    pub http3: Option<http3::NativeHttp3>,
    pub compression: Option<native_path::NativeCompression>,
}

#[napi(object)]
pub struct NativeRoute {
    pub method: String,
    pub pattern: String,
    pub id: u32,
    /// Set on the catch-all route of a `serveStatic` mount.
    pub static_files: Option<native_path::NativeStatic>,
    /// Route cache ttl in milliseconds.
    pub cache_ttl_ms: Option<f64>,
    /// Request headers that join the route cache's key (lower case). A
    /// request carrying `Authorization` or `Cookie` is answered from the
    /// cache only when that header is named here.
    pub cache_key_headers: Option<Vec<String>>,
}

#[napi(object)]
pub struct NativeStats {
    pub connections_open: f64,
    pub connections_total: f64,
    pub requests_total: f64,
    pub pending: f64,
    pub native_responses: f64,
    pub rejected_overload: f64,
    pub timed_out: f64,
    pub panics: f64,
    /// Responders held on the JS side awaiting a handler's answer.
    pub held_responders: f64,
    /// WebSocket connections running now, and since the start.
    pub websockets_open: f64,
    pub websockets_total: f64,
    /// Open HTTP/1 connections parked while idle, holding no buffers.
    pub connections_idle: f64,
    /// Static file requests answered from the file cache, and those that
    /// resolved the file.
    pub static_cache_hits: f64,
    pub static_cache_misses: f64,
    /// Files in the file cache now, and the memory charged for them.
    pub static_cache_entries: f64,
    pub static_cache_bytes: f64,
}

type EventFn = ThreadsafeFunction<u32, (), u32, Status, false>;

/// Event codes passed to the JS callback.
const EVENT_REQUESTS: u32 = 0;
const EVENT_CLOSED: u32 = 1;
const EVENT_WS: u32 = 2;

struct JsWaker(EventFn);

impl httpy_core::Waker for JsWaker {
    fn wake(&self) {
        self.0
            .call(EVENT_REQUESTS, ThreadsafeFunctionCallMode::NonBlocking);
    }
    fn closed(&self) {
        self.0
            .call(EVENT_CLOSED, ThreadsafeFunctionCallMode::NonBlocking);
    }
    fn wake_ws(&self) {
        self.0
            .call(EVENT_WS, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

fn core_error(e: httpy_core::Error) -> Error {
    // The TS layer turns the "CODE: message" prefix into `err.code`.
    Error::new(
        Status::GenericFailure,
        format!("{}: {}", e.code(), e.message()),
    )
}

fn build_router(routes: &[NativeRoute]) -> Result<Router> {
    let mut router = Router::new();
    for r in routes {
        router
            .insert(&r.method, &r.pattern, r.id)
            .map_err(|e| Error::new(Status::InvalidArg, format!("ERR_HTTPY_INVALID_ROUTE: {e}")))?;
        native_path::apply_extras(&mut router, r)?;
    }
    Ok(router)
}

/// Checks route patterns without starting anything (used at registration
/// so a bad pattern fails where it is written).
#[napi(catch_unwind)]
pub fn validate_route(method: String, pattern: String) -> Result<()> {
    build_router(&[NativeRoute {
        method,
        pattern,
        id: 0,
        static_files: None,
        cache_ttl_ms: None,
        cache_key_headers: None,
    }])
    .map(|_| ())
}

/// A no-op native call: the floor of any JS -> Rust crossing.
#[napi]
pub fn noop() {}

/// Wakes the JS thread from a Rust thread once: the floor of the
/// Rust -> JS hand-off that every request batch pays.
#[napi(catch_unwind)]
pub fn wake_once(callback: Function<u32, ()>) -> Result<()> {
    let tsfn: EventFn = callback
        .build_threadsafe_function()
        .callee_handled::<false>()
        .build()?;
    std::thread::spawn(move || {
        tsfn.call(0, ThreadsafeFunctionCallMode::NonBlocking);
    });
    Ok(())
}

#[napi]
pub struct NativeServer {
    pub(crate) server: Option<Server>,
    pub(crate) responders: FxHashMap<u32, Responder>,
    drains: u64,
    port: u32,
    address: String,
}

#[napi]
impl NativeServer {
    /// Binds and starts serving. `on_event(0)` means requests are waiting
    /// (call `drain`), `on_event(1)` means the close has finished.
    #[napi(factory, catch_unwind)]
    pub fn listen(
        mut options: NativeOptions,
        routes: Vec<NativeRoute>,
        on_event: Function<u32, ()>,
    ) -> Result<NativeServer> {
        let router = build_router(&routes)?;
        let ms = |v: f64| Duration::from_micros((v.max(0.0) * 1000.0) as u64);
        let mut config = ServerConfig {
            host: options.host.clone(),
            port: options.port as u16,
            read_buffer_size: options.read_buffer_size.map(|v| v as usize),
            write_buffer_size: options.write_buffer_size.map(|v| v as usize),
            keep_alive: options.keep_alive,
            keep_alive_timeout: ms(options.keep_alive_timeout_ms),
            request_timeout: ms(options.request_timeout_ms),
            max_keep_alive_requests: options.max_keep_alive_requests.max(0.0) as u64,
            max_connections: options.max_connections as usize,
            max_body_size: options.max_body_size.max(0.0) as u64,
            max_header_size: options.max_header_size as usize,
            max_pending_requests: options.max_pending_requests as usize,
            threads: options.threads as usize,
            js_handles_misses: options.js_handles_misses,
            backlog: options.backlog,
            compression: native_path::compression_config(options.compression.take()),
            ..ServerConfig::default()
        };
        production::apply(&options, &mut config)?;
        tls::apply(&mut config, options.tls, options.http2)?;
        http3::apply(&mut config, options.http3);
        let tsfn: EventFn = on_event
            .build_threadsafe_function()
            .callee_handled::<false>()
            .build()?;
        let server = Server::start(config, router, Box::new(JsWaker(tsfn))).map_err(core_error)?;
        let addr = server.local_addr();
        Ok(NativeServer {
            port: addr.port() as u32,
            address: addr.ip().to_string(),
            server: Some(server),
            responders: FxHashMap::default(),
            drains: 0,
        })
    }

    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.port
    }

    #[napi(getter)]
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// Replaces the route table of a running server.
    #[napi(catch_unwind)]
    pub fn set_routes(&self, routes: Vec<NativeRoute>) -> Result<()> {
        let router = build_router(&routes)?;
        if let Some(s) = &self.server {
            s.set_router(router);
        }
        Ok(())
    }

    /// Takes the waiting requests: `[records, ...externalBodies]`, or an
    /// empty array when there are none. Layout: `crates/core/src/record.rs`.
    #[napi(catch_unwind)]
    pub fn drain(&mut self) -> Vec<Buffer> {
        let Some(server) = &self.server else {
            return Vec::new();
        };
        let batch = server.take_batch();
        self.drains += 1;
        // A handler that never settles would keep its responder here after
        // the core has already answered the client (requestTimeout). Sweep
        // those now and then so the map cannot grow without bound.
        if self.drains.is_multiple_of(256) && self.responders.len() > 256 {
            self.responders.retain(|_, r| !r.is_abandoned());
        }
        if batch.is_empty() {
            return Vec::new();
        }
        let mut records = Vec::with_capacity(batch.len() * 256);
        let mut external: Vec<Bytes> = Vec::new();
        for req in batch {
            httpy_core::record::encode(&req, &mut records, &mut external);
            self.responders.insert(req.id, req.responder);
        }
        let mut out = Vec::with_capacity(1 + external.len());
        out.push(Buffer::from(records));
        // `Vec::from(Bytes)` reuses the allocation when the body is uniquely
        // owned, so large bodies reach JS without a copy.
        out.extend(
            external
                .into_iter()
                .map(|b| Buffer::from(Vec::<u8>::from(b))),
        );
        out
    }

    /// Answers request `id` with a string body (or none). Returns false if
    /// the client is gone. Throws if status or headers are invalid.
    #[napi(catch_unwind)]
    pub fn respond_text(
        &mut self,
        id: u32,
        status: u32,
        headers: String,
        body: Option<String>,
    ) -> Result<bool> {
        let body = body
            .map(|s| Bytes::from(s.into_bytes()))
            .unwrap_or_default();
        self.finish(id, status, &headers, body)
    }

    /// Answers request `id` with a binary body; large bodies are referenced,
    /// not copied.
    #[napi(catch_unwind)]
    pub fn respond_bytes(
        &mut self,
        id: u32,
        status: u32,
        headers: String,
        body: Buffer,
    ) -> Result<bool> {
        let body = if body.len() >= ZERO_COPY_MIN {
            Bytes::from_owner(body)
        } else {
            Bytes::copy_from_slice(&body)
        };
        self.finish(id, status, &headers, body)
    }

    /// Drops request `id` without an answer: the client gets a 500. Used
    /// when the JS side cannot produce any response at all.
    #[napi(catch_unwind)]
    pub fn abandon(&mut self, id: u32) {
        self.responders.remove(&id);
    }

    fn finish(&mut self, id: u32, status: u32, headers: &str, body: Bytes) -> Result<bool> {
        self.send_reply(
            id,
            Reply::from_parts(status.min(u16::MAX as u32) as u16, headers, body),
        )
    }

    fn send_reply(&mut self, id: u32, reply: httpy_core::Result<Reply>) -> Result<bool> {
        let Some(responder) = self.responders.remove(&id) else {
            return Ok(false);
        };
        match reply {
            Ok(reply) => Ok(responder.send(reply)),
            Err(e) => {
                // Keep the request answerable: the caller turns the error into a 500.
                self.responders.insert(id, responder);
                Err(Error::new(
                    Status::InvalidArg,
                    format!("{}: {}", e.code(), e.message()),
                ))
            }
        }
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> NativeStats {
        let s = self.server.as_ref().map(|s| s.stats()).unwrap_or_default();
        NativeStats {
            connections_open: s.connections_open as f64,
            connections_total: s.connections_total as f64,
            requests_total: s.requests_total as f64,
            pending: s.pending as f64,
            native_responses: s.direct_responses as f64,
            rejected_overload: s.rejected_overload as f64,
            timed_out: s.timed_out as f64,
            panics: s.panics as f64,
            held_responders: self.responders.len() as f64,
            websockets_open: s.websockets_open as f64,
            websockets_total: s.websockets_total as f64,
            connections_idle: s.connections_idle as f64,
            static_cache_hits: s.static_cache_hits as f64,
            static_cache_misses: s.static_cache_misses as f64,
            static_cache_entries: s.static_cache_entries as f64,
            static_cache_bytes: s.static_cache_bytes as f64,
        }
    }

    /// Starts a graceful close; `on_event(1)` follows when it is done.
    #[napi(catch_unwind)]
    pub fn close(&self, grace_ms: f64) {
        if let Some(s) = &self.server {
            s.close(Duration::from_micros((grace_ms.max(0.0) * 1000.0) as u64));
        }
    }

    /// Releases the runtime and the JS callback after `close` finished.
    #[napi(catch_unwind)]
    pub fn dispose(&mut self) {
        self.responders.clear();
        self.server = None;
    }
}
