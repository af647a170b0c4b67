//! Choosing a certificate per TLS ClientHello (SNI), and the checks that
//! make a certificate list safe to serve: every certificate must cover the
//! `serverName` it is listed under, must be inside its validity period, and
//! no name may be listed twice.
//!
//! The resolver is built once per certificate list and never changes: a
//! reload builds a new one (and a new rustls configuration around it), so a
//! handshake sees one consistent list from start to end.

use rustc_hash::FxHashMap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;
use std::sync::Arc;
use x509_parser::extensions::GeneralName;

use super::acme::{AcmeState, ALPN_ACME};
use crate::error::{Error, ErrorKind, Result};

fn tls_error(msg: String) -> Error {
    Error::new(ErrorKind::Tls, msg)
}

/// Certificates by server name, and the one for every other name.
#[derive(Debug, Default)]
pub(crate) struct SniResolver {
    /// Exact names, lower-case.
    exact: FxHashMap<String, Arc<CertifiedKey>>,
    /// `*.b.example` stored as `b.example`: matches exactly one more label.
    wildcard: FxHashMap<String, Arc<CertifiedKey>>,
    /// For unknown names and ClientHellos without SNI; `None` refuses them.
    default: Option<Arc<CertifiedKey>>,
    /// Certificates ordered by ACME: they serve its domains first, and
    /// every other name when there is no static default.
    pub(crate) acme: Option<Arc<AcmeState>>,
}

impl SniResolver {
    /// Adds `key` under `server_name` (`None`: the default certificate).
    /// `cert_name` names the certificate in errors.
    pub(crate) fn add(
        &mut self,
        server_name: Option<&str>,
        key: Arc<CertifiedKey>,
        cert_name: &str,
    ) -> Result<()> {
        let Some(name) = server_name else {
            if self.default.is_some() {
                return Err(tls_error(format!(
                    "two default certificates (entries without serverName); the second is {cert_name}"
                )));
            }
            self.default = Some(key);
            return Ok(());
        };
        let name = normalise(name)?;
        let (map, stem) = match name.strip_prefix("*.") {
            Some(rest) => (&mut self.wildcard, rest.to_string()),
            None => (&mut self.exact, name.clone()),
        };
        if map.insert(stem, key).is_some() {
            return Err(tls_error(format!(
                "serverName {name} is listed twice (again for {cert_name})"
            )));
        }
        Ok(())
    }

    fn lookup(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.lookup_named(name).or_else(|| self.default.clone())
    }

    /// The exact or wildcard match for `name`, without the default.
    fn lookup_named(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = name {
            // rustls has already checked that SNI is a DNS name; clients
            // may send it in any case.
            let lower;
            let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                lower = name.to_ascii_lowercase();
                lower.as_str()
            } else {
                name
            };
            let name = name.strip_suffix('.').unwrap_or(name);
            if let Some(k) = self.exact.get(name) {
                return Some(k.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(k) = self.wildcard.get(parent) {
                    return Some(k.clone());
                }
            }
        }
        None
    }

    /// With ACME: a validation handshake gets its challenge certificate,
    /// the ACME domains the issued certificate (a static one while none is
    /// issued), other names a static match, else the static default, else
    /// the ACME certificate. A refusal is logged with its reason.
    fn resolve_acme<'a>(
        &self,
        acme: &AcmeState,
        name: Option<&str>,
        alpn: Option<impl Iterator<Item = &'a [u8]>>,
    ) -> Option<Arc<CertifiedKey>> {
        // One small allocation per handshake, only with ACME: negligible
        // beside the handshake's own signature.
        let lower = name.map(str::to_ascii_lowercase);
        let name = lower.as_deref().map(|n| n.strip_suffix('.').unwrap_or(n));
        if alpn.is_some_and(|mut a| a.any(|p| p == ALPN_ACME)) {
            return acme.challenge_cert(name);
        }
        let found = if name.is_some_and(|n| acme.serves(n)) {
            acme.current().or_else(|| self.lookup(name))
        } else {
            self.lookup(name).or_else(|| acme.current())
        };
        if found.is_none() {
            acme.refused(name);
        }
        found
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // None makes rustls end the handshake with a fatal alert.
        if let Some(acme) = &self.acme {
            return self.resolve_acme(acme, hello.server_name(), hello.alpn());
        }
        self.lookup(hello.server_name())
    }
}

/// Checks a `serverName` option and returns it lower-case, without a
/// trailing dot.
fn normalise(name: &str) -> Result<String> {
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
fn covers(cert_name: &str, wanted: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    fn key_for(names: &[&str]) -> (Arc<CertifiedKey>, CertificateDer<'static>) {
        let made = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let der = made.cert.der().clone();
        let key =
            rustls_pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
        let provider = rustls::crypto::ring::default_provider();
        let ck = CertifiedKey::from_der(vec![der.clone()], key, &provider).unwrap();
        (Arc::new(ck), der)
    }

    #[test]
    fn lookup_prefers_exact_then_wildcard_then_default() {
        let (a, _) = key_for(&["a.example"]);
        let (w, _) = key_for(&["*.b.example"]);
        let (d, _) = key_for(&["localhost"]);
        let mut r = SniResolver::default();
        r.add(Some("a.example"), a.clone(), "a").unwrap();
        r.add(Some("*.b.example"), w.clone(), "w").unwrap();
        assert!(
            r.lookup(Some("nope.example")).is_none(),
            "no default: refused"
        );
        assert!(r.lookup(None).is_none());
        r.add(None, d.clone(), "d").unwrap();
        assert!(Arc::ptr_eq(&r.lookup(Some("A.EXAMPLE")).unwrap(), &a));
        assert!(Arc::ptr_eq(&r.lookup(Some("x.b.example")).unwrap(), &w));
        assert!(Arc::ptr_eq(&r.lookup(Some("x.y.b.example")).unwrap(), &d));
        assert!(Arc::ptr_eq(&r.lookup(None).unwrap(), &d));
        assert!(r.add(Some("a.example"), a, "again").is_err());
        assert!(r.add(None, d, "again").is_err());
    }

    #[test]
    fn leaf_must_cover_its_server_name() {
        let (_, der) = key_for(&["a.example", "*.c.example"]);
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
