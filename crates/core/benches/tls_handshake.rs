//! What one full TLS 1.3 handshake costs the server, without the network:
//! a rustls server connection (configured as `config/tls.rs` configures
//! the server's: its provider, `httpy_core::tls_provider()`, ALPN h2 and
//! http/1.1, two stateless TLS 1.3 tickets beside rustls' default session
//! cache; and,
//! for comparison, aws-lc-rs' provider as rustls ships it, whose HKDF
//! `config/hkdf.rs` replaces) and a fresh client connection per
//! handshake talk through memory, and only the server's steps are timed:
//!
//! 1. `ServerConnection::new` (the connection's state and buffers);
//! 2. the ClientHello read and processed: key exchange, the certificate
//!    and its signature, the key schedule, the encrypted flight
//!    (`read_tls` + `process_new_packets`), then that flight copied out
//!    (`write_tls`);
//! 3. the client's Finished read and processed, and the session tickets
//!    made, encrypted and copied out.
//!
//! Beside it, the two public-key operations alone through the same
//! provider: the certificate key's signature (the scheme rustls picks for
//! the generator's offer) and an X25519 key exchange (key pair made,
//! shared secret computed), so that the rest of step 2 (hashing, HKDF,
//! rustls' state machine, encoding, allocation) is known by difference.
//! And the same handshake with tickets off, with tickets and the session
//! cache off, and with rustls' default tickets (each an entry of the
//! session cache, as the server issued them before stateless ones), to
//! price what a client that never resumes does not use, and with one
//! ticket instead of two. The client is rustls with ring offering TLS
//! 1.3's AES-256-GCM and X25519 first, without resumption, as the load
//! generator (`crates/loadgen`) does on the handshake rows of `npm run
//! bench`; and, to price the suite, the same client offering AES-128-GCM
//! (SHA-256 for the transcript and the key schedule) first. Last, the
//! handshake as the server runs it now (`net/conn.rs`): the hello read by
//! rustls' `Acceptor` and handed to a configuration in the server's own
//! order, AES-128-GCM first (`config/tls.rs`), and the same `Acceptor` path
//! in the client's order, to price the `Acceptor` alone. X25519 is timed
//! through ring as well as aws-lc, the one the server uses.
//!
//! Keys and certificates are made with the `openssl` command (RSA 2048,
//! ECDSA P-256), as the bench's servers' are.
//!
//!   cargo bench -p httpy-core --bench tls_handshake
//!   cargo bench -p httpy-core --bench tls_handshake -- --handshakes 4000
//!
//! A plain timing loop (harness = false). Not part of `cargo test`.

