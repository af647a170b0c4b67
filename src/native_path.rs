//! Bindings of the native response path: the compression option, static
//! mounts and cached routes (carried on the route table), file replies and
//! streamed replies.
//!
//! A streamed reply is a [`NativeStream`]: JS writes chunks without
//! blocking; when the core's small per-stream buffer is full, `write` says so
//! and the `onWritable` callback fires once the socket has taken some, so a
//! slow client slows the JS producer instead of growing a buffer.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use std::time::Duration;

use httpy_core::RouteExtra;
use httpy_core::{
    body_channel, BodySender, Bytes, CompressConfig, Dotfiles, Reply, Router, StaticMount,
    WriteOutcome,
};

use crate::{EventFn, NativeRoute, NativeServer};

/// The `compression` option, validated by the TS layer.
#[napi(object)]
pub struct NativeCompression {
    pub gzip: bool,
    pub br: bool,
    pub zstd: bool,
    pub min_size: f64,
    pub types: Vec<String>,
    pub level: Option<u32>,
}

/// A `serveStatic` mount attached to its catch-all route.
#[napi(object)]
pub struct NativeStatic {
    pub dir: String,
    pub max_age: Option<f64>,
    pub immutable: bool,
    pub etag: bool,
    /// Index file name; empty disables index files.
    pub index: String,
    /// `ignore`, `deny` or `allow`.
    pub dotfiles: String,
    /// Interval between checks of a cached file against the disk.
    pub revalidate_ms: f64,
}

pub(crate) fn compression_config(c: Option<NativeCompression>) -> Option<CompressConfig> {
    c.map(|c| CompressConfig {
        gzip: c.gzip,
        br: c.br,
        zstd: c.zstd,
        min_size: c.min_size.max(0.0) as usize,
        types: c.types,
        level: c.level,
    })
}

/// Attaches a route's static mount or cache ttl to the router.
pub(crate) fn apply_extras(router: &mut Router, r: &NativeRoute) -> Result<()> {
    if let Some(s) = &r.static_files {
        let mut mount = StaticMount::new(&s.dir).map_err(|e| {
            Error::new(
                Status::InvalidArg,
                format!(
                    "ERR_HTTPY_INVALID_OPTION: serveStatic: cannot serve {:?}: {e}",
                    s.dir
                ),
            )
        })?;
        mount.max_age = s.max_age.map(|v| v.max(0.0) as u64);
        mount.immutable = s.immutable;
        mount.etag = s.etag;
        mount.index = (!s.index.is_empty()).then(|| s.index.clone());
        mount.dotfiles = match s.dotfiles.as_str() {
            "allow" => Dotfiles::Allow,
            "deny" => Dotfiles::Deny,
            _ => Dotfiles::Ignore,
        };
        mount.revalidate = Duration::from_micros((s.revalidate_ms.max(0.0) * 1000.0) as u64);
        router.set_extra(r.id, RouteExtra::Static(mount));
    } else if let Some(ms) = r.cache_ttl_ms {
        if ms > 0.0 {
            let ttl = Duration::from_micros((ms * 1000.0) as u64);
            let names = r.cache_key_headers.as_deref().unwrap_or_default();
            let extra = RouteExtra::cache(ttl, names).map_err(|e| {
                Error::new(
                    Status::InvalidArg,
                    format!("ERR_HTTPY_INVALID_OPTION: cache.key: {e}"),
                )
            })?;
            router.set_extra(r.id, extra);
        }
    }
    Ok(())
}

/// One streamed response body, written from JS.
#[napi]
pub struct NativeStream {
    tx: Option<BodySender>,
}

const WRITE_OK: u32 = 0;
const WRITE_FULL: u32 = 1;
const WRITE_CLOSED: u32 = 2;

impl NativeStream {
    fn push(&self, chunk: Bytes) -> u32 {
        match self.tx.as_ref().map(|tx| tx.try_write(chunk)) {
            Some(WriteOutcome::Accepted) => WRITE_OK,
            Some(WriteOutcome::Full) => WRITE_FULL,
            Some(WriteOutcome::Closed) | None => WRITE_CLOSED,
        }
    }
}

#[napi]
impl NativeStream {
    /// Queues a chunk: 0 = taken, 1 = buffer full (not taken; write it
    /// again after `onWritable`), 2 = the client is gone.
    #[napi(catch_unwind)]
    pub fn write(&self, chunk: Buffer) -> u32 {
        self.push(Bytes::copy_from_slice(&chunk))
    }

    /// `write` for a string chunk (UTF-8).
    #[napi(catch_unwind)]
    pub fn write_text(&self, chunk: String) -> u32 {
        self.push(Bytes::from(chunk.into_bytes()))
    }

    /// Ends the body cleanly.
    #[napi(catch_unwind)]
    pub fn end(&mut self) {
        self.tx = None;
    }

    /// Ends the body with an error: the connection is aborted (HTTP/1.1) or
    /// the stream reset (HTTP/2), so the client cannot mistake the part it
    /// got for the whole.
    #[napi(catch_unwind)]
    pub fn abort(&mut self, reason: String) {
        if let Some(tx) = self.tx.take() {
            tx.fail_now(reason);
        }
    }
}

#[napi]
impl NativeServer {
    /// Answers request `id` with the file at `path` (served by the core:
    /// validators, ranges, conditional requests). False if the client is gone.
    #[napi(catch_unwind)]
    pub fn respond_file(
        &mut self,
        id: u32,
        status: u32,
        headers: String,
        path: String,
    ) -> Result<bool> {
        self.finish_with(id, status, &headers, |r| r.with_file(path))
    }

    /// Starts a streamed answer to request `id`. `on_writable` is called
    /// after a `write` returned 1 and the buffer has room again. Returns
    /// `null` when the client is already gone.
    #[napi(catch_unwind)]
    pub fn respond_stream(
        &mut self,
        id: u32,
        status: u32,
        headers: String,
        on_writable: Function<u32, ()>,
    ) -> Result<Option<NativeStream>> {
        let tsfn: EventFn = on_writable
            .build_threadsafe_function()
            .callee_handled::<false>()
            .build()?;
        let notify = Box::new(move || {
            tsfn.call(0, ThreadsafeFunctionCallMode::NonBlocking);
        });
        let (tx, rx) = body_channel(None, Some(notify));
        let sent = self.finish_with(id, status, &headers, |r| r.with_stream(rx))?;
        Ok(sent.then_some(NativeStream { tx: Some(tx) }))
    }

    fn finish_with(
        &mut self,
        id: u32,
        status: u32,
        headers: &str,
        with: impl FnOnce(Reply) -> Reply,
    ) -> Result<bool> {
        let Some(responder) = self.responders.remove(&id) else {
            return Ok(false);
        };
        match Reply::from_parts(status.min(u16::MAX as u32) as u16, headers, Bytes::new()) {
            Ok(reply) => Ok(responder.send(with(reply))),
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
}
