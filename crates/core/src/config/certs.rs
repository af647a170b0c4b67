//! One certificate, on its own: the checks of a leaf (validity period, the
//! names it covers), a chain and key bound into rustls' `CertifiedKey` with
//! the server's crypto provider, and the serverName rules. The TLS
//! settings, the SNI resolver and the ACME client all build certificates
//! with these, so they live below all three.

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
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
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => tls_error(format!(
                "the private key in {key_name} does not match the certificate in {cert_name}"
            )),
            e => tls_error(format!("cannot use {cert_name} with {key_name}: {e}")),
        })
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
