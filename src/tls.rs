//! TLS and HTTP/2 settings: their part of the options → `ServerConfig`
//! conversion. Only value conversion; the protocol work is in `httpy-core`.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use httpy_core::{
    AcmeChallenge, AcmeSource, CertSource, ClientAuthSource, ServerConfig, TlsSettings, TlsSource,
};
use std::time::Duration;

use crate::contract::AcmeChallengeType;

use crate::convert::core_error;

/// One certificate chain and key, already read by the JS side (which
/// knows file names).
#[napi(object)]
pub struct NativeCert {
    /// The SNI name (or `*.name`) it serves; absent for the default.
    pub server_name: Option<String>,
    pub cert: Buffer,
    pub key: Buffer,
    /// Where `cert`/`key` came from, for error messages.
    pub cert_name: String,
    pub key_name: String,
}

/// The `tls` option, validated and read by the JS side.
#[napi(object)]
pub struct NativeTls {
    /// Generate a development certificate (the default one).
    pub self_signed: bool,
    pub certs: Option<Vec<NativeCert>>,
    /// CA certificates for client certificates (with `request_cert`).
    pub ca: Option<Buffer>,
    pub ca_name: Option<String>,
    pub request_cert: Option<bool>,
    pub reject_unauthorized: Option<bool>,
    /// Certificates ordered from an ACME CA.
    pub acme: Option<NativeAcme>,
}

/// The `tls.acme` option, validated by the JS side.
#[napi(object)]
pub struct NativeAcme {
    pub domains: Vec<String>,
    pub email: Option<String>,
    pub directory: String,
    /// PEM of extra roots for the directory's HTTPS (a test CA).
    pub directory_ca: Option<Buffer>,
    pub cache: String,
    pub challenge: AcmeChallengeType,
    pub http_port: u32,
    pub profile: Option<String>,
    /// Fraction of the lifetime after which to renew.
    pub renew_at: f64,
    /// Seconds before the first retry after a failure.
    pub retry_delay: f64,
    /// False in the processes that only read the cache.
    pub order: bool,
}

/// Where ACME stands (`server.acmeStatus()`).
#[napi(object)]
pub struct NativeAcmeStatus {
    pub errors: u32,
    pub last_error: Option<String>,
    pub certificates: u32,
    pub issued: u32,
    /// Expiry of the served certificate, in ms since the epoch.
    pub not_after: Option<f64>,
}

impl From<httpy_core::AcmeStatus> for NativeAcmeStatus {
    fn from(s: httpy_core::AcmeStatus) -> Self {
        Self {
            errors: s.errors,
            last_error: s.last_error,
            certificates: s.certificates,
            issued: s.issued,
            not_after: s.not_after.map(|t| t as f64 * 1000.0),
        }
    }
}

fn acme(a: NativeAcme) -> AcmeSource {
    AcmeSource {
        domains: a.domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
        email: a.email,
        directory: a.directory,
        directory_ca: a.directory_ca.map(|b| b.to_vec()),
        cache: a.cache.into(),
        challenge: match a.challenge {
            AcmeChallengeType::TlsAlpn01 => AcmeChallenge::TlsAlpn01,
            AcmeChallengeType::Http01 => AcmeChallenge::Http01,
        },
        http_port: a.http_port as u16,
        profile: a.profile,
        renew_at: a.renew_at,
        retry_delay: Duration::from_secs_f64(a.retry_delay.max(0.01)),
        order: a.order,
    }
}

/// The core's description of the same settings.
pub(crate) fn source(t: NativeTls) -> Result<TlsSource> {
    let certs = t
        .certs
        .unwrap_or_default()
        .into_iter()
        .map(|c| CertSource {
            server_name: c.server_name,
            cert: c.cert.to_vec(),
            key: c.key.to_vec(),
            cert_name: c.cert_name,
            key_name: c.key_name,
        })
        .collect();
    let client_auth = match (t.request_cert.unwrap_or(false), t.ca) {
        (false, _) => None,
        (true, Some(ca)) => Some(ClientAuthSource {
            ca: ca.to_vec(),
            ca_name: t.ca_name.unwrap_or_else(|| "tls.ca".to_string()),
            reject_unauthorized: t.reject_unauthorized.unwrap_or(true),
        }),
        (true, None) => {
            return Err(Error::new(
                Status::InvalidArg,
                "ERR_HTTPY_TLS: tls.requestCert needs tls.ca (the CA certificates client certificates must chain to)",
            ))
        }
    };
    Ok(TlsSource {
        certs,
        self_signed: t.self_signed,
        client_auth,
        acme: t.acme.map(acme),
    })
}

#[napi(object)]
pub struct NativeHttp2 {
    pub max_concurrent_streams: u32,
    pub stream_window: u32,
    pub connection_window: u32,
}

pub(crate) fn tls_error(e: httpy_core::Error) -> Error {
    core_error(Status::InvalidArg, e)
}

/// Applies the TLS and HTTP/2 parts of the options to `config`.
pub(crate) fn apply(
    config: &mut ServerConfig,
    tls: Option<NativeTls>,
    http2: Option<NativeHttp2>,
) -> Result<()> {
    if let Some(t) = tls {
        config.tls = Some(TlsSettings::new(&source(t)?).map_err(tls_error)?);
    }
    if let Some(h) = http2 {
        config.h2_max_concurrent_streams = h.max_concurrent_streams;
        config.h2_stream_window = h.stream_window;
        config.h2_connection_window = h.connection_window;
    }
    Ok(())
}
