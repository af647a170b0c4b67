//! Answers written from the embedder's thread straight into the socket
//! (`HTTPY_DIRECT_WRITE=all` with the own HTTP/1.1 driver): real sockets on
//! 127.0.0.1, a Rust consumer in place of JavaScript. They check that the
//! path is taken, that keep-alive, pipelining and answers given out of
//! order keep every answer on its own connection and in order, that a
//! client that resets before its answer, half-closes before it or closes
//! after it leaves nothing pending or open, that a closing request is the
//! driver's to answer, and that a graceful close does not wait for a
//! request whose answer was written directly.

#[path = "support/consumer.rs"]
mod consumer;

use consumer::{answer, take};
use httpy_core::Server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Once;
use std::time::{Duration, Instant};

fn start() -> Server {
    static ENV: Once = Once::new();
    // Read once per process by the core; every test here wants both.
    ENV.call_once(|| {
        std::env::set_var("HTTPY_H1_DRIVER", "own");
        std::env::set_var("HTTPY_DIRECT_WRITE", "all");
    });
    consumer::start()
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", server.local_addr().port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads one response with a `content-length` body; returns the body.
fn response(s: &mut TcpStream) -> String {
    let (head, len) = consumer::read_head(s);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("content-length: "),
        "a content-length: {head}"
    );
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

/// Sends `GET path` on `s`, lets the consumer answer it and returns the
/// answer's body.
fn ask(server: &Server, s: &mut TcpStream, path: &str) -> String {
    write!(s, "GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    deliver_all(server, 1);
    response(s)
}

/// Takes `n` requests and has the consumer answer them all.
fn deliver_all(server: &Server, n: usize) {
    let reqs = take(server, n);
    server.deliver(reqs.into_iter().map(answer).collect());
}

/// A connection whose request `/n/1` was answered directly.
fn answered_once(server: &Server) -> TcpStream {
    let mut s = connect(server);
    assert_eq!(ask(server, &mut s, "/n/1"), "answer to /n/1");
    assert_eq!(server.stats().direct_writes, 1);
    s
}

/// Waits (5 s at most) until `f` holds.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn keep_alive_requests_are_answered_from_the_consumer_thread() {
    let server = start();
    let mut s = connect(&server);
    for i in 0..3 {
        let path = format!("/n/{i}");
        assert_eq!(ask(&server, &mut s, &path), format!("answer to {path}"));
    }
    let st = server.stats();
    assert_eq!(st.direct_writes, 3, "every answer took the direct path");
    assert_eq!(st.pending, 0);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = start();
    let mut s = connect(&server);
    s.write_all(b"GET /n/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /n/2 HTTP/1.1\r\nHost: a\r\n\r\nGET /n/3 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    // One request of a connection is with the consumer at a time.
    for _ in 0..3 {
        deliver_all(&server, 1);
    }
    for i in 1..=3 {
        assert_eq!(response(&mut s), format!("answer to /n/{i}"));
    }
    // Answers to pipelined requests are coalesced by the driver: the ones
    // before wait in its buffer, so none is written from outside.
    assert_eq!(server.stats().direct_writes, 0);
    // The next request, alone, is.
    assert_eq!(ask(&server, &mut s, "/n/4"), "answer to /n/4");
    assert_eq!(server.stats().direct_writes, 1);
    eventually("nothing pending", || server.stats().pending == 0);
}

#[test]
fn answers_given_out_of_order_reach_their_own_connections() {
    let server = start();
    let mut conns: Vec<TcpStream> = (0..24)
        .map(|i| {
            let mut s = connect(&server);
            write!(s, "GET /n/{i} HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
            s
        })
        .collect();
    let mut reqs = take(&server, conns.len());
    reqs.reverse();
    let second = reqs.split_off(10);
    server.deliver(second.into_iter().map(answer).collect());
    server.deliver(reqs.into_iter().map(answer).collect());
    for (i, s) in conns.iter_mut().enumerate() {
        assert_eq!(response(s), format!("answer to /n/{i}"));
    }
    assert_eq!(server.stats().direct_writes, 24);
}

/// Closes `s` with a reset (SO_LINGER 0) rather than a FIN.
fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a `linger` of the right size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    drop(s);
}

#[test]
fn a_client_that_resets_before_its_answer_leaves_nothing_behind() {
    let server = start();
    let mut s = connect(&server);
    s.write_all(b"GET /n/gone HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let reqs = take(&server, 1);
    reset(s);
    eventually("the connection closes", || {
        server.stats().connections_open == 0
    });
    server.deliver(reqs.into_iter().map(answer).collect());
    assert_eq!(
        server.stats().direct_writes,
        0,
        "nothing written to a closed connection"
    );
    eventually("nothing pending", || server.stats().pending == 0);
    // The server keeps serving.
    let mut s = connect(&server);
    assert_eq!(ask(&server, &mut s, "/n/next"), "answer to /n/next");
}

#[test]
fn a_client_that_half_closes_still_gets_its_answer_then_the_connection_ends() {
    let server = start();
    let mut s = connect(&server);
    s.write_all(b"GET /n/half HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let reqs = take(&server, 1);
    // The EOF reached the driver while the request was with the consumer:
    // the direct write must wake it, so that it closes.
    std::thread::sleep(Duration::from_millis(20));
    server.deliver(reqs.into_iter().map(answer).collect());
    assert_eq!(response(&mut s), "answer to /n/half");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    eventually("the connection closes", || {
        server.stats().connections_open == 0
    });
    assert_eq!(server.stats().direct_writes, 1);
}

#[test]
fn a_client_closing_after_a_direct_answer_closes_the_connection() {
    let server = start();
    let mut s = answered_once(&server);
    // The connection's task was not woken by the answer; the client's EOF
    // wakes it, and it ends.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the answer: {rest:?}");
    eventually("the connection closes", || {
        server.stats().connections_open == 0
    });
    assert_eq!(server.stats().pending, 0);
}

#[test]
fn a_connection_is_parked_after_each_direct_answer() {
    // Regression: after a first park, the driver's clock pointed at the
    // idle deadline, and a connection answered directly was not parked
    // again (nor timed out) until then.
    let server = start();
    let mut s = answered_once(&server);
    eventually("parked after the first answer", || {
        server.stats().connections_idle == 1
    });
    assert_eq!(ask(&server, &mut s, "/n/2"), "answer to /n/2");
    assert_eq!(server.stats().direct_writes, 2);
    let answered = Instant::now();
    eventually("parked after the second answer", || {
        server.stats().connections_idle == 1
    });
    assert!(
        answered.elapsed() < Duration::from_secs(1),
        "parked {:?} after the answer",
        answered.elapsed()
    );
}

#[test]
fn a_closing_request_is_answered_by_the_driver_then_closed() {
    let server = start();
    let mut s = connect(&server);
    s.write_all(b"GET /n/last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    deliver_all(&server, 1);
    assert_eq!(response(&mut s), "answer to /n/last");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert_eq!(
        server.stats().direct_writes,
        0,
        "a closing answer is the driver's"
    );
}

#[test]
fn a_graceful_close_does_not_wait_for_an_answer_written_directly() {
    let server = start();
    let mut s = answered_once(&server);
    let started = Instant::now();
    server.close(Duration::from_secs(10));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the close took {:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
}
