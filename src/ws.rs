//! `impl NativeServer`, WebSockets: accept an upgrade, take event batches
//! (layout: `WsEventAt` in `contract.rs`), send, close, flow control and
//! pub/sub. Values are converted here; the protocol lives in `httpy-core`.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::time::Duration;

use httpy_core::{Bytes, Reply, SendStatus, WsCompression, WsFrame, WsOptions};

use crate::contract::{SendResult, WsCompressionMode};
use crate::convert::{self, bytes_of, core_error, ms, status};
use crate::server::NativeServer;

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
        };
        Ok(server.ws_accept(id, responder, reply, opts))
    }

    /// Takes the waiting WebSocket events: `[records, ...largePayloads]`.
    /// Layout: `WsEventAt` in `contract.rs`.
    #[napi(catch_unwind)]
    pub fn ws_drain(&self) -> Vec<Buffer> {
        let Some(server) = &self.server else {
            return Vec::new();
        };
        let events = server.take_ws_events();
        if events.is_empty() {
            return Vec::new();
        }
        let mut records = Vec::with_capacity(events.len() * 16 + 64);
        let mut external: Vec<Bytes> = Vec::new();
        httpy_core::encode_ws_events(&events, &mut records, &mut external);
        drop(events);
        convert::batch(records, external)
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
        self.ws_send(id, WsFrame::Binary(bytes_of(data)))
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
            s.ws_publish(&topic, WsFrame::Binary(bytes_of(data))) as u32
        })
    }
}
