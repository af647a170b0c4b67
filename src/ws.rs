//! `impl NativeServer`, WebSockets: accept an upgrade, take event batches
//! (layout: `WsEventAt` in `contract.rs`), send, close, flow control and
//! pub/sub. Values are converted here; the protocol lives in `httpy-core`.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::time::Duration;

use httpy_core::{Bytes, Reply, SendStatus, WsCompression, WsFrame, WsOptions};

use crate::contract::{SendResult, WsCompressionMode, WsEventKind, WsSendAt};
use crate::convert::{self, core_error, ms, status};
use crate::server::NativeServer;

/// The kind, connection id and payload length of the `wsSendBatch`
/// message at `at`, once its head and payload are known to fit in `batch`.
fn send_head(batch: &[u8], at: usize) -> std::result::Result<(u8, u32, usize), &'static str> {
    let head = at + WsSendAt::Data as usize;
    if head > batch.len() {
        return Err("truncated message head");
    }
    let word = |o: WsSendAt| {
        let i = at + o as usize;
        u32::from_le_bytes([batch[i], batch[i + 1], batch[i + 2], batch[i + 3]])
    };
    let len = word(WsSendAt::Length) as usize;
    if batch.len() - head < len {
        return Err("truncated payload");
    }
    Ok((batch[at + WsSendAt::Kind as usize], word(WsSendAt::Id), len))
}

/// Per-connection settings, already validated by the TS layer.
#[napi(object)]
pub struct NativeWsOptions {
    pub max_message_size: f64,
    /// 0 = none.
    pub idle_timeout_ms: f64,
    /// 0 = none.
    pub heartbeat_ms: f64,
    pub high_water_mark: f64,
    pub max_backpressure: f64,
    pub compression: WsCompressionMode,
    /// Smallest message compressed, in bytes.
    pub compression_threshold: f64,
    /// zlib level of what is sent compressed, 1 to 9.
    pub compression_level: u32,
}

fn opt_ms(v: f64) -> Option<Duration> {
    (v > 0.0).then(|| ms(v))
}

fn send_result(s: SendStatus) -> SendResult {
    match s {
        SendStatus::Queued => SendResult::Queued,
        SendStatus::Backpressure => SendResult::Backpressure,
        SendStatus::Closed => SendResult::Closed,
    }
}

#[napi]
impl NativeServer {
    /// Accepts the upgrade of request `id`, adding the response headers of
    /// the header block (as in `respondText`). Returns false when the client
    /// has gone.
    #[napi(catch_unwind)]
    pub fn ws_accept(
        &mut self,
        id: u32,
        headers: String,
        options: NativeWsOptions,
    ) -> Result<bool> {
        let Some(server) = &self.server else {
            return Ok(false);
        };
        let Some(responder) = self.responders.remove(&id) else {
            return Ok(false);
        };
        let reply = match Reply::from_parts(101, &headers, Bytes::new()) {
            Ok(r) => r,
            Err(e) => {
                self.responders.insert(id, responder);
                return Err(core_error(Status::InvalidArg, e));
            }
        };
        let opts = WsOptions {
            max_message_size: options.max_message_size.max(1.0) as usize,
            idle_timeout: opt_ms(options.idle_timeout_ms),
            heartbeat: opt_ms(options.heartbeat_ms),
            high_water_mark: options.high_water_mark.max(1.0) as usize,
            max_backpressure: options.max_backpressure.max(1.0) as usize,
            compression: match options.compression {
                WsCompressionMode::Off => WsCompression::Off,
                WsCompressionMode::Shared => WsCompression::Shared,
                WsCompressionMode::Dedicated => WsCompression::Dedicated,
            },
            compression_threshold: options.compression_threshold.max(0.0) as usize,
            compression_level: options.compression_level.clamp(1, 9) as u8,
        };
        Ok(server.ws_accept(id, responder, reply, opts))
    }

    /// Takes the waiting WebSocket events: `[records, ...largePayloads]`.
    /// Layout: `WsEventAt` in `contract.rs`.
    #[napi(catch_unwind)]
    pub fn ws_drain(&self) -> Vec<Buffer> {
        self.releases.release();
        let Some(server) = &self.server else {
            return Vec::new();
        };
        // Encoded by the I/O thread as it queued them: handed over as is.
        let events = server.take_ws_events();
        if events.is_empty() {
            return Vec::new();
        }
        convert::batch(events.records, events.external)
    }

    /// Queues a text message: queued, queued above the high-water mark (a
    /// `Drain` event follows), or not at all (connection closed).
    #[napi(catch_unwind)]
    pub fn ws_send_text(&self, id: u32, text: String) -> SendResult {
        self.ws_send(id, WsFrame::Text(text))
    }

    /// Queues a binary message; same result as `wsSendText`.
    #[napi(catch_unwind)]
    pub fn ws_send_binary(&self, id: u32, data: Buffer) -> SendResult {
        self.ws_send(id, WsFrame::Binary(self.releases.bytes_of(data)))
    }

