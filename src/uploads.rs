//! Streamed request bodies and `request.signal`, as JS sees them: the
//! `NativeServer` methods that hand a request's streamed body to JS
//! (`takeUpload`, giving a [`NativeUpload`]) and that tell JS when a
//! request's answer is no longer wanted (`watchAbort`). The core side is
//! `httpy_core`'s `body::upload` and `dispatch::abort`.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use httpy_core::{UploadRead, UploadReceiver};

use crate::contract::AbortState;
use crate::convert::event_fn;
use crate::server::NativeServer;

/// One streamed request body, read from JS without blocking.
#[napi]
pub struct NativeUpload {
    rx: Option<UploadReceiver>,
    /// An end or error met while gathering chunks, reported by the next `read`.
    held: Option<UploadRead>,
}

/// The most one `read` gathers into one buffer.
const READ_MAX: usize = 256 * 1024;

fn upload_error(e: &httpy_core::UploadError) -> Error {
    Error::new(
        Status::GenericFailure,
        format!("{}: {}", e.code(), e.message()),
    )
}

#[napi]
impl NativeUpload {
    /// The next chunk, or `null` when none is ready (`onReadable` fires
    /// once one is) or the body is over (`ended`). Throws `CODE: message`
    /// when the body failed: `ERR_HTTPY_BODY_TOO_LARGE` (past
    /// `maxBodySize`; the client got 413) or `ERR_HTTPY_BODY_ABORTED`.
    #[napi(catch_unwind)]
    pub fn read(&mut self) -> Result<Option<Buffer>> {
        let Some(rx) = self.rx.as_mut() else {
            return Ok(None);
        };
        let first = match self.held.take().unwrap_or_else(|| rx.try_read()) {
            UploadRead::Chunk(c) => c,
            UploadRead::Pending => return Ok(None),
            UploadRead::End => {
                self.rx = None;
                return Ok(None);
            }
            UploadRead::Failed(e) => {
                self.rx = None;
                return Err(upload_error(&e));
            }
        };
        // hyper hands over chunks of ~16 KiB: what is already waiting goes
        // out in one buffer (up to READ_MAX), so a 1 GB upload costs
        // thousands of crossings rather than tens of thousands. The copy
        // is made anyway (a chunk rarely owns its memory alone).
        let mut total = first.len();
        let mut chunks = vec![first];
        while total < READ_MAX {
            match rx.try_read() {
                UploadRead::Chunk(c) => {
                    total += c.len();
                    chunks.push(c);
                }
                UploadRead::Pending => break,
                // Reported by the next `read`.
                end => {
                    self.held = Some(end);
                    break;
                }
            }
        }
        let mut out = Vec::with_capacity(total);
        for c in &chunks {
            out.extend_from_slice(c);
        }
        Ok(Some(Buffer::from(out)))
    }

    /// True once the whole body was read (or it failed).
    #[napi(getter)]
    pub fn ended(&self) -> bool {
        self.rx.is_none()
    }

    /// Stops reading: the rest of the body is not read from the client.
    #[napi(catch_unwind)]
    pub fn cancel(&mut self) {
        self.rx = None;
        self.held = None;
    }
}

#[napi]
impl NativeServer {
    /// The streamed body of request `id` (its record has
    /// `RecordFlag.Streamed`), once; `null` when taken already or the
    /// request is over. With `parts` (a record with
    /// `RecordFlag.PartsOnAsk`), the body is parsed as multipart and read
    /// as `PartFrame` frames; `null` when it is not such a body.
    /// `on_readable` is called after a `read` that found nothing, once
    /// something (a chunk, the end, an error) is there.
    #[napi(catch_unwind)]
    pub fn take_upload(
        &self,
        id: u32,
        on_readable: Function<u32, ()>,
        parts: Option<bool>,
    ) -> Result<Option<NativeUpload>> {
        let Some(server) = self.server.as_ref() else {
            return Ok(None);
        };
        let taken = if parts == Some(true) {
            server.take_parts(id)
        } else {
            server.take_upload(id)
        };
        let Some(rx) = taken else {
            return Ok(None);
        };
        let tsfn = event_fn(on_readable)?;
        rx.on_readable(Box::new(move || {
            tsfn.call(0, ThreadsafeFunctionCallMode::NonBlocking);
        }));
        Ok(Some(NativeUpload {
            rx: Some(rx),
            held: None,
        }))
    }

    /// Calls `on_abort` once if request `id` ends without its answer being
    /// delivered (the client left, or the core answered for the handler:
    /// timeout, 413). Returns `Gone` when that has already happened (no
    /// call follows), `Answered` when the request was answered.
    #[napi(catch_unwind)]
    pub fn watch_abort(&self, id: u32, on_abort: Function<u32, ()>) -> Result<AbortState> {
        let (Some(server), Some(responder)) = (self.server.as_ref(), self.responders.get(&id))
        else {
            return Ok(AbortState::Answered);
        };
        if responder.is_abandoned() {
            return Ok(AbortState::Gone);
        }
        let tsfn = event_fn(on_abort)?;
        let f = Box::new(move || {
            tsfn.call(0, ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(match server.watch_abort(id, responder, f) {
            Some(_) => AbortState::Gone,
            None => AbortState::Watching,
        })
    }
}
