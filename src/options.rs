//! The server options, as the TS layer validated them (`ts/options.ts`),
//! converted to the core's [`ServerConfig`]: plain settings, compression,
//! the production features (port sharing, trusted proxies, metrics, access
//! log), then TLS/HTTP/2 (`tls.rs`) and HTTP/3 (`http3.rs`).

use napi::bindgen_prelude::*;
use napi_derive::napi;

use httpy_core::{
    AccessLogConfig, AccessLogFormat, CompressConfig, MetricsConfig, PubSubConfig, ServerConfig,
    TrustProxy,
};

use crate::convert::{invalid, ms};
use crate::{http3, tls};

#[napi(object)]
pub struct NativeOptions {
    pub host: String,
    pub port: u32,
    /// Listen on this Unix domain socket instead of `host:port`.
    pub unix_path: Option<String>,
    /// File mode of the Unix socket (e.g. 0o660).
    pub unix_permissions: Option<u32>,
    pub read_buffer_size: Option<u32>,
    pub write_buffer_size: Option<u32>,
    pub keep_alive: bool,
    pub keep_alive_timeout_ms: f64,
    pub request_timeout_ms: f64,
    pub max_keep_alive_requests: f64,
    pub max_connections: u32,
    pub max_body_size: f64,
    pub max_header_size: u32,
    pub max_pending_requests: u32,
    pub threads: u32,
    pub js_handles_misses: bool,
    /// Requests no route matched stream their long bodies (a fetch catch-all).
    pub stream_miss_bodies: Option<bool>,
    /// With `stream_miss_bodies`: a `multipart/form-data` body may be
    /// taken as parts (`takeUpload(id, cb, true)`), with these limits.
    pub miss_multipart: Option<crate::routes::NativeMultipart>,
    /// Request records end with the absolute URL (`scheme://host/path?query`),
    /// which fetch-style handlers read as `request.url`; without it (the
    /// default) HTTPy's own handlers' records are a few dozen bytes shorter.
    pub request_urls: Option<bool>,
    pub backlog: u32,
    /// Production settings (`production` below: port sharing, metrics, access log, trusted proxies).
    pub reuse_port: Option<bool>,
    pub metrics: Option<bool>,
    pub metrics_path: Option<String>,
    pub access_log_format: Option<String>,
    pub access_log_path: Option<String>,
    /// `trustProxy`, as the JS side validated it: every peer, the nearest
    /// `n` hops, or addresses/CIDRs (named ranges already expanded).
    pub trust_proxy_all: Option<bool>,
    pub trust_proxy_hops: Option<u32>,
    pub trust_proxy_nets: Option<Vec<String>>,
    pub tls: Option<tls::NativeTls>,
    pub http2: Option<tls::NativeHttp2>,
    pub http3: Option<http3::NativeHttp3>,
    pub compression: Option<NativeCompression>,
    /// Pub/sub across processes: the directory of the workers' local links
    /// (set by the supervisor) and the Redis URL (`pubsub.redis`).
    pub pubsub_cluster_dir: Option<String>,
    pub pubsub_redis: Option<String>,
    /// `pubsub.durable`: the streams' cap (`pubsub.maxLen`, defaulted by the
    /// TS layer); absent in the plain mode.
    pub pubsub_durable_max_len: Option<f64>,
}

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

/// The whole conversion; fails on what only the core can check (trusted
/// networks, TLS material, the access log format).
pub(crate) fn server_config(mut options: NativeOptions) -> Result<ServerConfig> {
    let mut config = ServerConfig {
        host: options.host.clone(),
        port: options.port as u16,
        read_buffer_size: options.read_buffer_size.map(|v| v as usize),
        write_buffer_size: options.write_buffer_size.map(|v| v as usize),
        keep_alive: options.keep_alive,
        keep_alive_timeout: ms(options.keep_alive_timeout_ms),
        request_timeout: ms(options.request_timeout_ms),
        max_keep_alive_requests: options.max_keep_alive_requests.max(0.0) as u64,
        max_connections: options.max_connections as usize,
        max_body_size: options.max_body_size.max(0.0) as u64,
        max_header_size: options.max_header_size as usize,
        max_pending_requests: options.max_pending_requests as usize,
        threads: options.threads as usize,
        js_handles_misses: options.js_handles_misses,
        stream_miss_bodies: options.stream_miss_bodies.unwrap_or(false),
        miss_multipart: options
            .miss_multipart
            .as_ref()
            .map(crate::routes::multipart_limits),
        backlog: options.backlog,
        compression: options.compression.take().map(compression),
        unix_socket: options
            .unix_path
            .take()
            .map(|path| httpy_core::UnixSocketConfig {
                path: path.into(),
                permissions: options.unix_permissions,
            }),
        pubsub: PubSubConfig {
            cluster_dir: options.pubsub_cluster_dir.take().map(Into::into),
            redis: options.pubsub_redis.take(),
            durable: options.pubsub_durable_max_len.map(|n| n as u64),
        },
        ..ServerConfig::default()
    };
    production(&options, &mut config)?;
    tls::apply(&mut config, options.tls, options.http2)?;
    http3::apply(&mut config, options.http3);
    Ok(config)
}

fn compression(c: NativeCompression) -> CompressConfig {
    CompressConfig {
        gzip: c.gzip,
        br: c.br,
        zstd: c.zstd,
        min_size: c.min_size.max(0.0) as usize,
        types: c.types,
        level: c.level,
    }
}

/// Port sharing between processes, trusted proxies, Prometheus metrics and
/// the access log.
fn production(options: &NativeOptions, config: &mut ServerConfig) -> Result<()> {
    config.reuse_port = options.reuse_port.unwrap_or(false);
    config.trust_proxy = if options.trust_proxy_all.unwrap_or(false) {
        TrustProxy::All
    } else if let Some(n) = options.trust_proxy_hops.filter(|n| *n > 0) {
        TrustProxy::Hops(n)
    } else if let Some(nets) = &options.trust_proxy_nets {
        let nets: Vec<&str> = nets.iter().map(String::as_str).collect();
        TrustProxy::nets(&nets)
            .map_err(|e| invalid("ERR_HTTPY_INVALID_OPTION", format!("trustProxy: {e}")))?
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
                return Err(invalid(
                    "ERR_HTTPY_INVALID_OPTION",
                    format!("accessLog.format must be 'combined' or 'json' (got {other:?})"),
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