    /// Queues a batch of messages written by the JS side in one buffer
    /// (layout: `WsSendAt`) and wakes their writers, as `wsFlush` does.
    /// One call per event-loop turn instead of one per message: a call
    /// costs ~0.2 µs of N-API and napi-rs bookkeeping (borrow tracking,
    /// unwrapping, string conversion) before any work, which was a sixth
    /// of a WebSocket echo's server CPU. Returns the ids of connections
    /// whose queue went above its high-water mark (a `Drain` event follows);
    /// messages to closed connections are dropped, as with `wsSendText`.
    /// Throws on a malformed batch (the messages before the fault are sent).
    #[napi(catch_unwind)]
    pub fn ws_send_batch(&self, batch: &[u8]) -> Result<Vec<u32>> {
        let Some(server) = &self.server else {
            return Ok(Vec::new());
        };
        let mut full = Vec::new();
        // Flushes (wakes the writers) when dropped, after the loop.
        let mut sender = server.ws_sender();
        // One run's frames; reused, so only the first run allocates it.
        let mut frames = Vec::new();
        let mut at = 0;
        let result = loop {
            if at == batch.len() {
                break Ok(());
            }
            let (_, id, _) = match send_head(batch, at) {
                Ok(h) => h,
                Err(m) => break Err(m),
            };
            // The run of messages for this connection that starts here
            // (one socket read brings several of a client's messages and
            // the handler answers them in order): their payloads are copied
            // into one buffer and each message is a slice of it, one
            // allocation per run instead of one per message, which the I/O
            // thread then freed (a malloc and a cross-thread free were ~6%
            // of a 32-byte echo's server CPU). The buffer holds this
            // connection's queued messages and nothing else, so a slow
            // reader pins no more memory than its own counted backlog.
            let (mut end, mut total) = (at, 0);
            while let Ok((_, next, len)) = send_head(batch, end) {
                if next != id {
                    break;
                }
                total += len;
                end += WsSendAt::Data as usize + len;
            }
            let mut run = Vec::with_capacity(total);
            let mut pos = at;
            while pos < end {
                let (_, _, len) = send_head(batch, pos).expect("scanned above");
                let head = pos + WsSendAt::Data as usize;
                run.extend_from_slice(&batch[head..head + len]);
                pos = head + len;
            }
            let run = Bytes::from(run);
            let mut off = 0;
            let fault = loop {
                if at == end {
                    break None;
                }
                let (kind, _, len) = send_head(batch, at).expect("scanned above");
                let payload = run.slice(off..off + len);
                frames.push(match kind {
                    k if k == WsEventKind::Text as u8 => match WsFrame::text_bytes(payload) {
                        Ok(f) => f,
                        Err(_) => break Some("text message is not UTF-8"),
                    },
                    k if k == WsEventKind::Binary as u8 => WsFrame::Binary(payload),
                    _ => break Some("unknown message kind"),
                });
                off += len;
                at += WsSendAt::Data as usize + len;
            };
            // The run up to a fault, under one lock of the connection's queue.
            if !frames.is_empty()
                && sender.send_run(id, frames.drain(..)) == SendStatus::Backpressure
            {
                full.push(id);
            }
            if let Some(m) = fault {
                break Err(m);
            }
        };
        drop(sender);
        result.map(|()| full).map_err(|m| {
            Error::new(
                Status::InvalidArg,
                format!("ERR_HTTPY_INTERNAL: wsSendBatch: {m} at byte {at}"),
            )
        })
    }

    /// Queues a ping (payload at most 125 bytes, checked by the caller).
    #[napi(catch_unwind)]
    pub fn ws_ping(&self, id: u32, data: Option<Buffer>) -> SendResult {
        let payload = data.map(|b| Bytes::copy_from_slice(&b)).unwrap_or_default();
        self.ws_send(id, WsFrame::Ping(payload))
    }

    // Sends are deferred: the JS side calls `wsFlush` once per turn, so a
    // burst of sends wakes each connection's writer once.
    fn ws_send(&self, id: u32, frame: WsFrame) -> SendResult {
        match &self.server {
            Some(s) => send_result(s.ws_send_deferred(id, frame)),
            None => SendResult::Closed,
        }
    }

    /// Hands every frame queued since the last flush to its connection's writer.
    #[napi(catch_unwind)]
    pub fn ws_flush(&self) {
        if let Some(s) = &self.server {
            s.ws_flush();
        }
    }

    /// Starts the closing handshake. False when already closing or gone.
    #[napi(catch_unwind)]
    pub fn ws_close(&self, id: u32, code: u32, reason: String) -> bool {
        self.server
            .as_ref()
            .is_some_and(|s| s.ws_close(id, status(code), &reason))
    }

    /// Stops or resumes reading from the connection's socket.
    #[napi(catch_unwind)]
    pub fn ws_pause(&self, id: u32, paused: bool) {
        if let Some(s) = &self.server {
            s.ws_pause(id, paused);
        }
    }

    #[napi(catch_unwind)]
    pub fn ws_subscribe(&self, id: u32, topic: String) -> bool {
        self.server
            .as_ref()
            .is_some_and(|s| s.ws_subscribe(id, &topic))
    }

    #[napi(catch_unwind)]
    pub fn ws_unsubscribe(&self, id: u32, topic: String) -> bool {
        self.server
            .as_ref()
            .is_some_and(|s| s.ws_unsubscribe(id, &topic))
    }

    /// Sends a text message to every subscriber of `topic`; returns how many.
    #[napi(catch_unwind)]
    pub fn ws_publish_text(&self, topic: String, text: String) -> u32 {
        self.server
            .as_ref()
            .map_or(0, |s| s.ws_publish(&topic, WsFrame::Text(text)) as u32)
    }

    /// Sends a binary message to every subscriber of `topic`; returns how many.
    #[napi(catch_unwind)]
    pub fn ws_publish_binary(&self, topic: String, data: Buffer) -> u32 {
        self.server.as_ref().map_or(0, |s| {
            s.ws_publish(&topic, WsFrame::Binary(self.releases.bytes_of(data))) as u32
        })
    }

    /// Subscribers of `topic` in this process and, with workers, in the
    /// sibling workers.
    #[napi(catch_unwind)]
    pub fn ws_subscriber_count(&self, topic: String) -> u32 {
        self.server
            .as_ref()
            .map_or(0, |s| s.ws_subscriber_count(&topic) as u32)
    }
}
