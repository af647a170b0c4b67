//! TLS settings: certificate chains and keys from PEM (one, or several
//! chosen by SNI), or a freshly made development certificate, optionally
//! client certificates (mTLS), turned into one rustls configuration that
//! offers HTTP/2 and HTTP/1.1 by ALPN (HTTP/3 derives its own from it).
//!
//! The settings can be replaced while the server runs (`setTls`, SIGHUP):
//! the new configuration is built and checked completely first, so a bad
//! certificate leaves the old one in place; then it is swapped in, and
//! every later handshake (TCP and QUIC) uses it while open connections keep
//! the keys they agreed on.
//!
//! The server's handshakes use rustls' aws-lc-rs crypto provider: its RSA
//! and ECDSA signatures cost less CPU than ring's (measured in
//! docs/tls-http2.md, "Crypto provider"). It is passed explicitly to every
//! rustls builder here; ring stays compiled in for the crates that name it
//! (quinn's packet keys, rcgen, the ACME client, the load generator), and
//! with two providers built in rustls picks no default by itself, so
//! [`install_process_default`] sets ours for crates that rely on one.

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::sync::Arc;

use super::acme::{AcmeSource, AcmeState, AcmeStatus, ALPN_ACME};
use super::certs::{certified, check_leaf, provider, tls_error};
use super::client_auth::{self, ClientAuthSource};
use super::sni::SniResolver;
use crate::error::Result;

/// ALPN protocol ids, most preferred first.
pub(crate) const ALPN_H2: &[u8] = b"h2";
pub(crate) const ALPN_H1: &[u8] = b"http/1.1";
#[cfg(feature = "http3")]
pub(crate) const ALPN_H3: &[u8] = b"h3";

/// One certificate chain and its key, as PEM.
#[derive(Debug, Clone, Default)]
pub struct CertSource {
    /// The name (or `*.name` wildcard) this certificate serves; `None`
    /// makes it the default for every other name.
    pub server_name: Option<String>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    /// Where `cert`/`key` came from (file names), for error messages.
    pub cert_name: String,
    pub key_name: String,
}

/// Everything the `tls` option says.
#[derive(Debug, Clone, Default)]
pub struct TlsSource {
    pub certs: Vec<CertSource>,
    /// Add a generated development certificate as the default.
    pub self_signed: bool,
    pub client_auth: Option<ClientAuthSource>,
    /// Certificates ordered from an ACME CA (config/acme.rs).
    pub acme: Option<AcmeSource>,
}

/// One complete, checked configuration.
pub(crate) struct Built {
    /// Follows the client's order of cipher suites: for clients that put
    /// ChaCha20 first, and the base HTTP/3 derives its configuration from.
    pub(crate) config: Arc<ServerConfig>,
    /// The same, in the server's order: AES-128-GCM first (see
    /// [`aes128_first`]), for every client that puts an AES-GCM suite first.
    aes_first: Arc<ServerConfig>,
    /// Set with `rejectUnauthorized: false`: the chain check run after the
    /// handshake to tell the application whether the client verified.
    pub(crate) client_check: Option<Arc<dyn ClientCertVerifier>>,
    /// PEM of the default static certificate (else the first listed).
    cert_pem: Option<String>,
}

/// The TLS configuration in use, replaceable at run time (cheap to clone:
/// clones share it).
///
/// ```
/// let tls = httpy_core::TlsSettings::self_signed().unwrap();
/// assert!(tls.certificate_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// ```
#[derive(Clone)]
pub struct TlsSettings {
    shared: Arc<Shared>,
}

struct Shared {
    current: ArcSwap<Built>,
    /// Bumped on every replacement; the HTTP/3 endpoint watches it.
    changes: tokio::sync::watch::Sender<u64>,
    /// Fixed at the start: `setTls` keeps it (and re-reads its cache).
    acme: Option<Arc<AcmeState>>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.write_str("TlsSettings { .. }")
    }
}

