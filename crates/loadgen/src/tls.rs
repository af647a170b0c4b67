//! TLS for `https://` targets: the HTTP/1.1 and HTTP/2 clients run over a
//! [`Stream`] that is either plain TCP or rustls over TCP, with the
//! protocol chosen by ALPN (`http/1.1` or `h2`). rustls (with the ring
//! provider) because it is already what this workspace builds and is among
//! the cheapest TLS clients per handshake, so the generator costs less than
//! the servers it measures; it is the same library the HTTPy server uses,
//! which the peers rows (node:https on OpenSSL, nginx on OpenSSL) balance.
//!
//! Session resumption is off, so a new connection is always a full
//! handshake (key exchange and certificate signature).
//!
//! A self-signed server certificate is accepted either through a CA file
//! (`ca_file`, verified as usual) or with `insecure`, which skips the
//! certificate check but still verifies the handshake signature, so a
//! handshake costs the same as a verified one.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::LoadError;

/// How the generator trusts the server's certificate.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Accept any certificate (signatures are still checked).
    pub insecure: bool,
    /// PEM file of the certificate authorities (or the self-signed
    /// certificate itself) to trust instead of none.
    pub ca_file: Option<PathBuf>,
    /// Name sent in SNI and checked against the certificate; defaults to
    /// the target host.
    pub server_name: Option<String>,
}

/// A client connection: plain TCP, or TLS over TCP. An enum rather than a
/// boxed trait object: one predictable branch per read or write instead of
/// an indirect call.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What every connection of a run needs for its handshake.
pub(crate) struct Tls {
    pub connector: TlsConnector,
    pub name: ServerName<'static>,
    /// The ALPN protocol the server must pick.
    pub alpn: &'static [u8],
}

/// The rustls client configuration for `opts`, offering `alpn`.
pub(crate) fn client_config(opts: &TlsOptions, alpn: &[u8]) -> Result<ClientConfig, LoadError> {
    let bad = |m: String| LoadError::InvalidOption(m);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("tls: {e}")))?;
    let mut config = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        let Some(file) = &opts.ca_file else {
            return Err(bad(
                    "https needs a CA file (caFile) or insecure: true to accept the server's certificate"
                        .into(),
                ));
        };
        let certs = CertificateDer::pem_file_iter(file)
            .map_err(|e| bad(format!("CA file {}: {e}", file.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| bad(format!("CA file {}: {e}", file.display())))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("CA file {}: {e}", file.display())))?;
        }
        if roots.is_empty() {
            return Err(bad(format!(
                "CA file {} holds no certificate",
                file.display()
            )));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    // Every new connection is a full handshake: with resumption, the
    // handshakes-per-second mode would measure abbreviated ones.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// The name sent in SNI and checked against the certificate.
pub(crate) fn server_name(opts: &TlsOptions, host: &str) -> Result<ServerName<'static>, LoadError> {
    let name = opts.server_name.as_deref().unwrap_or(host).to_string();
    ServerName::try_from(name.clone())
        .map_err(|e| LoadError::InvalidOption(format!("TLS server name {name:?}: {e}")))
}

impl Tls {
    pub fn new(opts: &TlsOptions, host: &str, alpn: &'static [u8]) -> Result<Tls, LoadError> {
        let config = client_config(opts, alpn)?;
        Ok(Tls {
            name: server_name(opts, host)?,
            connector: TlsConnector::from(Arc::new(config)),
            alpn,
        })
    }

    /// The TLS handshake on `tcp`, checking that ALPN chose our protocol.
    pub async fn handshake(&self, tcp: TcpStream) -> Result<Stream, String> {
        let tls = self
            .connector
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|e| {
                let e = e.to_string();
                if e.contains("NoApplicationProtocol") {
                    format!(
                        "TLS handshake: {e}: the server offers no ALPN {:?}",
                        String::from_utf8_lossy(self.alpn)
                    )
                } else {
                    format!("TLS handshake: {e}")
                }
            })?;
        let chosen = tls.get_ref().1.alpn_protocol();
        if chosen != Some(self.alpn) {
            return Err(format!(
                "the server chose ALPN {:?}, not {:?}",
                chosen.map(String::from_utf8_lossy),
                String::from_utf8_lossy(self.alpn)
            ));
        }
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// `insecure`: any certificate chain is accepted; the handshake signature is
/// still verified (the same work as with a trusted certificate).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
