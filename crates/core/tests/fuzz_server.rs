//! Fuzz targets that go through a running server: HTTP/1.1 request heads,
//! chunked request bodies, static-file URLs and WebSocket frames are
//! written to a real socket on 127.0.0.1, and what comes back is read by
//! independent parsers (httparse for HTTP/1.1, tungstenite's client for
//! WebSocket frames). Parsing in the server is hyper's and tungstenite's;
//! what is checked here is the whole path a hostile byte takes: no hang,
//! no 500, no panic, a well-formed answer, no file outside a static root,
//! and a server that still answers and holds no connection afterwards.
//!
//! The embedder is a thread in this file: `/echo` answers 200 with the
//! request body, `/ws` accepts WebSocket upgrades and echoes each message.
//! Seed corpora are in `tests/corpus/`, mutations and the case count
//! (`HTTPY_FUZZ_CASES`) in `tests/support/fuzz.rs`.

#[path = "support/fuzz.rs"]
mod fuzz;

use bytes::Bytes;
use httpy_core::{
    Reply, RouteExtra, Router, Server, ServerConfig, StaticMount, Waker, WsEventKind, WsFrame,
    WsOptions,
};
use parking_lot::{Condvar, Mutex};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode, Message};

/// A case that takes longer than this is a hang.
const CASE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of the file outside the static root; never to be served.
const SECRET: &[u8] = b"TOP-SECRET-not-under-the-root";

#[derive(Default)]
struct Signal {
    ready: Mutex<bool>,
    cv: Condvar,
}

struct Wake(Arc<Signal>);

impl Waker for Wake {
    fn wake(&self) {
        *self.0.ready.lock() = true;
        self.0.cv.notify_one();
    }
    fn closed(&self) {
        self.wake();
    }
}

/// A server with the echo embedder running on its own thread.
struct Harness {
    server: Arc<Server>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn start() -> Self {
        Self::start_with(ServerConfig::default())
    }