/// Makes the server's provider the process default, for the crates that
/// build a rustls configuration without naming a provider (redis, for
/// `rediss://`): with ring and aws-lc-rs both compiled in, such a builder
/// would panic. A default installed earlier (by the embedder) stays.
pub(crate) fn install_process_default() {
    let _ = CryptoProvider::install_default(rustls::crypto::aws_lc_rs::default_provider());
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
        Self::new(&TlsSource {
            certs: vec![CertSource {
                server_name: None,
                cert: cert.to_vec(),
                key: key.to_vec(),
                cert_name: cert_name.to_string(),
                key_name: key_name.to_string(),
            }],
            ..Default::default()
        })
    }

    /// Generates a certificate for `localhost`, `127.0.0.1` and `::1`, for
    /// development only: no client trusts it unless told to.
    pub fn self_signed() -> Result<Self> {
        Self::new(&TlsSource {
            self_signed: true,
            ..Default::default()
        })
    }

    /// Builds and checks every certificate of `source`.
    pub fn new(source: &TlsSource) -> Result<Self> {
        let acme = match &source.acme {
            Some(a) => Some(AcmeState::new(a.clone())?),
            None => None,
        };
        let built = build(source, acme.as_ref())?;
        Ok(Self {
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(built),
                changes: tokio::sync::watch::Sender::new(0),
                acme,
            }),
        })
    }

    /// Replaces the configuration for every later handshake. On error the
    /// current one stays in use.
    ///
    /// The ACME settings are those of the start: a replacement that has
    /// `acme` keeps them and reads their cache again (how a process that
    /// does not order picks up a renewed certificate at once); one without
    /// stops serving the ACME certificate.
    pub fn replace(&self, source: &TlsSource) -> Result<()> {
        let acme = match (&source.acme, &self.shared.acme) {
            (Some(_), Some(state)) => {
                state.load_cache();
                Some(state)
            }
            (Some(_), None) => return Err(tls_error(
                "tls.acme cannot be added while the server runs: restart it with the acme option"
                    .to_string(),
            )),
            (None, _) => None,
        };
        let built = build(source, acme)?;
        self.shared.current.store(Arc::new(built));
        self.shared.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// The configuration for a handshake starting now.
    pub(crate) fn current(&self) -> Arc<Built> {
        self.shared.current.load_full()
    }

    /// Signals each replacement (for listeners that hold their own copy).
    #[cfg(feature = "http3")]
    pub(crate) fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// The default certificate chain in PEM form (else the first listed),
    /// useful to trust a self-signed one.
    pub fn certificate_pem(&self) -> String {
        if let Some(pem) = &self.shared.current.load().cert_pem {
            return pem.clone();
        }
        self.shared
            .acme
            .as_ref()
            .and_then(|a| a.certificate_pem())
            .unwrap_or_default()
    }

    /// The ACME state, when `tls.acme` is set.
    pub(crate) fn acme(&self) -> Option<Arc<AcmeState>> {
        self.shared.acme.clone()
    }

    /// Where ACME stands (`None` without `tls.acme`).
    pub fn acme_status(&self) -> Option<AcmeStatus> {
        self.shared.acme.as_ref().map(|a| a.status())
    }
}

