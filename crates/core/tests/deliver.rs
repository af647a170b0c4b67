//! `Server::deliver` hands a batch of answers to the I/O threads as one
//! task instead of one cross-thread wake-up per answer. These tests check
//! that nothing is lost or swapped on the way: real sockets on 127.0.0.1,
//! each request's answer names its own path, batches are delivered in an
//! order unlike the requests', a batch of one takes the direct path, an
//! answer to a client that has gone is dropped without harm, and on
//! keep-alive connections the delivering task writes the answers into the
//! sockets itself (docs/performance.md §17) without mixing them up, and
//! hands the written answers' header maps back emptied, reused rather than
//! piling up (§17.3).

#[path = "support/consumer.rs"]
mod consumer;

use consumer::{answer, read_head, start, take};
use httpy_core::{HeaderMap, ReplyBatch, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Opens a connection per path and sends `GET path` on each.
fn send_all(server: &Server, paths: &[String]) -> Vec<TcpStream> {
    paths
        .iter()
        .map(|p| {
            let mut s = TcpStream::connect(("127.0.0.1", server.local_addr().port())).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            write!(
                s,
                "GET {p} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            s
        })
        .collect()
}

/// Opens `n` keep-alive connections.
fn connect(server: &Server, n: usize) -> Vec<TcpStream> {
    let port = server.local_addr().port();
    (0..n)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        })
        .collect()
}

fn read_body(mut s: TcpStream) -> String {
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

#[test]
fn a_batch_reaches_each_request_once_and_unmixed() {
    let server = start();
    let paths: Vec<String> = (0..48).map(|i| format!("/n/{i}")).collect();
    let conns = send_all(&server, &paths);
    let mut reqs = take(&server, paths.len());
    // Answer in an order unlike the requests': reversed, in two batches.
    reqs.reverse();
    let second = reqs.split_off(20);
    server.deliver(reqs.into_iter().map(answer).collect());
    server.deliver(second.into_iter().map(answer).collect());
    for (conn, path) in conns.into_iter().zip(&paths) {
        assert_eq!(read_body(conn), format!("answer to {path}"));
    }
    assert_eq!(server.stats().pending, 0);
}

#[test]
fn a_batch_of_one_and_an_empty_batch() {
    let server = start();
    let conns = send_all(&server, &["/n/one".to_string()]);
    server.deliver(Vec::new());
    let reqs = take(&server, 1);
    server.deliver(reqs.into_iter().map(answer).collect());
    for conn in conns {
        assert_eq!(read_body(conn), "answer to /n/one");
    }
}

#[test]
fn answers_to_clients_that_left_are_dropped() {
    let server = start();
    let paths: Vec<String> = (0..8).map(|i| format!("/n/{i}")).collect();
    let mut conns = send_all(&server, &paths);
    let mut reqs = take(&server, paths.len());
    // Half the clients go away before their answers are delivered.
    conns.truncate(4);
    std::thread::sleep(Duration::from_millis(50));
    reqs.sort_by_key(|r| r.path.clone());
    server.deliver(reqs.into_iter().map(answer).collect());
    for (conn, path) in conns.into_iter().zip(&paths) {
        assert_eq!(read_body(conn), format!("answer to {path}"));
    }
    // The server still serves afterwards.
    let again = send_all(&server, &["/n/again".to_string()]);
    let reqs = take(&server, 1);
    server.deliver(reqs.into_iter().map(answer).collect());
    assert_eq!(
        read_body(again.into_iter().next().unwrap()),
        "answer to /n/again"
    );
}

#[test]
fn keep_alive_answers_are_written_by_the_delivering_task_in_place() {
    let server = start();
    let mut conns = connect(&server, 32);
    let before = server.stats().direct_writes;
    // Two rounds on the same connections: the task of each finds its
    // request answered when the next one arrives, and goes on.
    for round in 0..2 {
        for (i, s) in conns.iter_mut().enumerate() {
            write!(s, "GET /n/{round}-{i} HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        }
        let mut reqs = take(&server, conns.len());
        reqs.reverse();
        server.deliver(reqs.into_iter().map(answer).collect());
        for (i, s) in conns.iter_mut().enumerate() {
            let (head, len) = read_head(s);
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert!(!head.contains("connection: close"), "{head}");
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).unwrap();
            assert_eq!(body, format!("answer to /n/{round}-{i}").as_bytes());
        }
    }
    // Every answer above reached its own client. The delivering task counts
    // a write and drops the request's responder (which ends its `pending`)
    // just after the `send`, so a client can read its answer a moment before
    // the counts move: wait for them (bounded) instead of racing them.
    let settled = |s: &Server| s.stats().direct_writes - before == 64 && s.stats().pending == 0;
    for _ in 0..200 {
        if settled(&server) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.stats().direct_writes - before, 64);
    assert_eq!(server.stats().pending, 0);
}

/// Appends one reply in `ReplyBatch`'s layout.
fn put(out: &mut Vec<u8>, status: u16, headers: &str, body: &str) {
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    out.extend_from_slice(headers.as_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body.as_bytes());
}

#[test]
fn written_answers_hand_their_header_maps_back_for_reuse() {
    let server = start();
    let mut conns = connect(&server, 16);
    // What the binding keeps between batches.
    let mut maps: Vec<HeaderMap> = Vec::new();
    for round in 0..20 {
        for (i, s) in conns.iter_mut().enumerate() {
            write!(s, "GET /n/{round}-{i} HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        }
        let reqs = take(&server, conns.len());
        // The first round's answers carry a field the later ones must not
        // inherit from a reused map.
        let extra = if round == 0 { "\nx-first\nyes" } else { "" };
        let mut buf = Vec::new();
        for r in &reqs {
            put(
                &mut buf,
                200,
                &format!("content-type\ntext/plain{extra}"),
                &format!("answer to {}", r.path),
            );
        }
        if round > 0 {
            // Every answer of the round before was written and its map
            // comes back (the task gives them after its last write, so
            // the clients may have read their answers a moment before).
            wait_for_maps(&server, &mut maps, conns.len());
            assert_eq!(maps.len(), conns.len(), "round {round}");
        }
        let mut batch = ReplyBatch::new(&buf).with_maps(std::mem::take(&mut maps));
        let replies: Vec<_> = batch.by_ref().map(|(_, r)| r.unwrap()).collect();
        maps = batch.into_maps();
        server.deliver(reqs.into_iter().map(|r| r.responder).zip(replies).collect());
        for (i, s) in conns.iter_mut().enumerate() {
            let (head, len) = read_head(s);
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert_eq!(
                head.contains("x-first"),
                round == 0,
                "round {round}: {head}"
            );
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).unwrap();
            assert_eq!(body, format!("answer to /n/{round}-{i}").as_bytes());
        }
    }
    // Twenty rounds of sixteen answers went around in the same sixteen
    // maps: none were added after the first round.
    wait_for_maps(&server, &mut maps, conns.len());
    assert_eq!(maps.len(), conns.len());
}

/// Takes the spare maps until `n` are held (1 s at most).
fn wait_for_maps(server: &Server, maps: &mut Vec<HeaderMap>, n: usize) {
    for _ in 0..200 {
        server.spare_maps(maps);
        if maps.len() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