    fn start_with(config: ServerConfig) -> Self {
        // root/ holds the mount; secret.txt beside it is outside, reachable
        // only by escaping (a traversal, or the symlink root/link.txt).
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a.txt"), b"public file").unwrap();
        std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt")).unwrap();

        let mut router = Router::new();
        router.insert("GET", "/echo", 0).unwrap();
        router.insert("POST", "/echo", 0).unwrap();
        router.insert("WEBSOCKET", "/ws", 1).unwrap();
        router.insert("GET", "/static/{path:path}", 2).unwrap();
        router.set_extra(2, RouteExtra::Static(StaticMount::new(&root).unwrap()));
        let config = ServerConfig {
            port: 0,
            threads: 2,
            ..config
        };
        let signal = Arc::new(Signal::default());
        let server =
            Arc::new(Server::start(config, router, Box::new(Wake(signal.clone()))).unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (server, stop) = (server.clone(), stop.clone());
            std::thread::spawn(move || embedder(&server, &signal, &stop))
        };
        Self {
            server,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }

    fn port(&self) -> u16 {
        self.server.local_addr().port()
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port())).unwrap();
        s.set_read_timeout(Some(CASE_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(CASE_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Writes `input` on a new connection, half-closes it and reads until
    /// the server closes; `Err` when that takes longer than [`CASE_TIMEOUT`].
    fn exchange(&self, input: &[u8]) -> Result<Vec<u8>, TestCaseError> {
        let mut s = self.connect();
        // The server may close before reading everything (an error answer
        // ends the connection); a failed write is then expected.
        let _ = s.write_all(input);
        let _ = s.shutdown(Shutdown::Write);
        read_until_closed(&mut s)
    }

    /// A plain request on a new connection still gets its 200.
    fn still_serves(&self) -> Result<(), TestCaseError> {
        let out =
            self.exchange(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nping")?;
        let res = responses(&out)?;
        prop_assert_eq!(res.len(), 1, "liveness request: {}", fuzz::show(&out));
        prop_assert_eq!(res[0].status, 200);
        prop_assert_eq!(&res[0].body, b"ping");
        Ok(())
    }

    /// After a target: every connection the cases opened is released.
    fn assert_nothing_held(&self) {
        let deadline = Instant::now() + CASE_TIMEOUT;
        loop {
            let stats = self.server.stats();
            if stats.connections_open == 0 && self.server.ws_connections() == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "connections still open: {} (WebSocket {})",
                stats.connections_open,
                self.server.ws_connections()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.close(Duration::from_secs(1));
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The embedder's loop: answers requests and echoes WebSocket messages.
fn embedder(server: &Server, signal: &Signal, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        {
            let mut ready = signal.ready.lock();
            if !*ready {
                signal.cv.wait_for(&mut ready, Duration::from_millis(20));
            }
            *ready = false;
        }
        loop {
            let batch = server.take_batch();
            if batch.is_empty() {
                break;
            }
            for req in batch {
                match req.route {
                    Some(0) => {
                        let reply = Reply::from_parts(200, "", req.body.clone()).unwrap();
                        req.responder.send(reply);
                    }
                    Some(1) => {
                        let reply = Reply::from_parts(101, "", Bytes::new()).unwrap();
                        let opts = WsOptions {
                            max_message_size: 64 * 1024,
                            ..Default::default()
                        };
                        server.ws_accept(req.id, req.responder, reply, opts);
                    }
                    _ => {
                        let reply = Reply::from_parts(404, "", Bytes::new()).unwrap();
                        req.responder.send(reply);
                    }
                }
            }
        }
        for ev in server.take_ws_events().iter() {
            let frame = match ev.kind {
                WsEventKind::Text => WsFrame::Text(String::from_utf8(ev.data.to_vec()).unwrap()),
                WsEventKind::Binary => WsFrame::Binary(ev.data.clone()),
                _ => continue,
            };
            server.ws_send(ev.id, frame);
        }
    }
}

fn read_until_closed(s: &mut TcpStream) -> Result<Vec<u8>, TestCaseError> {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A reset after the answer is a close (the server dropped
            // unread input).
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(out),
            Err(e) => {
                return Err(TestCaseError::fail(format!(
                    "no close after {:?} ({e}); got {}",
                    started.elapsed(),
                    fuzz::show(&out)
                )))
            }
        }
        if started.elapsed() > CASE_TIMEOUT {
            return Err(TestCaseError::fail("the server kept sending"));
        }
    }
}

struct Res {
    status: u16,
    body: Vec<u8>,
}

/// Splits what the server sent into responses, with httparse as the
/// independent judge of well-formedness. Stops after a `101` (the rest is
/// another protocol).
fn responses(mut out: &[u8]) -> Result<Vec<Res>, TestCaseError> {
    let mut list = Vec::new();
    while !out.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut headers);
        let head = match res.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            other => {
                return Err(TestCaseError::fail(format!(
                    "malformed response ({other:?}): {}",
                    fuzz::show(out)
                )))
            }
        };
        let status = res.code.unwrap();
        let length = res
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| {
                std::str::from_utf8(h.value)
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            });
        prop_assert!(
            !res.headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding")),
            "unexpected chunked answer"
        );
        out = &out[head..];
        if status == 101 {
            list.push(Res {
                status,
                body: Vec::new(),
            });
            break;
        }
        let n = match (status, length) {
            (100..=199 | 204 | 304, _) => 0,
            // The answer to a HEAD (a mutant may turn a method into one):
            // a length, then the next response or the end.
            (_, Some(n)) if n > out.len() && (out.is_empty() || out.starts_with(b"HTTP/1.")) => 0,
            (_, Some(n)) => n,
            (_, None) => out.len(),
        };
        prop_assert!(n <= out.len(), "body cut short: {}", fuzz::show(out));
        list.push(Res {
            status,
            body: out[..n].to_vec(),
        });
        out = &out[n..];
    }
    Ok(list)
}

/// What any input, valid or not, must get: a close in time, well-formed
/// responses, no 5xx, nothing from outside the static root, and a server
/// that still answers the next client.
fn check_any(h: &Harness, input: &[u8]) -> Result<Vec<Res>, TestCaseError> {
    let out = h.exchange(input)?;
    let list = responses(&out)?;
    for r in &list {
        // 500 would be an answer the embedder never gave (a panic or a
        // lost responder); 501, 503 and 505 are answers to the input.
        prop_assert!(
            (100..500).contains(&r.status) || matches!(r.status, 501 | 503 | 505),
            "status {} for {}",
            r.status,
            fuzz::show(input)
        );
    }
    prop_assert!(
        !out.windows(SECRET.len()).any(|w| w == SECRET),
        "a file outside the static root was served for {}",
        fuzz::show(input)
    );
    h.still_serves()?;
    Ok(list)
}

#[test]
fn http1_request_heads() {
    let h = Harness::start();
    fuzz::run("h1_head", |input| check_any(&h, input).map(drop));
    h.assert_nothing_held();
}

#[test]
fn http1_chunked_bodies() {
    let h = Harness::start();
    fuzz::run("chunked", |input| check_any(&h, input).map(drop));
    h.assert_nothing_held();
}

/// How one well-formed chunked body is spelled.
#[derive(Debug, Clone)]
struct Chunked {
    chunks: Vec<Vec<u8>>,
    upper_hex: bool,
    zeros: usize,
    extension: bool,
    trailers: bool,
    splits: Vec<proptest::sample::Index>,
}

fn chunked() -> impl Strategy<Value = Chunked> {
    (
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..600), 0..6),
        any::<bool>(),
        0usize..3,
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
    )
        .prop_map(
            |(chunks, upper_hex, zeros, extension, trailers, splits)| Chunked {
                chunks,
                upper_hex,
                zeros,
                extension,
                trailers,
                splits,
            },
        )
}

