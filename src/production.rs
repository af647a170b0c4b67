//! Binding of the production features: port sharing between processes,
//! Prometheus metrics and the access log.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use httpy_core::{AccessLogConfig, AccessLogFormat, MetricsConfig, ServerConfig, TrustProxy};

use crate::{NativeOptions, NativeServer};

/// Copies the production options into `config`.
pub(crate) fn apply(options: &NativeOptions, config: &mut ServerConfig) -> Result<()> {
    config.reuse_port = options.reuse_port.unwrap_or(false);
    config.trust_proxy = if options.trust_proxy_all.unwrap_or(false) {
        TrustProxy::All
    } else if let Some(n) = options.trust_proxy_hops.filter(|n| *n > 0) {
        TrustProxy::Hops(n)
    } else if let Some(nets) = &options.trust_proxy_nets {
        let nets: Vec<&str> = nets.iter().map(String::as_str).collect();
        TrustProxy::nets(&nets).map_err(|e| {
            Error::new(
                Status::InvalidArg,
                format!("ERR_HTTPY_INVALID_OPTION: trustProxy: {e}"),
            )
        })?
    } else {
        TrustProxy::None
    };
    if options.metrics.unwrap_or(false) {
        config.metrics = Some(MetricsConfig {
            path: options.metrics_path.clone(),
        });
    }
    if let Some(format) = &options.access_log_format {
        let format = match format.as_str() {
            "combined" => AccessLogFormat::Combined,
            "json" => AccessLogFormat::Json,
            other => {
                return Err(Error::new(
                    Status::InvalidArg,
                    format!("ERR_HTTPY_INVALID_OPTION: accessLog.format must be 'combined' or 'json' (got {other:?})"),
                ))
            }
        };
        config.access_log = Some(AccessLogConfig {
            format,
            path: options.access_log_path.clone().map(Into::into),
        });
    }
    Ok(())
}

#[napi]
impl NativeServer {
    /// The Prometheus text of the native metrics (`null` when metrics are
    /// off or the server is closed).
    #[napi(catch_unwind)]
    pub fn metrics_text(&self) -> Option<String> {
        self.server.as_ref().and_then(|s| s.metrics_text())
    }

    /// Access log lines lost because the writer could not keep up.
    #[napi(catch_unwind)]
    pub fn access_log_dropped(&self) -> f64 {
        self.server
            .as_ref()
            .map_or(0.0, |s| s.access_log_dropped() as f64)
    }
}
