//! A Rust consumer in place of JavaScript, shared by the tests that drive a
//! real server through `take_batch` and `deliver` (`tests/deliver.rs`,
//! `tests/direct.rs`): a waker that does nothing (the tests poll), a
//! bounded wait for `n` requests, and an answer that names the request's
//! path so that a swapped answer shows.

#![allow(dead_code)] // each including crate uses its own part

use httpy_core::{Incoming, Reply, Responder, Router, Server, ServerConfig, Waker};
use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub struct NoWake;

impl Waker for NoWake {
    fn wake(&self) {}
    fn closed(&self) {}
}

/// A server on 127.0.0.1 with one I/O thread and the route `/n/{i}`.
pub fn start() -> Server {
    let mut router = Router::new();
    router.insert("GET", "/n/{i}", 0).unwrap();
    let config = ServerConfig {
        port: 0,
        threads: 1,
        ..ServerConfig::default()
    };
    Server::start(config, router, Box::new(NoWake)).unwrap()
}

/// Takes batches until `n` requests have arrived (5 s at most).
pub fn take(server: &Server, n: usize) -> Vec<Incoming> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} requests arrived",
            got.len()
        );
        let batch = server.take_batch();
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        got.extend(batch);
    }
    got
}

/// `200 answer to PATH`, as text.
pub fn answer(req: Incoming) -> (Responder, Reply) {
    let body = format!("answer to {}", req.path);
    let reply = Reply::from_parts(200, "content-type\ntext/plain", body.into()).unwrap();
    (req.responder, reply)
}

/// Reads a response head, byte by byte (nothing of the body is taken), and
/// the length its `content-length` announces (0 without one).
pub fn read_head(s: &mut TcpStream) -> (String, usize) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "the head ends early");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.parse().unwrap());
    (head, len)
}
