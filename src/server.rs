//! The `NativeServer` class: start, where it is bound, close, and the
//! request/response crossing — request batches out (`drainInto`,
//! `takeBodies`), every kind of answer in (`respondBatch`, `respond*`,
//! `abandon`). The methods of the other concerns are
//! in `ws.rs` (WebSockets) and `stats.rs` (counters, metrics), one `impl`
//! block each.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use rustc_hash::FxHashMap;

use httpy_core::{body_channel, Bytes, HeaderMap, Records, Reply, Responder, Server};

use crate::contract::{BatchAt, ServerEvent};
use crate::convert::{core_error, event_fn, ms, status, EventFn, Releases};
use crate::options::{server_config, NativeOptions};
use crate::routes::{build_router, NativeRoute};
use crate::streams::NativeStream;

struct JsWaker {
    events: EventFn,
    /// The records carry the absolute URL (`NativeOptions::request_urls`).
    urls: bool,
}

impl JsWaker {
    fn tell(&self, event: ServerEvent) {
        self.events
            .call(event as u32, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

impl httpy_core::Waker for JsWaker {
    fn wake(&self) {
        self.tell(ServerEvent::Requests);
    }
    fn closed(&self) {
        self.tell(ServerEvent::Closed);
    }
    fn wake_ws(&self) {
        self.tell(ServerEvent::Ws);
    }
    // Requests are encoded by the I/O thread that parsed them; this thread
    // copies the bytes (`drainInto`).
    fn records(&self) -> bool {
        true
    }
    fn urls(&self) -> bool {
        self.urls
    }
}

#[napi]
pub struct NativeServer {
    pub(crate) server: Option<Server>,
    pub(crate) responders: FxHashMap<u32, Responder>,
    drains: u64,
    /// The batch taken last: its records until `drainInto` has copied them
    /// out (kept when JS's buffer was too small), then emptied and handed
    /// back to the queue with the next take, buffers and all.
    taken: Records,
    /// Large bodies of the batch last drained, for `takeBodies`.
    bodies: Vec<Bytes>,
    /// Emptied header maps of answers already written, for the next
    /// replies (`Server::spare_maps`, docs/performance.md §17.3).
    maps: Vec<HeaderMap>,
    port: u32,
    address: String,
    /// Large JS bodies the core has written, released on this thread.
    pub(crate) releases: Releases,
}

/// A reply of a `respondBatch` call that was refused.
#[napi(object)]
pub struct BatchError {
    /// Position of the reply in the batch.
    pub index: u32,
    /// `CODE: message`, as thrown by the single-reply calls.
    pub message: String,
}

#[napi]
impl NativeServer {
    /// Binds and starts serving. `on_event` is told a `ServerEvent`:
    /// requests are waiting (call `drain`), WebSocket events are waiting
    /// (call `wsDrain`), or the close has finished.
    #[napi(factory, catch_unwind)]
    pub fn listen(
        options: NativeOptions,
        routes: Vec<NativeRoute>,
        on_event: Function<u32, ()>,
    ) -> Result<NativeServer> {
        let router = build_router(&routes)?;
        let urls = options.request_urls.unwrap_or(false);
        let config = server_config(options)?;
        let waker = Box::new(JsWaker {
            events: event_fn(on_event)?,
            urls,
        });
        let server = Server::start(config, router, waker)
            .map_err(|e| core_error(Status::GenericFailure, e))?;
        let addr = server.local_addr();
        // On a Unix socket the address is its path (and the port 0).
        let address = match server.unix_path() {
            Some(p) => p.to_string_lossy().into_owned(),
            None => addr.ip().to_string(),
        };
        Ok(NativeServer {
            port: addr.port() as u32,
            address,
            server: Some(server),
            responders: FxHashMap::default(),
            drains: 0,
            taken: Records::default(),
            bodies: Vec::new(),
            maps: Vec::new(),
            releases: Releases::default(),
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

    /// The served certificate chain (PEM) when TLS is on, so that a
    /// generated development certificate can be trusted explicitly.
    #[napi(getter)]
    pub fn certificate(&self) -> Option<String> {
        self.server.as_ref().and_then(|s| s.tls_certificate_pem())
    }

    /// Replaces the TLS certificates for every later handshake (TCP and
    /// QUIC); open connections keep theirs. Throws `ERR_HTTPY_TLS` naming
    /// the file at fault, and then the old certificates stay in use.
    #[napi(catch_unwind)]
    pub fn set_tls(&self, tls: crate::tls::NativeTls) -> Result<()> {
        let source = crate::tls::source(tls)?;
        match &self.server {
            Some(s) => s.set_tls(&source).map_err(crate::tls::tls_error),
            None => Err(Error::new(
                Status::GenericFailure,
                "ERR_HTTPY_SERVER_CLOSED: the server is closed",
            )),
        }
    }

    /// Where ACME stands (null without `tls.acme`).
    #[napi(catch_unwind)]
    pub fn acme_status(&self) -> Option<crate::tls::NativeAcmeStatus> {
        self.server.as_ref()?.acme_status().map(Into::into)
    }

    /// The UDP port serving HTTP/3, or null when HTTP/3 is off.
    #[napi(getter)]
    pub fn http3_port(&self) -> Option<u32> {
        self.server
            .as_ref()
            .and_then(|s| s.http3_port())
            .map(u32::from)
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

    /// Takes the waiting requests into `out`, a buffer JS keeps and reuses:
    /// `u32 external body count`, then the records (layout: `RecordAt`,
    /// `contract.rs`). Returns the bytes written, 0 when no request waits,
    /// or minus the size needed when `out` is too small (call again with a
    /// larger one; the batch is kept meanwhile). Large bodies follow with
    /// `takeBodies()`. JS calls this until it returns 0: only that empty
    /// take re-arms the core's wake-up. Writing into a JS-owned buffer costs
    /// no external buffer and no finalizer per batch, unlike returning one.
    #[napi(catch_unwind)]
    pub fn drain_into(&mut self, mut out: Uint8ArraySlice) -> f64 {
        // SAFETY: the slice is the caller's buffer, borrowed for this call
        // only, on the JS thread; nothing else reads or writes it meanwhile.
        let out = unsafe { out.as_mut() };
        self.releases.release();
        if self.taken.bytes.is_empty() {
            let Some(server) = &self.server else {
                return 0.0;
            };
            self.taken.clear();
            let taken = server.take_records(&mut self.taken);
            self.drains += 1;
            // A handler that never settles would keep its responder here
            // after the core has already answered the client
            // (requestTimeout). Sweep those now and then so the map cannot
            // grow without bound.
            if self.drains.is_multiple_of(256) && self.responders.len() > 256 {
                self.responders.retain(|_, r| !r.is_abandoned());
            }
            if !taken {
                return 0.0;
            }
            for (id, responder) in self.taken.responders.drain(..) {
                self.responders.insert(id, responder);
            }
            // The batch's large bodies, numbered from 0 in its records.
            self.bodies.clear();
            std::mem::swap(&mut self.bodies, &mut self.taken.bodies);
        }
        let first = BatchAt::FirstRecord as usize;
        let len = first + self.taken.bytes.len();
        if len > out.len() {
            return -(len as f64);
        }
        let at = BatchAt::BodyCount as usize;
        out[at..at + 4].copy_from_slice(&(self.bodies.len() as u32).to_le_bytes());
        out[first..len].copy_from_slice(&self.taken.bytes);
        self.taken.bytes.clear();
        len as f64
    }

    /// The large bodies of the batch last taken by `drainInto`, in record
    /// order. `Vec::from(Bytes)` reuses the allocation when the body is
    /// uniquely owned, so they reach JS without a copy.
    #[napi(catch_unwind)]
    pub fn take_bodies(&mut self) -> Vec<Buffer> {
        self.bodies
            .drain(..)
            .map(|b| Buffer::from(Vec::<u8>::from(b)))
            .collect()
    }

    /// Answers a batch of requests with whole bodies, written by JS into
    /// one buffer (layout: `ReplyBatch` in the core). One call per batch
    /// instead of one per response: the argument is read in place (a typed
    /// array slice costs no reference, unlike `Buffer`) and copied once.
    /// Returns the replies that were refused (bad status or header), by
    /// position in the batch; their requests stay answerable.
    ///
    /// `bodies`: the large bodies of the batch, lent (not copied), taken in
    /// order by the replies whose body length is `ReplyBatch::LENT`. They
    /// ride with the batch's one call and its one delivery instead of a
    /// call each (the former `respondBytes`), which sent its reply from the
    /// JS thread alone and so woke the I/O thread once per large body.
    #[napi(catch_unwind)]
    pub fn respond_batch(
        &mut self,
        batch: &[u8],
        bodies: Option<Vec<Buffer>>,
    ) -> Option<Vec<BatchError>> {
        self.releases.release();
        let bodies: Vec<Bytes> = bodies
            .unwrap_or_default()
            .into_iter()
            .map(|b| self.releases.bytes_of(b))
            .collect();
        let mut errors: Option<Vec<BatchError>> = None;
        let mut ready = Vec::new();
        let mut maps = std::mem::take(&mut self.maps);
        if let Some(server) = &self.server {
            server.spare_maps(&mut maps);
        }
        let mut replies = httpy_core::ReplyBatch::new(batch)
            .with_maps(maps)
            .with_bodies(bodies);
        for (index, (id, reply)) in replies.by_ref().enumerate() {
            match reply {
                Ok(reply) => {
                    if let Some(responder) = self.responders.remove(&id) {
                        ready.push((responder, reply));
                    }
                }
                Err(e) => errors.get_or_insert_with(Vec::new).push(BatchError {
                    index: index as u32,
                    message: format!("{}: {}", e.code(), e.message()),
                }),
            }
        }
        self.maps = replies.into_maps();
        if let Some(server) = &self.server {
            server.deliver(ready);
        }
        errors
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
        self.respond(id, status, &headers, body, Ok)
    }

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
        self.respond(
            id,
            status,
            &headers,
            Bytes::new(),
            |r| Ok(r.with_file(path)),
        )
    }

    /// Starts a streamed answer to request `id`. `on_writable` is called
    /// after a `write` returned `Full` and the buffer has room again.
    /// Returns `null` when the client is already gone.
    #[napi(catch_unwind)]
    pub fn respond_stream(
        &mut self,
        id: u32,
        status: u32,
        headers: String,
        on_writable: Function<u32, ()>,
    ) -> Result<Option<NativeStream>> {
        let tsfn = event_fn(on_writable)?;
        let notify = Box::new(move || {
            tsfn.call(0, ThreadsafeFunctionCallMode::NonBlocking);
        });
        let (tx, rx) = body_channel(None, Some(notify));
        let sent = self.respond(
            id,
            status,
            &headers,
            Bytes::new(),
            |r| Ok(r.with_stream(rx)),
        )?;
        Ok(sent.then(|| NativeStream::new(tx)))
    }

    /// Like `respondText` (or a lent binary body), with resources to push (HTTP/2):
    /// `push` holds path, as, path, as, … joined by newlines.
    #[napi(catch_unwind)]
    pub fn respond_push(
        &mut self,
        id: u32,
        status: u32,
        headers: String,
        body: Option<Either<String, Buffer>>,
        push: String,
    ) -> Result<bool> {
        let body = match body {
            None => Bytes::new(),
            Some(Either::A(s)) => Bytes::from(s.into_bytes()),
            Some(Either::B(b)) => self.releases.bytes_of(b),
        };
        self.respond(id, status, &headers, body, |r| r.with_push(&push))
    }

    /// Drops request `id` without an answer: the client gets a 500. Used
    /// when the JS side cannot produce any response at all.
    #[napi(catch_unwind)]
    pub fn abandon(&mut self, id: u32) {
        self.responders.remove(&id);
    }

    /// Starts a graceful close; `ServerEvent.Closed` follows when it is done.
    #[napi(catch_unwind)]
    pub fn close(&self, grace_ms: f64) {
        if let Some(s) = &self.server {
            s.close(ms(grace_ms));
        }
    }

    /// Releases the runtime and the JS callback after `close` finished.
    #[napi(catch_unwind)]
    pub fn dispose(&mut self) {
        self.responders.clear();
        self.server = None;
        self.releases.release();
    }
}

impl NativeServer {
    /// Every answer goes through here: builds the reply from status, header
    /// block and body, lets `with` finish it, and sends it. False when the
    /// client is gone; an error (invalid status or headers) leaves the
    /// request answerable, so the caller can still send a 500.
    fn respond(
        &mut self,
        id: u32,
        status_code: u32,
        headers: &str,
        body: Bytes,
        with: impl FnOnce(Reply) -> httpy_core::Result<Reply>,
    ) -> Result<bool> {
        self.releases.release();
        let Some(responder) = self.responders.remove(&id) else {
            return Ok(false);
        };
        match Reply::from_parts(status(status_code), headers, body).and_then(with) {
            Ok(reply) => Ok(responder.send(reply)),
            Err(e) => {
                self.responders.insert(id, responder);
                Err(core_error(Status::InvalidArg, e))
            }
        }
    }
}
