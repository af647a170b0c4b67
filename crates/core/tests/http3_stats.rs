//! HTTP/3 connections are counted like TCP ones: in `stats()` (open and
//! total) and in the Prometheus `http_open_connections{protocol="http3"}`.
#![cfg(feature = "http3")]

use bytes::Buf;
use httpy_core::{Http3Config, MetricsConfig, Router, Server, ServerConfig, TlsSettings, Waker};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;

struct NoEmbedder;

impl Waker for NoEmbedder {
    fn wake(&self) {}
    fn closed(&self) {}
}

fn client_config(cert_pem: &str) -> quinn::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ))
}

fn open_http3(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("http_open_connections{protocol=\"http3\"} "))
        .map(|n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn http3_connections_are_counted() {
    let config = ServerConfig {
        port: 0,
        tls: Some(TlsSettings::self_signed().unwrap()),
        http3: Some(Http3Config {
            port: 0,
            ..Default::default()
        }),
        metrics: Some(MetricsConfig { path: None }),
        ..Default::default()
    };
    let server = Server::start(config, Router::new(), Box::new(NoEmbedder)).unwrap();
    let port = server.http3_port().unwrap();

    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(client_config(&server.tls_certificate_pem().unwrap()));
    let conn = endpoint
        .connect(([127, 0, 0, 1], port).into(), "localhost")
        .unwrap()
        .await
        .unwrap();
    let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
        .await
        .unwrap();
    let drive = tokio::spawn(async move { driver.wait_idle().await });

    let req = http::Request::get("https://localhost/nowhere")
        .body(())
        .unwrap();
    let mut stream = send.send_request(req).await.unwrap();
    stream.finish().await.unwrap();
    let res = stream.recv_response().await.unwrap();
    assert_eq!(res.status(), http::StatusCode::NOT_FOUND);
    while let Some(mut chunk) = stream.recv_data().await.unwrap() {
        chunk.advance(chunk.remaining());
    }

    let stats = server.stats();
    assert_eq!((stats.connections_open, stats.connections_total), (1, 1));
    assert_eq!(open_http3(&server.metrics_text().unwrap()), Some(1));

    conn.close(0u32.into(), b"done");
    drop(send);
    let _ = drive.await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.stats().connections_open != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection is released"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(open_http3(&server.metrics_text().unwrap()), Some(0));
    assert_eq!(server.stats().connections_total, 1);
    server.close(Duration::from_secs(1));
}
