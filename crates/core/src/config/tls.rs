//! TLS settings: a certificate chain and key from PEM, or a freshly made
//! development certificate, turned into one rustls configuration that
//! offers HTTP/2 and HTTP/1.1 by ALPN.
//!
//! The ring provider is passed explicitly to every rustls builder: with a
//! second provider compiled in by some other crate, relying on the process
//! default would panic at start.

use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};

/// ALPN protocol ids, most preferred first.
pub(crate) const ALPN_H2: &[u8] = b"h2";
pub(crate) const ALPN_H1: &[u8] = b"http/1.1";
#[cfg(feature = "http3")]
pub(crate) const ALPN_H3: &[u8] = b"h3";

/// A ready-to-use TLS configuration (cheap to clone).
///
/// ```
/// let tls = httpy_core::TlsSettings::self_signed().unwrap();
/// assert!(tls.certificate_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// ```
#[derive(Clone)]
pub struct TlsSettings {
    pub(crate) config: Arc<rustls::ServerConfig>,
    cert_pem: String,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.write_str("TlsSettings { .. }")
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(msg: String) -> Error {
    Error::new(ErrorKind::Tls, msg)
}

impl TlsSettings {
    /// Builds settings from PEM text. `cert` may hold a chain (leaf first);
    /// `key` holds one PKCS#8, PKCS#1 or SEC1 private key. `cert_name` and
    /// `key_name` (file names, or a description) appear in error messages.
    ///
    /// ```
    /// let err = httpy_core::TlsSettings::from_pem(b"nope", b"nope", "cert.pem", "key.pem").unwrap_err();
    /// assert_eq!(err.code(), "ERR_HTTPY_TLS");
    /// assert!(err.message().contains("cert.pem"));
    /// ```
    pub fn from_pem(cert: &[u8], key: &[u8], cert_name: &str, key_name: &str) -> Result<Self> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| tls_error(format!("cannot parse certificate {cert_name}: {e}")))?;
        if chain.is_empty() {
            return Err(tls_error(format!(
                "no certificate found in {cert_name} (expected a PEM \"BEGIN CERTIFICATE\" block)"
            )));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
            tls_error(format!(
                "cannot read a private key from {key_name}: {e} (expected a PEM private key block)"
            ))
        })?;
        let cert_pem = String::from_utf8_lossy(cert).into_owned();
        Self::build(chain, key, cert_pem, cert_name, key_name)
    }

    /// Generates a certificate for `localhost`, `127.0.0.1` and `::1`, for
    /// development only: no client trusts it unless told to.
    pub fn self_signed() -> Result<Self> {
        let names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| tls_error(format!("cannot generate a self-signed certificate: {e}")))?;
        let cert_pem = made.cert.pem();
        let chain = vec![made.cert.der().clone()];
        let key = PrivateKeyDer::try_from(made.signing_key.serialize_der())
            .map_err(|e| tls_error(format!("generated key unusable: {e}")))?;
        Self::build(
            chain,
            key,
            cert_pem,
            "the generated certificate",
            "the generated key",
        )
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        cert_pem: String,
        cert_name: &str,
        key_name: &str,
    ) -> Result<Self> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(format!("TLS set-up failed: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => tls_error(format!(
                    "the private key in {key_name} does not match the certificate in {cert_name}"
                )),
                e => tls_error(format!("cannot use {cert_name} with {key_name}: {e}")),
            })?;
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_H1.to_vec()];
        Ok(Self {
            config: Arc::new(config),
            cert_pem,
        })
    }

    /// The certificate chain in PEM form (useful to trust a self-signed one).
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatched_key_names_both_files() {
        let a = rcgen::generate_simple_self_signed(vec!["a".to_string()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".to_string()]).unwrap();
        let err = TlsSettings::from_pem(
            a.cert.pem().as_bytes(),
            b.signing_key.serialize_pem().as_bytes(),
            "a.pem",
            "b.key",
        )
        .unwrap_err();
        assert_eq!(err.code(), "ERR_HTTPY_TLS");
        assert!(
            err.message().contains("does not match"),
            "{}",
            err.message()
        );
        assert!(err.message().contains("a.pem") && err.message().contains("b.key"));
    }

    #[test]
    fn accepts_matching_pem_and_a_chain() {
        let a = rcgen::generate_simple_self_signed(vec!["a".to_string()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".to_string()]).unwrap();
        let chain = format!("{}{}", a.cert.pem(), b.cert.pem());
        let ok = TlsSettings::from_pem(
            chain.as_bytes(),
            a.signing_key.serialize_pem().as_bytes(),
            "c",
            "k",
        );
        assert!(ok.is_ok());
        let no_key =
            TlsSettings::from_pem(chain.as_bytes(), chain.as_bytes(), "c", "k.pem").unwrap_err();
        assert!(no_key.message().contains("k.pem"));
    }
}
