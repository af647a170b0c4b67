//! Route-cache hits answered by the own HTTP/1.1 driver from their stored
//! bytes, before a request is built (`Dispatch::answer_stored`): real
//! sockets on 127.0.0.1, a Rust consumer in place of JavaScript. They check
//! that the short way is taken for a plain keep-alive `GET` and only then,
//! that its bytes are those the general path writes for the same hit, that
//! it counts requests as the general path does, keeps pipelined answers in
//! order among answers from the consumer, that a route taken away or put
//! back takes effect at once, and that with compression on the short way
//! answers only what compression leaves alone.

#[path = "support/consumer.rs"]
mod consumer;

use consumer::{answer, take};
use httpy_core::{CompressConfig, Reply, RouteExtra, Router, Server, ServerConfig};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Once;
use std::time::Duration;

fn router(cached: bool) -> Router {
    let mut r = Router::new();
    r.insert("GET", "/c/{i}", 0).unwrap();
    if cached {
        r.set_extra(0, RouteExtra::cache(Duration::from_secs(60), &[]).unwrap());
    }
    r.insert("GET", "/k/{i}", 1).unwrap();
    r.set_extra(
        1,
        RouteExtra::cache(Duration::from_secs(60), &["x-k".into()]).unwrap(),
    );
    r
}

fn start() -> Server {
    start_with(None)
}

