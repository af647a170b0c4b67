//! Binding for the HTTP/3 settings and what JS needs to know about them
//! (whether HTTP/3 is compiled in, which UDP port it is on).

use napi_derive::napi;
use std::time::Duration;

use httpy_core::{Http3Config, ServerConfig};

use crate::NativeServer;

/// `http3Port` and `http3Config`, validated by the JS side.
#[napi(object)]
pub struct NativeHttp3 {
    pub port: u32,
    pub max_datagram_size: u32,
    pub stream_window: f64,
    pub connection_window: f64,
    pub max_streams_bidi: f64,
    pub idle_timeout_ms: f64,
    pub validate_address: bool,
}

pub(crate) fn apply(config: &mut ServerConfig, h3: Option<NativeHttp3>) {
    config.http3 = h3.map(|h| Http3Config {
        port: h.port as u16,
        max_datagram_size: h.max_datagram_size.min(u16::MAX as u32) as u16,
        stream_window: h.stream_window.max(0.0) as u64,
        connection_window: h.connection_window.max(0.0) as u64,
        max_streams_bidi: h.max_streams_bidi.max(0.0) as u64,
        idle_timeout: Duration::from_micros((h.idle_timeout_ms.max(0.0) * 1000.0) as u64),
        validate_address: h.validate_address,
    });
}

/// True when this binary was built with HTTP/3 (the `http3` Cargo feature).
#[napi]
pub fn http3_available() -> bool {
    cfg!(feature = "http3")
}

#[napi]
impl NativeServer {
    /// The UDP port serving HTTP/3, or null when HTTP/3 is off.
    #[napi(getter)]
    pub fn http3_port(&self) -> Option<u32> {
        self.server
            .as_ref()
            .and_then(|s| s.http3_port())
            .map(u32::from)
    }
}
