//! HTTP/3 settings: their part of the options → `ServerConfig` conversion,
//! and whether HTTP/3 is compiled in at all.

use napi_derive::napi;

use httpy_core::{Http3Config, ServerConfig};

use crate::convert::ms;

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
        idle_timeout: ms(h.idle_timeout_ms),
        validate_address: h.validate_address,
    });
}

/// True when this binary was built with HTTP/3 (the `http3` Cargo feature).
#[napi]
pub fn http3_available() -> bool {
    cfg!(feature = "http3")
}
