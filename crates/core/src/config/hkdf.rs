//! TLS 1.3's key schedule (HKDF) for the server's crypto provider, computed
//! with HMAC keys made once per secret.
//!
//! Why: aws-lc-rs' HKDF, behind rustls' aws-lc-rs provider, keeps the input
//! secret and the salt of an extracted key and, for every expansion, runs
//! HKDF from the start (`HKDF()`: the extract again, then the expand, each
//! HMAC setting up its key pads anew). A TLS 1.3 handshake expands some 20
//! labels from a handful of secrets, so with SHA-384 (TLS_AES_256_GCM_SHA384,
//! which the load generator, and any client listing AES-256 first, gets) a
//! full handshake spent 10 % (RSA 2048) to 23 % (ECDSA P-256) of its server
//! CPU in SHA-512 blocks, most of them these repeated extracts and pads
//! (docs/performance.md §16.2); the key schedule alone now costs ~11 µs
//! (27 %) less per handshake. rustls'
//! `HkdfUsingHmac` extracts once and expands with one HMAC key per secret;
//! the HMAC here is aws-lc's (`aws_lc_rs::hmac`, whose key keeps its
//! padded state, so each expansion costs the two message blocks, no key
//! setup). Same outputs (RFC 5869), checked against aws-lc-rs' own below.
//! The record ciphers, the hashes and QUIC's header protection stay the
//! provider's.

use aws_lc_rs::hmac as aws;
use rustls::crypto::hmac::{Hmac, Key, Tag};
use rustls::crypto::tls13::HkdfUsingHmac;
use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, CipherSuiteCommon, SupportedCipherSuite, Tls13CipherSuite};
use std::sync::LazyLock;

/// aws-lc's HMAC for one digest, as rustls' `Hmac`.
struct AwsHmac(aws::Algorithm);

/// A key whose padded inner and outer states are computed once.
struct AwsKey(aws::Key);

impl Hmac for AwsHmac {
    fn with_key(&self, key: &[u8]) -> Box<dyn Key> {
        Box::new(AwsKey(aws::Key::new(self.0, key)))
    }

    fn hash_output_len(&self) -> usize {
        self.0.digest_algorithm().output_len()
    }
}

impl Key for AwsKey {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> Tag {
        // A copy of the keyed state (no hashing), then the message.
        let mut ctx = aws::Context::with_key(&self.0);
        ctx.update(first);
        for m in middle {
            ctx.update(m);
        }
        ctx.update(last);
        Tag::new(ctx.sign().as_ref())
    }

    fn tag_len(&self) -> usize {
        self.0.algorithm().digest_algorithm().output_len()
    }
}

static HMAC_SHA256: AwsHmac = AwsHmac(aws::HMAC_SHA256);
static HMAC_SHA384: AwsHmac = AwsHmac(aws::HMAC_SHA384);
static HKDF_SHA256: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SHA256);
static HKDF_SHA384: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SHA384);

/// `suite` with the HKDF above (its hash's), everything else unchanged.
fn rekeyed(suite: &'static Tls13CipherSuite) -> Tls13CipherSuite {
    let hkdf: &'static HkdfUsingHmac<'static> = if suite.common.hash_provider.output_len() == 48 {
        &HKDF_SHA384
    } else {
        &HKDF_SHA256
    };
    Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: suite.common.suite,
            hash_provider: suite.common.hash_provider,
            confidentiality_limit: suite.common.confidentiality_limit,
        },
        hkdf_provider: hkdf,
        aead_alg: suite.aead_alg,
        quic: suite.quic,
    }
}

fn tls13_suite(id: CipherSuite) -> &'static Tls13CipherSuite {
    rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES
        .iter()
        .find(|s| s.suite() == id)
        .and_then(|s| s.tls13())
        .expect("aws-lc-rs has every TLS 1.3 suite")
}

static AES_256_GCM_SHA384: LazyLock<Tls13CipherSuite> =
    LazyLock::new(|| rekeyed(tls13_suite(CipherSuite::TLS13_AES_256_GCM_SHA384)));
static AES_128_GCM_SHA256: LazyLock<Tls13CipherSuite> =
    LazyLock::new(|| rekeyed(tls13_suite(CipherSuite::TLS13_AES_128_GCM_SHA256)));
static CHACHA20_POLY1305_SHA256: LazyLock<Tls13CipherSuite> =
    LazyLock::new(|| rekeyed(tls13_suite(CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)));

/// aws-lc-rs' provider with its TLS 1.3 suites on the HKDF above (same
/// suites, same order; TLS 1.2's are untouched).
pub(crate) fn provider() -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    for suite in provider.cipher_suites.iter_mut() {
        let ours: &'static Tls13CipherSuite = match suite.suite() {
            CipherSuite::TLS13_AES_256_GCM_SHA384 => &AES_256_GCM_SHA384,
            CipherSuite::TLS13_AES_128_GCM_SHA256 => &AES_128_GCM_SHA256,
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => &CHACHA20_POLY1305_SHA256,
            _ => continue,
        };
        *suite = SupportedCipherSuite::Tls13(ours);
    }
    provider
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::tls13::OkmBlock;

    /// Every HKDF step rustls takes gives aws-lc-rs' own bytes.
    #[test]
    fn same_outputs_as_the_providers_hkdf() {
        let ours = provider();
        for suite in ours.cipher_suites.iter().filter_map(|s| s.tls13()) {
            let theirs = tls13_suite(suite.common.suite).hkdf_provider;
            let mine = suite.hkdf_provider;
            assert!(
                !std::ptr::addr_eq(mine, theirs),
                "{:?} not replaced",
                suite.common.suite
            );
            let info: &[&[u8]] = &[b"\x00\x30", b"\x0dtls13 c hs traffic", b"\x20", &[7u8; 32]];
            for salt in [None, Some(&b"salt salt salt"[..])] {
                let a = mine.extract_from_secret(salt, b"a shared secret of some length");
                let b = theirs.extract_from_secret(salt, b"a shared secret of some length");
                assert_eq!(a.expand_block(info).as_ref(), b.expand_block(info).as_ref());
                let mut x = [0u8; 12];
                let mut y = [0u8; 12];
                a.expand_slice(&[b"iv"], &mut x).unwrap();
                b.expand_slice(&[b"iv"], &mut y).unwrap();
                assert_eq!(x, y);
                let a = mine.extract_from_zero_ikm(salt);
                let b = theirs.extract_from_zero_ikm(salt);
                assert_eq!(a.expand_block(info).as_ref(), b.expand_block(info).as_ref());
            }
            let okm = OkmBlock::new(&[3u8; 48][..suite.common.hash_provider.output_len()]);
            let a = mine.expander_for_okm(&okm);
            let b = theirs.expander_for_okm(&okm);
            assert_eq!(a.expand_block(info).as_ref(), b.expand_block(info).as_ref());
            assert_eq!(
                mine.hmac_sign(&okm, b"finished").as_ref(),
                theirs.hmac_sign(&okm, b"finished").as_ref()
            );
        }
        assert_eq!(
            ours.cipher_suites
                .iter()
                .map(|s| s.suite())
                .collect::<Vec<_>>(),
            rustls::crypto::aws_lc_rs::default_provider()
                .cipher_suites
                .iter()
                .map(|s| s.suite())
                .collect::<Vec<_>>()
        );
    }
}
