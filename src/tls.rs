//! TLS and HTTP/2 settings: their part of the options → `ServerConfig`
//! conversion. Only value conversion; the protocol work is in `httpy-core`.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use httpy_core::{ServerConfig, TlsSettings};

use crate::convert::core_error;

/// TLS material, already read by the JS side (which knows file names).
#[napi(object)]
pub struct NativeTls {
    /// Generate a development certificate instead of using `cert`/`key`.
    pub self_signed: bool,
    pub cert: Option<Buffer>,
    pub key: Option<Buffer>,
    /// Where `cert`/`key` came from, for error messages.
    pub cert_name: Option<String>,
    pub key_name: Option<String>,
}

#[napi(object)]
pub struct NativeHttp2 {
    pub max_concurrent_streams: u32,
    pub stream_window: u32,
    pub connection_window: u32,
}

fn tls_error(e: httpy_core::Error) -> Error {
    core_error(Status::InvalidArg, e)
}

/// Applies the TLS and HTTP/2 parts of the options to `config`.
pub(crate) fn apply(
    config: &mut ServerConfig,
    tls: Option<NativeTls>,
    http2: Option<NativeHttp2>,
) -> Result<()> {
    if let Some(t) = tls {
        let settings = if t.self_signed {
            TlsSettings::self_signed().map_err(tls_error)?
        } else {
            let (Some(cert), Some(key)) = (t.cert, t.key) else {
                return Err(Error::new(
                    Status::InvalidArg,
                    "ERR_HTTPY_TLS: both cert and key are required",
                ));
            };
            TlsSettings::from_pem(
                &cert,
                &key,
                t.cert_name.as_deref().unwrap_or("cert"),
                t.key_name.as_deref().unwrap_or("key"),
            )
            .map_err(tls_error)?
        };
        config.tls = Some(settings);
    }
    if let Some(h) = http2 {
        config.h2_max_concurrent_streams = h.max_concurrent_streams;
        config.h2_stream_window = h.stream_window;
        config.h2_connection_window = h.connection_window;
    }
    Ok(())
}
