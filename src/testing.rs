//! Test and benchmark hooks: fault injection on the JS thread, the floors
//! of the two N-API crossings, the WebSocket compressor's count of
//! deflated messages, and the request record fixture.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use std::io::Write as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use httpy_core::{Bytes, Reply, Router, Server, ServerConfig};

use crate::convert::{self, core_error, event_fn, invalid};

/// Panics inside a `catch_unwind` binding when fault injection is armed;
/// otherwise throws `ERR_HTTPY_NOT_SUPPORTED`. Proves that a Rust panic
/// inside a binding call becomes a JS exception instead of aborting Node.
///
/// Inert unless `HTTPY_TEST_PANIC_PATH` is set (the same switch that arms the
/// engine's panic route, see `httpy_core::Faults`).
///
/// ```js
/// // HTTPY_TEST_PANIC_PATH=/__panic node app.js
/// try { native.injectPanic() } catch (e) { /* a JS Error, the process lives */ }
/// ```
#[napi(catch_unwind)]
pub fn inject_panic() -> Result<()> {
    if !httpy_core::Faults::from_env().armed() {
        return Err(Error::new(
            Status::GenericFailure,
            format!(
                "ERR_HTTPY_NOT_SUPPORTED: fault injection is off (set {})",
                httpy_core::PANIC_PATH_ENV
            ),
        ));
    }
    panic!("injected panic in a binding call");
}

/// A no-op native call: the floor of any JS -> Rust crossing.
#[napi]
pub fn noop() {}

/// Wakes the JS thread from a Rust thread once: the floor of the
/// Rust -> JS hand-off that every request batch pays.
#[napi(catch_unwind)]
pub fn wake_once(callback: Function<u32, ()>) -> Result<()> {
    let tsfn = event_fn(callback)?;
    std::thread::spawn(move || {
        tsfn.call(0, ThreadsafeFunctionCallMode::NonBlocking);
    });
    Ok(())
}

/// Messages the WebSocket compressor has deflated in this process, every
/// route and both modes (`httpy_core::deflated_messages`): a publish to N
/// subscribers adds 1 with the shared compressor (`compression: 'shared'`,
/// one I/O thread), N with dedicated ones. For tests and benchmarks.
#[napi]
pub fn ws_deflate_count() -> f64 {
    httpy_core::deflated_messages() as f64
}

/// Routes of the fixture server: (method, pattern, id).
const FIXTURE_ROUTES: [(&str, &str, u32); 2] =
    [("POST", "/users/{id}/{name}", 3), ("PUT", "/big", 5)];

/// The requests `recordFixture` sends, pipelined on one connection: a
/// routed one with params, a query, repeated headers and a small body; a
/// miss the core hands to JS with an allow list; one whose body travels as
/// an external buffer.
const FIXTURE_REQUESTS: &[u8] = b"POST /users/42/caf%C3%A9?x=1&y=%20z HTTP/1.1\r\n\
Host: fixture.test\r\n\
X-Dup: a\r\n\
X-Dup: b\r\n\
Content-Type: text/plain\r\n\
Content-Length: 5\r\n\
\r\n\
hello\
DELETE /users/7/x HTTP/1.1\r\n\
Host: fixture.test\r\n\
\r\n\
PUT /big HTTP/1.1\r\n\
Host: fixture.test\r\n\
Content-Length: 20000\r\n\
\r\n";

/// Bytes of the last request's body: `i % 251` at offset `i`.
const FIXTURE_BIG_BODY: usize = 20_000;

#[napi(object)]
pub struct RecordFixture {
    /// `[records, ...externalBodies]`: the records as `NativeServer.drainInto`
    /// writes them after the body count, and the bodies `takeBodies` returns.
    pub parts: Vec<Buffer>,
    /// The client's port, which the records carry as the remote port.
    pub remote_port: u32,
}

struct NoWaker;

impl httpy_core::Waker for NoWaker {
    fn wake(&self) {}
    fn closed(&self) {}
}

/// The core's encoding of three known requests (`FIXTURE_REQUESTS`), made
/// the way real ones are: a server on 127.0.0.1 parses them from a socket
/// and `httpy_core::record::encode` writes their records into one batch
/// (without the URL trailer when `urls` is false, as a server without
/// fetch-style handlers writes them). `__test__/record.test.ts` decodes
/// every field with `ts/record.ts`.
#[napi(catch_unwind)]
pub fn record_fixture(urls: Option<bool>) -> Result<RecordFixture> {
    let encode = if urls.unwrap_or(true) {
        httpy_core::record::encode
    } else {
        httpy_core::record::encode_without_url
    };
    let mut router = Router::new();
    for (method, pattern, id) in FIXTURE_ROUTES {
        router
            .insert(method, pattern, id)
            .map_err(|e| invalid("ERR_HTTPY_INVALID_ROUTE", e))?;
    }
    let config = ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        threads: 1,
        js_handles_misses: true,
        ..ServerConfig::default()
    };
    let server = Server::start(config, router, Box::new(NoWaker))
        .map_err(|e| core_error(Status::GenericFailure, e))?;
    let io = |e: std::io::Error| Error::from_reason(format!("recordFixture: {e}"));
    let mut client = TcpStream::connect(server.local_addr()).map_err(io)?;
    let remote_port = client.local_addr().map_err(io)?.port() as u32;
    let big: Vec<u8> = (0..FIXTURE_BIG_BODY).map(|i| (i % 251) as u8).collect();
    client.write_all(FIXTURE_REQUESTS).map_err(io)?;
    client.write_all(&big).map_err(io)?;
    let mut records = Vec::new();
    let mut external: Vec<Bytes> = Vec::new();
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while count < 3 {
        if Instant::now() > deadline {
            return Err(Error::from_reason(format!(
                "recordFixture: {count} of 3 requests arrived"
            )));
        }
        let batch = server.take_batch();
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        for req in batch {
            encode(&req, &mut records, &mut external);
            count += 1;
            // Answered, so the connection goes on to the next request.
            if let Ok(reply) = Reply::from_parts(204, "", Bytes::new()) {
                req.responder.send(reply);
            }
        }
    }
    server.close(Duration::ZERO);
    Ok(RecordFixture {
        parts: convert::batch(records, external),
        remote_port,
    })
}