fn start_with(compression: Option<CompressConfig>) -> Server {
    static ENV: Once = Once::new();
    // Read once per process by the core.
    ENV.call_once(|| std::env::set_var("HTTPY_H1_DRIVER", "own"));
    let config = ServerConfig {
        port: 0,
        threads: 1,
        compression,
        ..ServerConfig::default()
    };
    Server::start(config, router(true), Box::new(consumer::NoWake)).unwrap()
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", server.local_addr().port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads one whole response (head and `content-length` body), as bytes
/// with the `date` value blanked (it changes every second).
fn response(s: &mut TcpStream, with_body: bool) -> String {
    let (head, len) = consumer::read_head(s);
    let mut body = vec![0u8; if with_body { len } else { 0 }];
    s.read_exact(&mut body).unwrap();
    let head: String = head
        .split_inclusive("\r\n")
        .map(|l| {
            if l.starts_with("date: ") {
                "date: *\r\n"
            } else {
                l
            }
        })
        .collect();
    head + &String::from_utf8(body).unwrap()
}

/// Sends `req` and answers it from the consumer (the cache's miss).
fn fill(server: &Server, s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .unwrap();
    let reqs = take(server, 1);
    server.deliver(reqs.into_iter().map(answer).collect());
    response(s, true)
}

#[test]
fn a_hit_is_answered_from_stored_bytes_like_the_general_path() {
    let server = start();
    let mut s = connect(&server);
    let first = fill(&server, &mut s, "/c/1");
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert!(first.ends_with("answer to /c/1"), "{first}");
    let before = server.stats();
    assert_eq!(before.stored_answers, 0);

    // A plain GET: the short way, with the bytes of the answer the
    // consumer gave.
    s.write_all(b"GET /c/1 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut s, true), first);
    let after = server.stats();
    assert_eq!(after.stored_answers, 1);
    assert_eq!(after.requests_total - before.requests_total, 1);
    assert_eq!(after.direct_responses - before.direct_responses, 1);

    // The same hit, with a field that keeps it off the short way
    // (`content-length: 0`): the general path, the same bytes.
    s.write_all(b"GET /c/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut s, true), first);
    let general = server.stats();
    assert_eq!(general.stored_answers, 1, "not the short way");
    assert_eq!(general.direct_responses - after.direct_responses, 1);
    assert!(
        server.take_batch().is_empty(),
        "nothing reached the consumer"
    );
}

#[test]
fn only_plain_keep_alive_gets_take_the_short_way() {
    let server = start();
    let mut s = connect(&server);
    let first = fill(&server, &mut s, "/c/2");
    let stored = || server.stats().stored_answers;

    // HEAD: the general path's hit, no body.
    s.write_all(b"HEAD /c/2 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let head = response(&mut s, false);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.contains("content-length: 14\r\n"));
    assert_eq!(stored(), 0);

    // A cookie bypasses the cache: the consumer answers.
    s.write_all(b"GET /c/2 HTTP/1.1\r\nHost: a\r\nCookie: s=1\r\n\r\n")
        .unwrap();
    let reqs = take(&server, 1);
    assert_eq!(reqs[0].path, "/c/2");
    server.deliver(reqs.into_iter().map(answer).collect());
    response(&mut s, true);
    assert_eq!(stored(), 0);

    // A route keyed by a header is left to the general path.
    let mut k = connect(&server);
    let keyed = fill(&server, &mut k, "/k/1");
    k.write_all(b"GET /k/1 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut k, true), keyed);
    assert_eq!(stored(), 0);

    // A closing request gets its close from the general path.
    s.write_all(b"GET /c/2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let closing = response(&mut s, true);
    assert!(closing.contains("\r\nconnection: close\r\n"), "{closing}");
    assert_eq!(closing.replace("connection: close\r\n", ""), first);
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "closed after it");
    assert_eq!(stored(), 0);
}

#[test]
fn pipelined_hits_and_consumer_answers_keep_their_order() {
    let server = start();
    let mut s = connect(&server);
    let one = fill(&server, &mut s, "/c/3");
    let before = server.stats();
    s.write_all(
        b"GET /c/3 HTTP/1.1\r\nHost: a\r\n\r\nGET /c/3 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /c/4 HTTP/1.1\r\nHost: a\r\n\r\nGET /c/3 HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response(&mut s, true), one);
    assert_eq!(response(&mut s, true), one);
    let reqs = take(&server, 1);
    assert_eq!(reqs[0].path, "/c/4");
    server.deliver(reqs.into_iter().map(answer).collect());
    assert!(response(&mut s, true).ends_with("answer to /c/4"));
    assert_eq!(response(&mut s, true), one);
    let after = server.stats();
    assert_eq!(after.stored_answers - before.stored_answers, 3);
    assert_eq!(after.requests_total - before.requests_total, 4);
}

#[test]
fn a_route_taken_away_or_uncached_is_no_longer_answered_from_the_cache() {
    let server = start();
    let mut s = connect(&server);
    let one = fill(&server, &mut s, "/c/5");
    s.write_all(b"GET /c/5 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut s, true), one);
    assert_eq!(server.stats().stored_answers, 1);

    // The same route without its cache: the consumer answers again.
    server.set_router(router(false));
    s.write_all(b"GET /c/5 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let reqs = take(&server, 1);
    server.deliver(reqs.into_iter().map(answer).collect());
    assert_eq!(response(&mut s, true), one);

    // No route at all: a 404.
    let mut r = Router::new();
    r.insert("GET", "/other", 0).unwrap();
    server.set_router(r);
    s.write_all(b"GET /c/5 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert!(response(&mut s, true).starts_with("HTTP/1.1 404 "));
    assert_eq!(server.stats().stored_answers, 1);

    // Put back: the entry stored before answers again, the short way.
    server.set_router(router(true));
    s.write_all(b"GET /c/5 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut s, true), one);
    assert_eq!(server.stats().stored_answers, 2);
}

#[test]
fn with_compression_on_only_answers_compression_leaves_alone_take_the_short_way() {
    let server = start_with(Some(CompressConfig::default()));
    let mut s = connect(&server);
    // Short (below the 1024-byte threshold): compression changes nothing,
    // for any request, so the short way gives the general path's bytes.
    let first = fill(&server, &mut s, "/c/small");
    assert!(!first.contains("vary:"), "{first}");
    s.write_all(b"GET /c/small HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut s, true), first);
    assert_eq!(server.stats().stored_answers, 1);

    // Large and compressible: the general path adds `Vary`, or compresses.
    let text = "compressible text ".repeat(300);
    s.write_all(b"GET /c/big HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let reqs = take(&server, 1);
    let replies = reqs
        .into_iter()
        .map(|req| {
            let body = bytes::Bytes::from(text.clone());
            let reply = Reply::from_parts(200, "content-type\ntext/plain", body).unwrap();
            (req.responder, reply)
        })
        .collect();
    server.deliver(replies);
    let big = response(&mut s, true);
    assert!(big.contains("vary: accept-encoding\r\n"), "{big}");
    assert!(big.ends_with(&text));
    s.write_all(b"GET /c/big HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut s, true), big, "identity hit: as the miss");
    s.write_all(b"GET /c/big HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n")
        .unwrap();
    let (head, len) = consumer::read_head(&mut s);
    assert!(head.contains("content-encoding: gzip\r\n"), "{head}");
    let mut z = vec![0u8; len];
    s.read_exact(&mut z).unwrap();
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&z[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(plain, text);
    assert_eq!(server.stats().stored_answers, 1, "never the short way");
}
