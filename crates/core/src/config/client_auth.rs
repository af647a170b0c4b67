//! Client certificates (mutual TLS): the verifier built from the `ca`
//! option, and what a request learns about the peer's certificate
//! (subject, SHA-256 fingerprint, whether it verified) together with the
//! server name the client asked for.
//!
//! With `rejectUnauthorized: false` the handshake accepts any client, with
//! or without a certificate; the chain is then checked once after the
//! handshake, only to tell the application (`authorized`). The proof that
//! the client holds the certificate's key (the handshake signature) is
//! always checked.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::UnixTime;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};

/// The `ca`, `requestCert` and `rejectUnauthorized` options, as PEM.
#[derive(Debug, Clone)]
pub struct ClientAuthSource {
    /// One or more CA certificates (PEM) that client certificates must chain to.
    pub ca: Vec<u8>,
    /// Where `ca` came from, for error messages.
    pub ca_name: String,
    /// Refuse the handshake of a client without a valid certificate.
    pub reject_unauthorized: bool,
}

/// The verifier rustls runs, and the strict one run after a lenient
/// handshake to fill in `authorized`.
pub(crate) struct ClientAuth {
    pub(crate) handshake: Arc<dyn ClientCertVerifier>,
    pub(crate) after: Option<Arc<dyn ClientCertVerifier>>,
}

pub(crate) fn build(src: &ClientAuthSource, provider: Arc<CryptoProvider>) -> Result<ClientAuth> {
    let err = |m: String| Error::new(ErrorKind::Tls, m);
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&src.ca) {
        let c = c.map_err(|e| err(format!("cannot parse tls.ca {}: {e}", src.ca_name)))?;
        roots
            .add(c)
            .map_err(|e| err(format!("unusable CA certificate in {}: {e}", src.ca_name)))?;
    }
    if roots.is_empty() {
        return Err(err(format!(
            "no certificate found in {} (tls.ca expects PEM \"BEGIN CERTIFICATE\" blocks)",
            src.ca_name
        )));
    }
    let strict = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| err(format!("cannot use tls.ca {}: {e}", src.ca_name)))?;
    Ok(if src.reject_unauthorized {
        ClientAuth {
            handshake: strict,
            after: None,
        }
    } else {
        ClientAuth {
            handshake: Arc::new(Lenient(strict.clone())),
            after: Some(strict),
        }
    })
}

/// Asks for a certificate, accepts any (or none); see the module comment.
#[derive(Debug)]
struct Lenient(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Lenient {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// What a request sees of its TLS connection (`req.tls`).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsPeer {
    /// The name the client sent in SNI, lower-case.
    pub server_name: Option<Box<str>>,
    pub client_cert: Option<ClientCert>,
}

/// The client's certificate, when it sent one.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCert {
    /// Distinguished name, e.g. `CN=alice, O=Example`.
    pub subject: String,
    /// SHA-256 of the DER certificate, upper-case hex pairs joined by `:`
    /// (the format of Node's `fingerprint256`).
    pub fingerprint256: String,
    /// The certificate chains to `ca` (always true when
    /// `rejectUnauthorized` is on: others never get this far).
    pub authorized: bool,
}

/// Builds the peer facts once per connection (not per request); `None`
/// when there is nothing to tell, so a plain TLS connection costs nothing.
pub(crate) fn peer(
    server_name: Option<&str>,
    certs: Option<&[CertificateDer<'static>]>,
    after: Option<&Arc<dyn ClientCertVerifier>>,
) -> Option<Arc<TlsPeer>> {
    let client_cert = certs.and_then(|c| c.split_first()).map(|(leaf, rest)| {
        let subject = x509_parser::parse_x509_certificate(leaf)
            .map(|(_, c)| c.subject().to_string())
            .unwrap_or_default();
        let digest = ring::digest::digest(&ring::digest::SHA256, leaf);
        let fingerprint256 = digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let authorized = match after {
            Some(v) => v.verify_client_cert(leaf, rest, UnixTime::now()).is_ok(),
            None => true,
        };
        ClientCert {
            subject,
            fingerprint256,
            authorized,
        }
    });
    if server_name.is_none() && client_cert.is_none() {
        return None;
    }
    Some(Arc::new(TlsPeer {
        server_name: server_name.map(|s| s.to_ascii_lowercase().into_boxed_str()),
        client_cert,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_errors_name_the_file() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let src = ClientAuthSource {
            ca: b"not pem".to_vec(),
            ca_name: "clients.pem".into(),
            reject_unauthorized: true,
        };
        let e = build(&src, provider).err().unwrap();
        assert_eq!(e.code(), "ERR_HTTPY_TLS");
        assert!(e.message().contains("clients.pem"), "{}", e.message());
    }

    #[test]
    fn peer_facts() {
        assert!(peer(None, None, None).is_none());
        let made = rcgen::generate_simple_self_signed(vec!["alice".to_string()]).unwrap();
        let der = made.cert.der().clone();
        let p = peer(Some("A.Example"), Some(&[der]), None).unwrap();
        assert_eq!(p.server_name.as_deref(), Some("a.example"));
        let c = p.client_cert.as_ref().unwrap();
        assert_eq!(c.fingerprint256.len(), 32 * 3 - 1);
        assert!(
            c.subject.contains("CN=rcgen self signed cert"),
            "{}",
            c.subject
        );
        assert!(c.authorized);
    }
}