/// Parses one chain and key and checks them (validity, names, key match).
fn certified_key(src: &CertSource) -> Result<(Arc<CertifiedKey>, String)> {
    let (cert_name, key_name) = (src.cert_name.as_str(), src.key_name.as_str());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&src.cert)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls_error(format!("cannot parse certificate {cert_name}: {e}")))?;
    if chain.is_empty() {
        return Err(tls_error(format!(
            "no certificate found in {cert_name} (expected a PEM \"BEGIN CERTIFICATE\" block)"
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&src.key).map_err(|e| {
        tls_error(format!(
            "cannot read a private key from {key_name}: {e} (expected a PEM private key block)"
        ))
    })?;
    check_leaf(&chain, src.server_name.as_deref(), cert_name)?;
    let pem = String::from_utf8_lossy(&src.cert).into_owned();
    Ok((certified(chain, key, cert_name, key_name)?, pem))
}

fn generated() -> Result<(Arc<CertifiedKey>, String)> {
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| tls_error(format!("cannot generate a self-signed certificate: {e}")))?;
    let key = PrivateKeyDer::try_from(made.signing_key.serialize_der())
        .map_err(|e| tls_error(format!("generated key unusable: {e}")))?;
    let ck = certified(
        vec![made.cert.der().clone()],
        key,
        "the generated certificate",
        "the generated key",
    )?;
    Ok((ck, made.cert.pem()))
}

impl Built {
    /// The configuration for a handshake whose ClientHello lists `suites`.
    pub(crate) fn for_client(&self, suites: &[CipherSuite]) -> &Arc<ServerConfig> {
        if prefers_aes_gcm(suites) {
            &self.aes_first
        } else {
            &self.config
        }
    }
}

/// Where a cipher suite sits in the server's order: AES-128-GCM, then
/// AES-256-GCM, then ChaCha20-Poly1305 (TLS 1.3's and TLS 1.2's alike);
/// `None` for suites the server does not offer.
fn rank(suite: CipherSuite) -> Option<u8> {
    use CipherSuite as S;
    match suite {
        S::TLS13_AES_128_GCM_SHA256
        | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => Some(0),
        S::TLS13_AES_256_GCM_SHA384
        | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => Some(1),
        S::TLS13_CHACHA20_POLY1305_SHA256
        | S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        | S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => Some(2),
        _ => None,
    }
}

/// Go's crypto/tls rule: a client whose first suite the server knows is
/// an AES-GCM one has AES in hardware (or does not mind); one that puts
/// ChaCha20 first likely has not, and keeps its own order.
fn prefers_aes_gcm(suites: &[CipherSuite]) -> bool {
    suites.iter().find_map(|s| rank(*s)).is_some_and(|r| r < 2)
}

/// `provider` with its suites in the server's order ([`rank`]), for a
/// configuration that ignores the client's order.
///
/// Why: clients built on OpenSSL, curl and rustls list AES-256-GCM first
/// (browsers list AES-128-GCM first), and a server that follows them runs
/// the transcript and the key schedule on SHA-384, which x86 CPUs do in
/// AVX2 code, where SHA-256 has its own instructions (SHA-NI). AES-128-GCM
/// (SHA-256) costs 10-23 µs less per ECDSA handshake (8-19 %) and 5-11 µs
/// less in the client's Finished with either key (docs/performance.md
/// §16.4). Reading the hello first (rustls' `Acceptor`) to choose costs
/// nothing measurable there. TLS 1.3's suites are equally sound
/// (AES-128-GCM is its mandatory one, RFC 8446 §9.1); Go's crypto/tls (and
/// so Caddy) orders them the same way. A client that offers only
/// AES-256-GCM still gets it.
pub(crate) fn aes128_first(mut provider: CryptoProvider) -> CryptoProvider {
    provider
        .cipher_suites
        .sort_by_key(|s| rank(s.suite()).unwrap_or(u8::MAX));
    provider
}

fn build(source: &TlsSource, acme: Option<&Arc<AcmeState>>) -> Result<Built> {
    let mut resolver = SniResolver::default();
    resolver.acme = acme.cloned();
    let mut first_pem = None;
    let mut default_pem = None;
    if source.self_signed {
        let (ck, pem) = generated()?;
        resolver.add(None, ck, "the generated certificate")?;
        default_pem = Some(pem);
    }
    for src in &source.certs {
        let (ck, pem) = certified_key(src)?;
        resolver.add(src.server_name.as_deref(), ck, &src.cert_name)?;
        if src.server_name.is_none() {
            default_pem = Some(pem);
        } else if first_pem.is_none() {
            first_pem = Some(pem);
        }
    }
    let cert_pem = default_pem.or(first_pem);
    if cert_pem.is_none() && acme.is_none() {
        return Err(tls_error(
            "tls needs at least one certificate and key".to_string(),
        ));
    }
    let resolver: Arc<SniResolver> = Arc::new(resolver);
    let client_auth = match &source.client_auth {
        Some(ca) => Some(client_auth::build(ca, provider())?),
        None => None,
    };
    let client_check = client_auth.as_ref().and_then(|a| a.after.clone());
    // TLS 1.3 tickets (and TLS 1.2 tickets, to clients that ask) are
    // stateless: the session sealed into the ticket (AES-256-CBC and
    // HMAC-SHA256, RFC 5077's construction, as OpenSSL makes them under
    // nginx and node:https) with a key made here, rotated every 6 hours.
    // rustls' default kept each ticket as an entry of a 256-entry cache,
    // which a server doing 2,000 handshakes/s (two tickets each) turned
    // over in ~0.06 s, so a client coming back a second later made a full
    // handshake, signature and all, again. Cost: sealing two tickets takes
    // 2-4 µs more per full handshake than two cache entries
    // (`benches/tls_handshake.rs`, docs/performance.md §16.3), ~1-2 % of an
    // ECDSA handshake, not visible on the handshake rows. The cache stays
    // for TLS 1.2 clients that resume by session id. A new key per
    // configuration: after `setTls` no client resumes into the old one.
    // Both suite orders below share the key and the cache, so a session
    // resumes whichever order the client's next hello picks.
    let ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()
        .map_err(|e| tls_error(format!("cannot make a session ticket key: {e}")))?;
    let sessions = rustls::server::ServerSessionMemoryCache::new(256);
    let make = |provider: Arc<CryptoProvider>, server_order: bool| -> Result<Arc<ServerConfig>> {
        let builder = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(format!("TLS set-up failed: {e}")))?;
        let builder = match &client_auth {
            Some(auth) => builder.with_client_cert_verifier(auth.handshake.clone()),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_H1.to_vec()];
        config.ticketer = ticketer.clone();
        config.session_storage = sessions.clone();
        config.ignore_client_order = server_order;
        if acme.is_some() {
            // Last: rustls takes the server's first protocol the client offers,
            // and only the CA's validation offers this one (RFC 8737).
            config.alpn_protocols.push(ALPN_ACME.to_vec());
        }
        Ok(Arc::new(config))
    };
    let config = make(provider(), false)?;
    let aes_first = make(Arc::new(aes128_first(super::hkdf::provider())), true)?;
    Ok(Built {
        config,
        aes_first,
        client_check,
        cert_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_naming_no_provider_get_the_servers() {
        install_process_default();
        let config = std::panic::catch_unwind(|| {
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        });
        assert!(config.is_ok(), "a builder without a provider panicked");
        let default = CryptoProvider::get_default().expect("a process default");
        // Told apart by their key exchange groups: only aws-lc-rs has ML-KEM.
        let names = |p: &CryptoProvider| p.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>();
        assert_eq!(names(default), names(&provider()));
        let ring = rustls::crypto::ring::default_provider();
        assert_ne!(names(default), names(&ring));
    }

    /// The server's order, and which clients get it: Go's rule.
    #[test]
    fn aes_gcm_first_unless_the_client_puts_chacha20_first() {
        use CipherSuite as S;
        let order: Vec<_> = aes128_first(provider().as_ref().clone())
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        let tls13: Vec<_> = order
            .iter()
            .filter(|s| format!("{s:?}").starts_with("TLS13_"))
            .copied()
            .collect();
        assert_eq!(
            tls13,
            [
                S::TLS13_AES_128_GCM_SHA256,
                S::TLS13_AES_256_GCM_SHA384,
                S::TLS13_CHACHA20_POLY1305_SHA256
            ]
        );
        let pos = |x| order.iter().position(|s| *s == x).unwrap();
        assert!(
            pos(S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
                < pos(S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)
        );
        // Unknown values (GREASE, SCSVs, suites not offered) are skipped.
        let grease = S::Unknown(0x0a0a);
        assert!(prefers_aes_gcm(&[grease, S::TLS13_AES_256_GCM_SHA384]));
        assert!(prefers_aes_gcm(&[S::TLS13_AES_128_GCM_SHA256]));
        assert!(!prefers_aes_gcm(&[
            grease,
            S::TLS13_CHACHA20_POLY1305_SHA256,
            S::TLS13_AES_128_GCM_SHA256
        ]));
        assert!(!prefers_aes_gcm(&[]));
        let tls = TlsSettings::self_signed().unwrap();
        let built = tls.current();
        assert!(
            built
                .for_client(&[S::TLS13_AES_256_GCM_SHA384])
                .ignore_client_order
        );
        assert!(
            !built
                .for_client(&[S::TLS13_CHACHA20_POLY1305_SHA256])
                .ignore_client_order
        );
    }

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
