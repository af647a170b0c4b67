//! One certificate, on its own: the checks of a leaf (validity period, the
//! names it covers), a chain and key bound into rustls' `CertifiedKey` with
//! the server's crypto provider, and the serverName rules. The TLS
//! settings, the SNI resolver and the ACME client all build certificates
//! with these, so they live below all three.

use rustls::crypto::CryptoProvider;
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{InconsistentKeys, SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, SubjectPublicKeyInfoDer};
use std::sync::Arc;
use x509_parser::extensions::GeneralName;

use crate::error::{Error, ErrorKind, Result};

pub(crate) fn tls_error(msg: String) -> Error {
    Error::new(ErrorKind::Tls, msg)
}

/// The crypto provider of the server's handshakes (aws-lc-rs: see the
/// opening paragraph of `tls.rs`), its TLS 1.3 key schedule on HMAC keys
/// made once per secret (`hkdf.rs`).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(super::hkdf::provider())
}

/// Checks a `serverName` option and returns it lower-case, without a
/// trailing dot.
pub(crate) fn normalise(name: &str) -> Result<String> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    let bad = |why: &str| tls_error(format!("serverName {name:?} {why}"));
    if lower.is_empty() {
        return Err(bad("is empty"));
    }
    if lower.parse::<std::net::IpAddr>().is_ok() {
        return Err(bad(
            "is an IP address: clients send only DNS names in SNI (use the default certificate for addresses)",
        ));
    }
    let host = lower.strip_prefix("*.").unwrap_or(&lower);
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !host.split('.').all(label_ok) {
        return Err(bad(
            "is not a DNS name (letters, digits and '-' between dots; a wildcard only as the whole first label, '*.example.com')",
        ));
    }
    Ok(lower)
}

/// True when a certificate name (a SAN entry, maybe `*.x`) covers `wanted`
/// (a serverName, maybe `*.x` itself).
pub(crate) fn covers(cert_name: &str, wanted: &str) -> bool {
    let cert_name = cert_name.trim_end_matches('.').to_ascii_lowercase();
    if cert_name == wanted {
        return true;
    }
    // A wildcard certificate covers one label, never a wildcard serverName
    // of a different depth.
    match (cert_name.strip_prefix("*."), wanted.split_once('.')) {
        (Some(stem), Some((first, rest))) => first != "*" && stem == rest,
        _ => false,
    }
}

/// Validity period and names of the leaf certificate in `chain`, checked:
/// expired or not yet valid certificates are refused, and with a
/// `server_name` the certificate must cover it.
pub(crate) fn check_leaf(
    chain: &[CertificateDer<'_>],
    server_name: Option<&str>,
    cert_name: &str,
) -> Result<()> {
    let Some(leaf) = chain.first() else {
        return Err(tls_error(format!("no certificate found in {cert_name}")));
    };
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| tls_error(format!("cannot parse the certificate in {cert_name}: {e}")))?;
    let validity = cert.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now > validity.not_after {
        return Err(tls_error(format!(
            "the certificate in {cert_name} expired on {}",
            validity.not_after
        )));
    }
    if now < validity.not_before {
        return Err(tls_error(format!(
            "the certificate in {cert_name} is not valid before {}",
            validity.not_before
        )));
    }
    let Some(wanted) = server_name else {
        return Ok(());
    };
    let wanted = normalise(wanted)?;
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push((*d).to_string());
            }
        }
    }
    // Clients ignore the common name when the certificate has DNS names
    // (RFC 6125 §6.4.4); without any, fall back to it like most do.
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_string)),
        );
    }
    if names.iter().any(|n| covers(n, &wanted)) {
        return Ok(());
    }
    Err(tls_error(format!(
        "the certificate in {cert_name} does not cover serverName {wanted} (its names: {})",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    )))
}

/// The chain and key bound together for rustls; a key that does not match
/// the certificate is named as such.
pub(crate) fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_name: &str,
    key_name: &str,
) -> Result<Arc<CertifiedKey>> {
    let error = |e| match e {
        rustls::Error::InconsistentKeys(_) => tls_error(format!(
            "the private key in {key_name} does not match the certificate in {cert_name}"
        )),
        e => tls_error(format!("cannot use {cert_name} with {key_name}: {e}")),
    };
    let mut signer = provider()
        .key_provider
        .load_private_key(key)
        .map_err(error)?;
    if signer.algorithm() == SignatureAlgorithm::RSA {
        signer = Arc::new(RsaSha256First(signer));
    }
    let ck = CertifiedKey::new(chain, signer);
    // As `CertifiedKey::from_der` does: a key whose public half cannot be
    // told is not refused.
    match ck.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {
            Ok(Arc::new(ck))
        }
        Err(e) => Err(error(e)),
    }
}

/// An RSA key that signs with RSA-PSS and SHA-256 when the client offers
/// it, as OpenSSL does in its own order (node:https, nginx with
/// `ssl_prefer_server_ciphers on`); rustls' own order puts SHA-512 first. The RSA operation is the same either way; the hash of
/// the signed message and PSS's mask generation are a few SHA-256 blocks,
/// which this CPU family does in hardware (SHA-NI), instead of SHA-512
/// blocks in vector code. Above all the handshake rows then compare
/// servers signing alike (docs/performance.md §16.6). A client that offers
/// no RSA-PSS SHA-256 gets rustls' choice among what it offers.
#[derive(Debug)]
struct RsaSha256First(Arc<dyn SigningKey>);