use rustls::crypto::CryptoProvider;
use rustls::server::{Acceptor, NoServerSessionStorage, ServerSessionMemoryCache};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn args_handshakes() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--handshakes")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// A self-signed certificate for `localhost` and its key, from openssl.
fn certificate(key_args: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(key_args)
        .args(["-addext", "subjectAltName=DNS:localhost"])
        // A leaf, not a CA: the client's verifier refuses a CA as end entity.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(dir.path().join("cert.pem"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl command");
    assert!(status.success(), "openssl req failed");
    let cert = CertificateDer::from_pem_file(dir.path().join("cert.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.path().join("key.pem")).unwrap();
    (cert, key)
}

/// What the server keeps for resumption.
#[derive(Clone, Copy)]
enum Resumption {
    /// As the server runs (`config/tls.rs`): two stateless TLS 1.3 tickets
    /// per handshake (the session sealed by aws-lc-rs' rotating ticketer),
    /// rustls' 256-entry session cache kept for TLS 1.2 session ids.
    Default,
    /// As `Default`, one stateless ticket instead of two (Go's crypto/tls
    /// sends one).
    OneTicket,
    /// rustls' defaults: two TLS 1.3 tickets, each an entry of the cache.
    Stateful,
    /// No tickets sent; the cache stays (used by TLS 1.2 session ids).
    NoTickets,
    /// Neither tickets nor the cache.
    Nothing,
}

/// Which provider, in which order.
#[derive(Clone, Copy)]
enum Provider {
    /// aws-lc-rs as rustls ships it, the client's order.
    Shipped,
    /// The server's (`httpy_core::tls_provider()`), the client's order.
    Server,
    /// The server's in its own order, AES-128-GCM first, ignoring the
    /// client's: what a client listing an AES-GCM suite first gets.
    ServerOrder,
}

fn server_config(
    provider: Provider,
    cert: &CertificateDer<'static>,
    key: &PrivateKeyDer<'static>,
    resumption: Resumption,
) -> Arc<ServerConfig> {
    let provider_kind = provider;
    let provider = match provider {
        Provider::Shipped => rustls::crypto::aws_lc_rs::default_provider(),
        Provider::Server => httpy_core::tls_provider(),
        Provider::ServerOrder => httpy_core::tls_provider_aes128_first(),
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key.clone_key())
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ignore_client_order = matches!(provider_kind, Provider::ServerOrder);
    // rustls' default cache, spelled out: what `Default` and `Stateful` keep.
    config.session_storage = ServerSessionMemoryCache::new(256);
    match resumption {
        Resumption::Default => {
            config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().unwrap();
        }
        Resumption::OneTicket => {
            config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().unwrap();
            config.send_tls13_tickets = 1;
        }
        Resumption::Stateful => {}
        Resumption::NoTickets => config.send_tls13_tickets = 0,
        Resumption::Nothing => {
            config.send_tls13_tickets = 0;
            config.session_storage = Arc::new(NoServerSessionStorage {});
        }
    }
    Arc::new(config)
}

/// The generator's client; `aes128_first` moves TLS 1.3's AES-128-GCM
/// (SHA-256) to the front of its offer, as browsers order it.
fn client_config(cert: &CertificateDer<'static>, aes128_first: bool) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let mut provider = rustls::crypto::ring::default_provider();
    if aes128_first {
        provider
            .cipher_suites
            .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// Server time per handshake, by step.
#[derive(Default)]
struct Steps {
    new: Duration,
    hello: Duration,
    flight_out: Duration,
    finished: Duration,
    tickets_out: Duration,
}

fn handshakes(
    name: &str,
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
    via_acceptor: bool,
    n: usize,
) {
    let mut steps = Steps::default();
    let mut wire = Vec::with_capacity(8192);
    let mut tickets = 0usize;
    for i in 0..n + n / 10 {
        let mut c =
            ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap())
                .unwrap();
        wire.clear();
        c.write_tls(&mut wire).unwrap();

        let (t0, t1, t2, mut s);
        if via_acceptor {
            // As the server runs: the hello read by rustls' `Acceptor`, the
            // configuration chosen from its suites, the handshake resumed.
            t0 = Instant::now();
            let mut acceptor = Acceptor::default();
            t1 = Instant::now();
            acceptor.read_tls(&mut &wire[..]).unwrap();
            let accepted = acceptor.accept().ok().unwrap().unwrap();
            black_box(accepted.client_hello().cipher_suites().first());
            s = accepted.into_connection(server.clone()).ok().unwrap();
            s.process_new_packets().unwrap();
            t2 = Instant::now();
        } else {
            t0 = Instant::now();
            s = ServerConnection::new(server.clone()).unwrap();
            t1 = Instant::now();
            s.read_tls(&mut &wire[..]).unwrap();
            s.process_new_packets().unwrap();
            t2 = Instant::now();
        }
        wire.clear();
        s.write_tls(&mut wire).unwrap();
        let t3 = Instant::now();

        c.read_tls(&mut &wire[..]).unwrap();
        c.process_new_packets().unwrap();
        assert!(!c.is_handshaking());
        wire.clear();
        c.write_tls(&mut wire).unwrap();

        let t4 = Instant::now();
        s.read_tls(&mut &wire[..]).unwrap();
        s.process_new_packets().unwrap();
        let t5 = Instant::now();
        wire.clear();
        s.write_tls(&mut wire).unwrap();
        let t6 = Instant::now();
        assert!(!s.is_handshaking());
        // TLS 1.3 records of the tickets (each a 5-byte header + ciphertext).
        if i == 0 {
            let mut off = 0;
            while off + 5 <= wire.len() {
                tickets += 1;
                off += 5 + u16::from_be_bytes([wire[off + 3], wire[off + 4]]) as usize;
            }
        }
        if i >= n / 10 {
            steps.new += t1 - t0;
            steps.hello += t2 - t1;
            steps.flight_out += t3 - t2;
            steps.finished += t5 - t4;
            steps.tickets_out += t6 - t5;
        }
        black_box(s);
    }
    let us = |d: Duration| d.as_nanos() as f64 / n as f64 / 1000.0;
    let total = us(steps.new)
        + us(steps.hello)
        + us(steps.flight_out)
        + us(steps.finished)
        + us(steps.tickets_out);
    println!(
        "{name:<45} µs per handshake: new {:>5.1}, ClientHello {:>6.1}, flight out {:>4.1}, Finished+tickets {:>5.1}, tickets out {:>4.1}; total {:>6.1} ({tickets} records after Finished)",
        us(steps.new),
        us(steps.hello),
        us(steps.flight_out),
        us(steps.finished),
        us(steps.tickets_out),
        total,
    );
}

/// The certificate key's signature alone, in the scheme rustls picks for
/// the generator's offer (ring's verification schemes, in its order).
fn sign_alone(name: &str, key: &PrivateKeyDer<'static>, n: usize) {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .unwrap();
    let offered = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .supported_schemes();
    let signer = signing.choose_scheme(&offered).unwrap();
    // TLS 1.3's CertificateVerify input: 64 spaces, a context string, a
    // zero byte and the transcript hash (48 bytes for SHA-384).
    let mut msg = vec![0x20u8; 64];
    msg.extend_from_slice(b"TLS 1.3, server CertificateVerify\0");
    msg.extend_from_slice(&[7u8; 48]);
    let t0 = Instant::now();
    for _ in 0..n {
        black_box(signer.sign(black_box(&msg)).unwrap());
    }
    let per = t0.elapsed().as_nanos() as f64 / n as f64 / 1000.0;
    println!(
        "{name:<45} signature alone ({:?}): {per:>6.1} µs",
        signer.scheme()
    );
}

/// One X25519 exchange alone: the server's key pair made, the shared
/// secret computed from the client's share.
fn x25519_alone(name: &str, provider: &CryptoProvider, n: usize) {
    let group = provider
        .kx_groups
        .iter()
        .find(|g| g.name() == rustls::NamedGroup::X25519)
        .unwrap();
    let peer = group.start().unwrap();
    let peer_pub = peer.pub_key().to_vec();
    let t0 = Instant::now();
    for _ in 0..n {
        let kx = group.start().unwrap();
        black_box(kx.pub_key());
        black_box(kx.complete(&peer_pub).unwrap());
    }
    let per = t0.elapsed().as_nanos() as f64 / n as f64 / 1000.0;
    println!("{name:<30} X25519 alone (key pair + shared secret): {per:>5.1} µs");
}

/// A TLS 1.3 server's key schedule alone (RFC 8446 §7.1: 3 extracts, the
/// traffic secrets, keys, IVs and finished keys, the resumption secret and
/// two tickets' PSKs: 3 extracts and 19 expansions), through the HKDF of
/// aws-lc-rs as rustls ships it and through the server's
/// (`config/hkdf.rs`), in alternating blocks so that both see the same
/// machine. Returns µs per key schedule (shipped, server's).
fn key_schedule_alone(n: usize) -> (f64, f64) {
    let shipped = rustls::crypto::aws_lc_rs::default_provider();
    let ours = httpy_core::tls_provider();
    let hkdf = |p: &CryptoProvider| {
        p.cipher_suites
            .iter()
            .find(|s| s.suite() == rustls::CipherSuite::TLS13_AES_256_GCM_SHA384)
            .and_then(|s| s.tls13())
            .unwrap()
            .hkdf_provider
    };
    let (a, b) = (hkdf(&shipped), hkdf(&ours));
    let label = |l: &'static [u8]| -> [&'static [u8]; 4] { [b"\x00\x30", b"\x0e", l, b"\x00"] };
    let schedule = |h: &dyn rustls::crypto::tls13::Hkdf| {
        let early = h.extract_from_zero_ikm(None);
        let derived = early.expand_block(&label(b"tls13 derived"));
        let hs = h.extract_from_secret(Some(derived.as_ref()), &[9u8; 32]);
        let mut key = [0u8; 32];
        let mut iv = [0u8; 12];
        for l in [&b"tls13 c hs traffic"[..], b"tls13 s hs traffic"] {
            let secret = h.expander_for_okm(&hs.expand_block(&[l]));
            secret.expand_slice(&[b"key"], &mut key).unwrap();
            secret.expand_slice(&[b"iv"], &mut iv).unwrap();
            black_box(secret.expand_block(&[b"finished"]));
        }
        let derived = hs.expand_block(&label(b"tls13 derived"));
        let master = h.extract_from_secret(Some(derived.as_ref()), &[0u8; 48]);
        for l in [&b"tls13 c ap traffic"[..], b"tls13 s ap traffic"] {
            let secret = h.expander_for_okm(&master.expand_block(&[l]));
            secret.expand_slice(&[b"key"], &mut key).unwrap();
            secret.expand_slice(&[b"iv"], &mut iv).unwrap();
        }
        black_box(master.expand_block(&[b"tls13 exp master"]));
        let resumption = h.expander_for_okm(&master.expand_block(&[b"tls13 res master"]));
        for nonce in [[1u8; 32], [2u8; 32]] {
            black_box(resumption.expand_block(&[b"tls13 resumption", &nonce]));
        }
        black_box((key, iv));
    };
    let (mut ta, mut tb) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..n / 100 {
        let t0 = Instant::now();
        for _ in 0..100 {
            schedule(a);
        }
        let t1 = Instant::now();
        for _ in 0..100 {
            schedule(b);
        }
        ta += t1 - t0;
        tb += t1.elapsed();
    }
    let us = |d: Duration| d.as_nanos() as f64 / n as f64 / 1000.0;
    (us(ta), us(tb))
}

fn main() {
    let n = args_handshakes();
    let rsa = certificate(&["-newkey", "rsa:2048"]);
    let ecdsa = certificate(&["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let aws = rustls::crypto::aws_lc_rs::default_provider();
    for round in 1..=2 {
        println!("round {round}, {n} handshakes each:");
        let (shipped, ours) = key_schedule_alone(n * 10);
        println!(
            "{:<45} TLS 1.3 key schedule alone (SHA-384): aws-lc-rs as shipped {shipped:>5.1} µs, server's {ours:>5.1} µs",
            ""
        );
        x25519_alone("aws-lc-rs", &aws, n);
        x25519_alone("ring", &rustls::crypto::ring::default_provider(), n);
        for (label, (cert, key)) in [("RSA 2048", &rsa), ("ECDSA P-256", &ecdsa)] {
            sign_alone(label, key, n);
            let client = client_config(cert, false);
            let aes128 = client_config(cert, true);
            use Provider::*;
            for (what, p, r, client, acceptor) in [
                (
                    "aws-lc-rs as shipped",
                    Shipped,
                    Resumption::Default,
                    &client,
                    false,
                ),
                (
                    "server's (stateless tickets)",
                    Server,
                    Resumption::Default,
                    &client,
                    false,
                ),
                (
                    "server's, one ticket",
                    Server,
                    Resumption::OneTicket,
                    &client,
                    false,
                ),
                (
                    "server's, tickets in the cache",
                    Server,
                    Resumption::Stateful,
                    &client,
                    false,
                ),
                (
                    "server's, no tickets",
                    Server,
                    Resumption::NoTickets,
                    &client,
                    false,
                ),
                (
                    "server's, no tickets, no cache",
                    Server,
                    Resumption::Nothing,
                    &client,
                    false,
                ),
                (
                    "server's, AES-128 offered first",
                    Server,
                    Resumption::Default,
                    &aes128,
                    false,
                ),
                (
                    "server's, hello through Acceptor",
                    Server,
                    Resumption::Default,
                    &client,
                    true,
                ),
                (
                    "server's order (AES-128), Acceptor",
                    ServerOrder,
                    Resumption::Default,
                    &client,
                    true,
                ),
            ] {
                let server = server_config(p, cert, key, r);
                handshakes(&format!("{label}, {what}"), &server, client, acceptor, n);
            }
        }
    }
}
