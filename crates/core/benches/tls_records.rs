//! What TLS adds to one keep-alive HTTPS request on the server, without the
//! network: a rustls server connection and a client connection talk
//! through memory, and only the server's steps are timed, as a server
//! does them for one ~100-byte request and answer:
//!
//! 1. `read_tls` (the request's record into rustls' buffer), then
//!    `process_new_packets` (decrypt, and the plaintext moved into a buffer
//!    rustls allocates per record), then `reader().read` (copied out);
//! 2. `writer().write` of the answer (encrypted into a record rustls
//!    allocates), then `write_tls` (the record copied out, as the socket
//!    write does).
//!
//! Each step is timed for each crypto provider the server could use:
//! aws-lc-rs (the server's, `config/certs.rs`), ring, and the cipher alone
//! (seal and open of one record through the provider's AEAD, no rustls
//! bookkeeping), so that docs/performance.md §16 can split the TLS cost
//! into cipher, rustls and copies. The client is rustls with ring, as the
//! load generator is; it offers TLS 1.3's AES-256-GCM first, as the
//! generator does.
//!
//!   cargo bench -p httpy-core --bench tls_records
//!   cargo bench -p httpy-core --bench tls_records -- --requests 400000
//!
//! A plain timing loop (harness = false). Not part of `cargo test`.

use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, Iv, MessageDecrypter, MessageEncrypter, OutboundChunks,
    OutboundPlainMessage,
};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use rustls::{ContentType, ProtocolVersion};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

const REQUEST: &[u8] = b"GET /plaintext-cached HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: */*\r\n\r\n";
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\ndate: Mon, 07 Dec 2026 04:00:00 GMT\r\n\r\nHello, World!";

fn args_requests() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--requests")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

/// Server-side time per request, by step.
#[derive(Default)]
struct Steps {
    read: Duration,
    write: Duration,
}

fn certificate() -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
    (vec![made.cert.der().clone()], key)
}

/// A handshaken pair: the server on `server_provider`, the client on ring.
fn pair(server_provider: CryptoProvider) -> (ServerConnection, ClientConnection) {
    let (chain, key) = certificate();
    let server = ServerConfig::builder_with_provider(Arc::new(server_provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(chain[0].clone()).unwrap();
    let client =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let mut s = ServerConnection::new(Arc::new(server)).unwrap();
    let mut c = ClientConnection::new(Arc::new(client), ServerName::try_from("localhost").unwrap())
        .unwrap();
    let mut wire = Vec::new();
    while c.is_handshaking() || s.is_handshaking() || s.wants_write() || c.wants_write() {
        wire.clear();
        c.write_tls(&mut wire).unwrap();
        s.read_tls(&mut &wire[..]).unwrap();
        s.process_new_packets().unwrap();
        wire.clear();
        s.write_tls(&mut wire).unwrap();
        c.read_tls(&mut &wire[..]).unwrap();
        c.process_new_packets().unwrap();
    }
    (s, c)
}

fn rustls_steps(name: &str, provider: CryptoProvider, n: usize) {
    let (mut s, mut c) = pair(provider);
    let suite = s.negotiated_cipher_suite().unwrap().suite();
    let mut steps = Steps::default();
    let mut req_wire = Vec::with_capacity(4096);
    let mut ans_wire = Vec::with_capacity(4096);
    let mut plain = vec![0u8; 8192];
    let mut clock = Duration::ZERO;
    for i in 0..n + n / 10 {
        // The client's request (not timed).
        req_wire.clear();
        c.writer().write_all(REQUEST).unwrap();
        c.write_tls(&mut req_wire).unwrap();

        // The server reads it: the socket read is replaced by a slice.
        let t0 = Instant::now();
        s.read_tls(&mut &req_wire[..]).unwrap();
        s.process_new_packets().unwrap();
        let got = s.reader().read(&mut plain).unwrap();
        let t1 = Instant::now();
        assert_eq!(&plain[..got], REQUEST);
        // The answer, encrypted and copied out (the socket write).
        ans_wire.clear();
        let t2 = Instant::now();
        s.writer().write_all(ANSWER).unwrap();
        s.write_tls(&mut ans_wire).unwrap();
        let t3 = Instant::now();
        let t4 = Instant::now();

        // The client takes it (not timed).
        c.read_tls(&mut &ans_wire[..]).unwrap();
        c.process_new_packets().unwrap();
        let got = c.reader().read(&mut plain).unwrap();
        assert_eq!(&plain[..got], ANSWER);
        if i >= n / 10 {
            steps.read += t1 - t0;
            steps.write += t3 - t2;
            clock += t4 - t3;
        }
    }
    let per = |d: Duration| d.as_nanos() as f64 / n as f64 - clock.as_nanos() as f64 / n as f64;
    println!(
        "{name:<28} {suite:?}: read+decrypt {:>4.0} ns, encrypt+write {:>4.0} ns, total {:>4.0} ns per request (request {} B, answer {} B; the clock's own ~{:.0} ns taken off each)",
        per(steps.read),
        per(steps.write),
        per(steps.read) + per(steps.write),
        REQUEST.len(),
        ANSWER.len(),
        clock.as_nanos() as f64 / n as f64,
    );
}

/// Seal and open of one record through the provider's AES-256-GCM, as
/// rustls calls it (a record allocated per seal, opened in place).
fn cipher_alone(name: &str, provider: &CryptoProvider, n: usize) {
    let suite = provider
        .cipher_suites
        .iter()
        .find(|s| s.suite() == rustls::CipherSuite::TLS13_AES_256_GCM_SHA384)
        .and_then(|s| s.tls13())
        .unwrap();
    let key = || AeadKey::from([7u8; 32]);
    let mut enc: Box<dyn MessageEncrypter> = suite.aead_alg.encrypter(key(), Iv::new([9u8; 12]));
    let mut dec: Box<dyn MessageDecrypter> = suite.aead_alg.decrypter(key(), Iv::new([9u8; 12]));
    let mut seal = Duration::ZERO;
    let mut open = Duration::ZERO;
    for seq in 0..n as u64 {
        let t0 = Instant::now();
        let rec = enc
            .encrypt(
                OutboundPlainMessage {
                    typ: ContentType::ApplicationData,
                    version: ProtocolVersion::TLSv1_2,
                    payload: OutboundChunks::Single(ANSWER),
                },
                seq,
            )
            .unwrap();
        let mut wire = rec.encode();
        let t1 = Instant::now();
        let body = &mut wire[5..];
        let msg =
            InboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, body);
        let plain = dec.decrypt(msg, seq).unwrap();
        black_box(plain.payload.len());
        let t2 = Instant::now();
        seal += t1 - t0;
        open += t2 - t1;
    }
    println!(
        "{name:<28} AES-256-GCM alone: seal {:>4.0} ns, open {:>4.0} ns per {}-byte record (clock included)",
        seal.as_nanos() as f64 / n as f64,
        open.as_nanos() as f64 / n as f64,
        ANSWER.len(),
    );
}

fn main() {
    let n = args_requests();
    for round in 1..=2 {
        println!("round {round}, {n} requests each:");
        cipher_alone(
            "aws-lc-rs",
            &rustls::crypto::aws_lc_rs::default_provider(),
            n,
        );
        cipher_alone("ring", &rustls::crypto::ring::default_provider(), n);
        rustls_steps(
            "aws-lc-rs (the server's)",
            rustls::crypto::aws_lc_rs::default_provider(),
            n,
        );
        rustls_steps("ring", rustls::crypto::ring::default_provider(), n);
    }
}
