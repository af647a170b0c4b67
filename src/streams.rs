//! A streamed response body, written from JS: a [`NativeStream`] (started
//! by `NativeServer.respondStream` in `server.rs`). JS writes chunks without
//! blocking; when the core's small per-stream buffer is full, `write` says so
//! and the `onWritable` callback fires once the socket has taken some, so a
//! slow client slows the JS producer instead of growing a buffer.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use httpy_core::{BodySender, Bytes, WriteOutcome};

use crate::contract::WriteResult;

/// One streamed response body, written from JS.
#[napi]
pub struct NativeStream {
    tx: Option<BodySender>,
}

impl NativeStream {
    pub(crate) fn new(tx: BodySender) -> Self {
        Self { tx: Some(tx) }
    }

    fn push(&self, chunk: Bytes) -> WriteResult {
        match self.tx.as_ref().map(|tx| tx.try_write(chunk)) {
            Some(WriteOutcome::Accepted) => WriteResult::Accepted,
            Some(WriteOutcome::Full) => WriteResult::Full,
            Some(WriteOutcome::Closed) | None => WriteResult::Closed,
        }
    }
}

#[napi]
impl NativeStream {
    /// Queues a chunk. `Full`: not taken; write it again after
    /// `onWritable`. `Closed`: the client is gone.
    #[napi(catch_unwind)]
    pub fn write(&self, chunk: Buffer) -> WriteResult {
        self.push(Bytes::copy_from_slice(&chunk))
    }

    /// `write` for a string chunk (UTF-8).
    #[napi(catch_unwind)]
    pub fn write_text(&self, chunk: String) -> WriteResult {
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