impl SigningKey for RsaSha256First {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        const FIRST: SignatureScheme = SignatureScheme::RSA_PSS_SHA256;
        if offered.contains(&FIRST) {
            self.0.choose_scheme(&[FIRST])
        } else {
            self.0.choose_scheme(offered)
        }
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        self.0.public_key()
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.0.algorithm()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf_for(names: &[&str]) -> CertificateDer<'static> {
        let names = names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        rcgen::generate_simple_self_signed(names)
            .unwrap()
            .cert
            .der()
            .clone()
    }

    /// An RSA 2048 certificate and its key (aws-lc makes the key, rcgen
    /// signs the certificate with it).
    fn rsa_leaf() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        use aws_lc_rs::encoding::AsDer;
        let made = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&made).unwrap();
        let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_ref().to_vec());
        let key =
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.der().clone(), PrivateKeyDer::Pkcs8(pkcs8))
    }

    /// What the load generator (rustls with ring) offers, in its order:
    /// rustls alone would pick RSA-PSS with SHA-512 from it.
    const RING_CLIENT_OFFER: [SignatureScheme; 9] = [
        SignatureScheme::ECDSA_NISTP384_SHA384,
        SignatureScheme::ECDSA_NISTP256_SHA256,
        SignatureScheme::ED25519,
        SignatureScheme::RSA_PSS_SHA512,
        SignatureScheme::RSA_PSS_SHA384,
        SignatureScheme::RSA_PSS_SHA256,
        SignatureScheme::RSA_PKCS1_SHA512,
        SignatureScheme::RSA_PKCS1_SHA384,
        SignatureScheme::RSA_PKCS1_SHA256,
    ];

    #[test]
    fn rsa_keys_sign_with_pss_sha256_when_offered() {
        let (cert, key) = rsa_leaf();
        let ck = certified(vec![cert.clone()], key.clone_key(), "c.pem", "k.pem").unwrap();
        let scheme = |offer: &[SignatureScheme]| ck.key.choose_scheme(offer).map(|s| s.scheme());
        assert_eq!(
            scheme(&RING_CLIENT_OFFER),
            Some(SignatureScheme::RSA_PSS_SHA256)
        );
        // Without it, rustls' order among what is offered.
        assert_eq!(
            scheme(&[
                SignatureScheme::RSA_PKCS1_SHA256,
                SignatureScheme::RSA_PSS_SHA384,
                SignatureScheme::RSA_PSS_SHA512
            ]),
            Some(SignatureScheme::RSA_PSS_SHA512)
        );
        assert_eq!(
            scheme(&[SignatureScheme::RSA_PKCS1_SHA256]),
            Some(SignatureScheme::RSA_PKCS1_SHA256)
        );
        assert_eq!(scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256]), None);
        // The signature is a PSS SHA-256 one over what was given.
        let signer = ck.key.choose_scheme(&RING_CLIENT_OFFER).unwrap();
        let sig = signer.sign(b"a handshake transcript").unwrap();
        use x509_parser::prelude::FromDer;
        let spki = ck.key.public_key().unwrap();
        let public = x509_parser::prelude::SubjectPublicKeyInfo::from_der(spki.as_ref())
            .unwrap()
            .1
            .subject_public_key
            .data
            .to_vec();
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PSS_2048_8192_SHA256,
            public,
        )
        .verify(b"a handshake transcript", &sig)
        .expect("an RSA-PSS SHA-256 signature");
        // Keys are still matched against the certificate.
        let other = rcgen::generate_simple_self_signed(vec!["b".to_string()]).unwrap();
        let err = certified(vec![other.cert.der().clone()], key, "b.pem", "k.pem").unwrap_err();
        assert!(
            err.message().contains("does not match"),
            "{}",
            err.message()
        );
        // ECDSA keys keep rustls' choice (their scheme is fixed by the curve).
        let ec = rcgen::generate_simple_self_signed(vec!["e".to_string()]).unwrap();
        let ck = certified(
            vec![ec.cert.der().clone()],
            PrivateKeyDer::try_from(ec.signing_key.serialize_der()).unwrap(),
            "e.pem",
            "e.key",
        )
        .unwrap();
        assert_eq!(
            ck.key.choose_scheme(&RING_CLIENT_OFFER).map(|s| s.scheme()),
            Some(SignatureScheme::ECDSA_NISTP256_SHA256)
        );
    }

    #[test]
    fn wildcard_covers_one_label_only() {
        assert!(covers("*.b.example", "x.b.example"));
        assert!(covers("*.b.example", "*.b.example"));
        assert!(!covers("*.b.example", "b.example"));
        assert!(!covers("*.b.example", "y.x.b.example"));
        assert!(!covers("a.b.example", "*.b.example"));
        assert!(covers("A.Example.", "a.example"));
    }

    #[test]
    fn server_names_are_checked() {
        assert_eq!(normalise("A.Example.").unwrap(), "a.example");
        assert!(normalise("*.b.example").is_ok());
        for bad in ["", "127.0.0.1", "a.*.example", "a b.example", "**.x"] {
            let err = normalise(bad).unwrap_err();
            assert_eq!(err.code(), "ERR_HTTPY_TLS", "{bad}");
        }
    }

    #[test]
    fn leaf_must_cover_its_server_name() {
        let der = leaf_for(&["a.example", "*.c.example"]);
        let chain = [der];
        assert!(check_leaf(&chain, Some("a.example"), "a.pem").is_ok());
        assert!(check_leaf(&chain, Some("x.c.example"), "a.pem").is_ok());
        assert!(check_leaf(&chain, Some("*.c.example"), "a.pem").is_ok());
        let err = check_leaf(&chain, Some("b.example"), "a.pem").unwrap_err();
        assert!(
            err.message().contains("a.pem") && err.message().contains("b.example"),
            "{}",
            err.message()
        );
        assert!(check_leaf(&chain, None, "a.pem").is_ok());
    }
}