impl Chunked {
    fn encode(&self) -> Vec<u8> {
        let mut out =
            b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let size = |n: usize| {
            let hex = if self.upper_hex {
                format!("{n:X}")
            } else {
                format!("{n:x}")
            };
            format!("{}{hex}", "0".repeat(self.zeros))
        };
        for c in self.chunks.iter().map(Vec::as_slice).chain([&[][..]]) {
            out.extend_from_slice(size(c.len()).as_bytes());
            if self.extension {
                out.extend_from_slice(b";ext=\"v\"");
            }
            out.extend_from_slice(b"\r\n");
            if !c.is_empty() {
                out.extend_from_slice(c);
                out.extend_from_slice(b"\r\n");
            }
        }
        if self.trailers {
            out.extend_from_slice(b"X-Checksum: 1\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

#[test]
fn http1_chunked_bodies_arrive_whole() {
    let h = Harness::start();
    fuzz::run_strategy("chunked model", chunked(), |spec| {
        let input = spec.encode();
        // Written in pieces, so chunk boundaries fall anywhere in reads.
        let mut cuts: Vec<usize> = spec.splits.iter().map(|i| i.index(input.len())).collect();
        cuts.sort_unstable();
        let mut s = h.connect();
        let mut at = 0;
        for cut in cuts.into_iter().chain([input.len()]) {
            s.write_all(&input[at..cut]).unwrap();
            s.flush().unwrap();
            at = cut;
        }
        s.shutdown(Shutdown::Write).unwrap();
        let out = read_until_closed(&mut s)?;
        let list = responses(&out)?;
        prop_assert_eq!(list.len(), 1);
        prop_assert_eq!(list[0].status, 200);
        prop_assert_eq!(&list[0].body, &spec.chunks.concat());
        Ok(())
    });
    h.assert_nothing_held();
}

/// A WebSocket client after a real handshake, on a blocking socket.
fn ws_client(h: &Harness) -> tungstenite::WebSocket<TcpStream> {
    let url = format!("ws://127.0.0.1:{}/ws", h.port());
    let (ws, res) = tungstenite::client::client(url, h.connect()).unwrap();
    assert_eq!(res.status(), 101);
    ws
}

/// Close codes a server may send of its own for bad input (RFC 6455
/// 7.4.1); 1011 (internal error) would be a fault of the server.
fn acceptable_close(code: CloseCode) -> bool {
    matches!(
        u16::from(code),
        1000 | 1001 | 1002 | 1003 | 1007 | 1008 | 1009
    )
}

/// The close codes of the close frames in client bytes (tungstenite's
/// header parser, our unmasking): a server may echo them (RFC 6455 5.5.1).
fn client_close_codes(input: &[u8]) -> Vec<u16> {
    use tungstenite::protocol::frame::{coding::OpCode, FrameHeader};
    let mut codes = Vec::new();
    let mut cursor = std::io::Cursor::new(input);
    while let Ok(Some((header, len))) = FrameHeader::parse(&mut cursor) {
        let at = cursor.position() as usize;
        let Some(payload) = input.get(at..at.saturating_add(len as usize)) else {
            break;
        };
        if header.opcode == OpCode::Control(tungstenite::protocol::frame::coding::Control::Close)
            && payload.len() >= 2
        {
            let mask = header.mask.unwrap_or_default();
            codes.push(u16::from_be_bytes([
                payload[0] ^ mask[0],
                payload[1] ^ mask[1],
            ]));
        }
        cursor.set_position((at + payload.len()) as u64);
    }
    codes
}

/// Reads until the server ends the connection; returns the data messages
/// and the close code, if a close frame came. Protocol errors the client
/// finds in the server's frames are failures.
fn ws_drain(
    ws: &mut tungstenite::WebSocket<TcpStream>,
) -> Result<(Vec<Message>, Option<CloseCode>), TestCaseError> {
    let started = Instant::now();
    let (mut data, mut close) = (Vec::new(), None);
    loop {
        prop_assert!(started.elapsed() < CASE_TIMEOUT, "the server kept sending");
        match ws.read() {
            Ok(Message::Close(frame)) => {
                close = Some(frame.map_or(CloseCode::Status, |f| f.code));
            }
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => data.push(m),
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Ok((data, close))
            }
            Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => return Ok((data, close)),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                return Ok((data, close))
            }
            Err(e) => return Err(TestCaseError::fail(format!("reading the server: {e}"))),
        }
    }
}

#[test]
fn websocket_frames() {
    let h = Harness::start();
    fuzz::run("ws_frames", |input| {
        let mut ws = ws_client(&h);
        let _ = ws.get_mut().write_all(input);
        let _ = ws.get_mut().shutdown(Shutdown::Write);
        let (_, close) = ws_drain(&mut ws)?;
        if let Some(code) = close {
            prop_assert!(
                acceptable_close(code)
                    || code == CloseCode::Status
                    || client_close_codes(input).contains(&u16::from(code)),
                "close {code:?} for {}",
                fuzz::show(input)
            );
        }
        h.still_serves()
    });
    h.assert_nothing_held();
}

/// A client frame: FIN, opcode, masked payload (RFC 6455 5.2).
fn frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![u8::from(fin) << 7 | opcode];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

#[test]
fn websocket_messages_echo_whole() {
    let h = Harness::start();
    // Messages as (text?, payload, fragment count, ping between fragments?).
    let message = (
        any::<bool>(),
        prop_oneof![
            ".{0,200}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..70_000)
        ],
        1usize..4,
        any::<bool>(),
    );
    let strategy = (proptest::collection::vec(message, 1..5), any::<[u8; 4]>());
    fuzz::run_strategy("ws model", strategy, |(messages, mask)| {
        let mut ws = ws_client(&h);
        for (text, payload, parts, ping) in &messages {
            let text = *text && std::str::from_utf8(payload).is_ok();
            let size = payload.len().div_ceil(*parts).max(1);
            let pieces: Vec<&[u8]> = if payload.is_empty() {
                vec![&[]]
            } else {
                payload.chunks(size).collect()
            };
            let mut input = Vec::new();
            for (i, piece) in pieces.iter().enumerate() {
                let opcode = match (i, text) {
                    (0, true) => 1,
                    (0, false) => 2,
                    _ => 0,
                };
                input.extend(frame(i + 1 == pieces.len(), opcode, piece, mask));
                if *ping && i + 1 < pieces.len() {
                    input.extend(frame(true, 9, b"ping", mask));
                }
            }
            ws.get_mut().write_all(&input).unwrap();
            // Above the route's limit the connection closes with 1009.
            if payload.len() > 64 * 1024 {
                let (got, close) = ws_drain(&mut ws)?;
                prop_assert!(got.is_empty(), "{} echoes of a message too big", got.len());
                prop_assert_eq!(close, Some(CloseCode::Size));
                return Ok(());
            }
            let echo = loop {
                match ws.read() {
                    Ok(m @ (Message::Text(_) | Message::Binary(_))) => break m,
                    Ok(Message::Close(f)) => prop_assert!(false, "closed early: {f:?}"),
                    Ok(_) => {}
                    Err(e) => prop_assert!(false, "reading the echo: {e}"),
                }
            };
            let same = match &echo {
                Message::Text(t) => text && t.as_bytes() == payload.as_slice(),
                Message::Binary(b) => !text && b.as_ref() == payload.as_slice(),
                _ => false,
            };
            prop_assert!(
                same,
                "echo of {} bytes differs: {} bytes",
                payload.len(),
                echo.len()
            );
        }
        ws.get_mut()
            .write_all(&frame(true, 8, &1000u16.to_be_bytes(), mask))
            .unwrap();
        let (got, close) = ws_drain(&mut ws)?;
        prop_assert!(got.is_empty(), "{} unexpected messages", got.len());
        prop_assert_eq!(close, Some(CloseCode::Normal));
        Ok(())
    });
    h.assert_nothing_held();
}

/// Regression (found by the record target): with `maxHeaderSize` above
/// 64 KiB a method longer than the record's u16 field reached the handler
/// cut short; it is now a 501 before it is queued.
#[test]
fn a_method_too_long_for_the_record_is_501() {
    let h = Harness::start_with(ServerConfig {
        max_header_size: 1024 * 1024,
        js_handles_misses: true,
        ..Default::default()
    });
    let method = "M".repeat(70_000);
    let out = h
        .exchange(format!("{method} /echo HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .unwrap();
    let list = responses(&out).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status, 501);
    // The longest method that fits still reaches the embedder (a miss: 404).
    let method = "M".repeat(65_535);
    let out = h
        .exchange(format!("{method} /echo HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .unwrap();
    assert_eq!(responses(&out).unwrap()[0].status, 404);
    h.still_serves().unwrap();
}
