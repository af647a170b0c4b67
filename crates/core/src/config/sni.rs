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
use std::sync::Arc;

use super::acme::{AcmeState, ALPN_ACME};
use super::certs::{normalise, tls_error};
use crate::error::Result;

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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;

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
}
