//! The generator against small hand-written servers whose behaviour we
//! control: body framings, connection closes, stalls, refused ports, and an
//! HTTP/2 server that counts its connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use httpy_loadgen::{run, FailureKind, LoadConfig, Protocol, Stop};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy)]
enum Style {
    /// `content-length`, keep-alive.
    Length,
    /// `transfer-encoding: chunked` in three chunks.
    Chunked,
    /// `connection: close` on every response.
    Close,
    /// Keep-alive, but the server silently drops the connection after
    /// every third response (as an idle timeout racing a reuse would).
    DropAfter3,
    /// Reads the request, never answers.
    Stall,
}

struct TestServer {
    port: u16,
    requests: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

/// Reads one request head (and a content-length body) from `buf`/`s`.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut tmp = [0u8; 4096];
                match s.read(&mut tmp).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            }
            buf.drain(..end + 4 + len);
            return true;
        }
        let mut tmp = [0u8; 4096];
        match s.read(&mut tmp).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

async fn http1_server(style: Style) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicU64::new(0));
    let connections = Arc::new(AtomicU64::new(0));
    let (r, c) = (requests.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let r = r.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut served = 0;
                while read_request(&mut s, &mut buf).await {
                    r.fetch_add(1, Ordering::SeqCst);
                    served += 1;
                    let out: &[u8] = match style {
                        Style::Length | Style::DropAfter3 => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
                        Style::Chunked => {
                            b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n3\r\nhij\r\n0\r\n\r\n"
                        }
                        Style::Close => b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
                        Style::Stall => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                    };
                    if s.write_all(out).await.is_err() {
                        return;
                    }
                    if matches!(style, Style::Close)
                        || (matches!(style, Style::DropAfter3) && served == 3)
                    {
                        return;
                    }
                }
            });
        }
    });
    TestServer {
        port,
        requests,
        connections,
    }
}

fn cfg(port: u16) -> LoadConfig {
    LoadConfig::new("127.0.0.1", port, "/x").timeout(Duration::from_secs(5))
}

/// `run` blocks; keep it off the test runtime's threads.
async fn run_blocking(c: LoadConfig) -> httpy_loadgen::Report {
    tokio::task::spawn_blocking(move || run(c, None))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_content_length() {
    let srv = http1_server(Style::Length).await;
    let r = run_blocking(cfg(srv.port).concurrency(4).stop(Stop::Requests(500))).await;
    assert_eq!(r.total, 500);
    assert_eq!(r.responses, 500);
    assert_eq!(r.errors(), 0);
    assert_eq!(r.status_counts, vec![(200, 500)]);
    assert_eq!(r.bytes_received, 2500);
    assert_eq!(r.connections_opened, 4);
    assert_eq!(srv.requests.load(Ordering::SeqCst), 500);
    assert_eq!(srv.connections.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_are_decoded_and_the_connection_reused() {
    let srv = http1_server(Style::Chunked).await;
    let r = run_blocking(cfg(srv.port).concurrency(2).stop(Stop::Requests(100))).await;
    assert_eq!(r.status_counts, vec![(201, 100)]);
    assert_eq!(r.bytes_received, 100 * 10);
    assert_eq!(r.connections_opened, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_opens_a_new_connection_per_request() {
    let srv = http1_server(Style::Close).await;
    let r = run_blocking(cfg(srv.port).concurrency(2).stop(Stop::Requests(40))).await;
    assert_eq!(r.errors(), 0);
    assert_eq!(r.responses, 40);
    assert_eq!(srv.connections.load(Ordering::SeqCst), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_closed_keep_alive_connection_is_retried_once() {
    let srv = http1_server(Style::DropAfter3).await;
    let r = run_blocking(cfg(srv.port).concurrency(1).stop(Stop::Requests(30))).await;
    assert_eq!(r.errors(), 0, "{:?}", r.failure_messages);
    assert_eq!(r.responses, 30);
    assert_eq!(srv.requests.load(Ordering::SeqCst), 30);
    assert_eq!(srv.connections.load(Ordering::SeqCst), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_gives_timeouts() {
    let srv = http1_server(Style::Stall).await;
    let r = run_blocking(
        cfg(srv.port)
            .concurrency(3)
            .stop(Stop::Requests(6))
            .timeout(Duration::from_millis(150)),
    )
    .await;
    assert_eq!(r.total, 6);
    assert_eq!(r.responses, 0);
    assert_eq!(
        r.failures
            .iter()
            .find(|(k, _)| *k == FailureKind::Timeout)
            .unwrap()
            .1,
        6
    );
    // A timed-out connection is not reused.
    assert_eq!(r.connections_opened, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port_counts_connect_failures() {
    // A socket bound but not listening: connecting to it is refused, and
    // the port stays taken while it lives. (A listener bound and dropped
    // freed its port, which a server of a test running in parallel could
    // get next and then answer these requests.)
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = held.local_addr().unwrap().port();
    let r = run_blocking(cfg(port).concurrency(2).stop(Stop::Requests(10))).await;
    drop(held);
    assert_eq!(r.total, 10);
    assert_eq!(r.failures[0], (FailureKind::Connect, 10));
    assert!(
        r.failure_messages[0].1.contains("refused"),
        "{:?}",
        r.failure_messages
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_duration_with_warmup() {
    let srv = http1_server(Style::Length).await;
    let r = run_blocking(
        cfg(srv.port)
            .concurrency(2)
            .warmup(Duration::from_millis(200))
            .stop(Stop::Duration(Duration::from_millis(400))),
    )
    .await;
    assert!(
        r.elapsed >= Duration::from_millis(400) && r.elapsed < Duration::from_secs(2),
        "{:?}",
        r.elapsed
    );
    assert!(r.responses > 0);
    // Warm-up requests reached the server but were not counted.
    assert!(srv.requests.load(Ordering::SeqCst) > r.total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_multiplexes_streams_over_few_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let conns = Arc::new(AtomicU64::new(0));
    let streams = Arc::new(AtomicU64::new(0));
    let (c, st) = (conns.clone(), streams.clone());
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let st = st.clone();
            tokio::spawn(async move {
                let Ok(mut h2) = h2::server::handshake(s).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = h2.accept().await {
                    st.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(req.uri().path(), "/x");
                    let resp = http::Response::builder().status(200).body(()).unwrap();
                    let mut send = respond.send_response(resp, false).unwrap();
                    send.send_data(bytes::Bytes::from_static(b"hello h2"), true)
                        .unwrap();
                }
            });
        }
    });
    let r = run_blocking(
        cfg(port)
            .protocol(Protocol::Http2)
            .connections(2)
            .concurrency(16)
            .stop(Stop::Requests(400)),
    )
    .await;
    assert_eq!(r.errors(), 0, "{:?}", r.failure_messages);
    assert_eq!(r.status_counts, vec![(200, 400)]);
    assert_eq!(r.bytes_received, 400 * 8);
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    assert_eq!(streams.load(Ordering::SeqCst), 400);
}
