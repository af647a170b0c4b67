//! HTTP/1.x, plain or over TLS. Two drivers, one switch:
//!
//! - the own driver on `httparse`, the default: `conn.rs` runs the
//!   connection, `role.rs` parses heads, `decode.rs` frames request bodies,
//!   `body.rs` is the body the dispatcher reads, `encode.rs` writes
//!   responses, `io.rs` pools buffers. It serves every request except those
//!   with an `Upgrade` field (WebSocket, h2c) and `CONNECT`: at such a head
//!   it stops, and the connection, with the bytes it has read, goes to
//!   hyper for good. A route-cache hit on a plain keep-alive `GET` is
//!   answered from its stored bytes while the head is parsed, before any
//!   `Request` exists (`Dispatch::answer_stored`).
//! - hyper (`hyper.rs`), with `HTTPY_H1_DRIVER=hyper`: it serves every
//!   HTTP/1.x connection and performs upgrades (the WebSocket layer takes
//!   the transport from hyper's `OnUpgrade`); with the own driver it
//!   still takes the upgrades.
//!
//! `HTTPY_H1_DRIVER=hyper` in the environment (read once per process)
//! sends plain HTTP/1.1 connections to hyper, so that both paths can be
//! measured in one build. The own driver became the default once it was
//! measured no dearer than hyper on every row (docs/performance.md §14:
//! cheaper on cached routes, per idle connection, and — once a request
//! waiting for JS stopped holding a read buffer — equal on JS handlers and
//! keep-alive HTTPS; §7, §10 and §12 tell the way there).
//!
//! `HTTPY_DIRECT_WRITE=N` (with the own driver, plain TCP) lets the thread
//! that hands JavaScript's answers over write small whole answers of a
//! batch of at most `N` straight into their sockets, without waking the
//! connection's task (`direct.rs`).
//!
//! Why our own: hyper builds a `HeaderMap` per request and encodes each
//! response from one through its own buffers, per request; the own driver
//! writes the head straight from the response into a pooled buffer, writes
//! head and body in one call, and holds no buffer on an idle connection.

mod body;
mod conn;
pub(crate) mod decode;
pub(crate) mod direct;
mod encode;
mod hyper;
mod io;
mod role;

use std::sync::Arc;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::net::TcpStream;

pub(crate) use io::Transport;

use super::io::Rewind;
use super::Env;
use crate::dispatch::{ConnInfo, Dispatch};

/// How long a connection must be quiet (no bytes either way, no request in
/// flight, nothing waiting to be written) before it is parked. A connection
/// is parked between one and two of these after its last I/O. Short, so that
/// a burst of new connections holds few buffers at any moment (the peak is
/// what the process's RSS keeps); long enough that a busy connection sees
/// only twenty timer ticks a second, and back-to-back traffic never parks.
/// (The own driver frees its buffers at once; it uses this only to count a
/// connection as idle.)
pub(crate) const PARK_AFTER: Duration = Duration::from_millis(50);

/// The own driver unless `HTTPY_H1_DRIVER=hyper`.
static OWN_DRIVER: LazyLock<bool> =
    LazyLock::new(|| !std::env::var("HTTPY_H1_DRIVER").is_ok_and(|v| v == "hyper"));

/// Serves HTTP/1.x on `io` until the peer closes, the connection idles out,
/// or the server closes (gracefully: the request in flight finishes).
pub(crate) async fn serve<D: Dispatch, T: Transport>(
    shared: Arc<Env<D>>,
    info: Arc<ConnInfo>,
    io: T,
) {
    if !*OWN_DRIVER {
        return hyper::serve(shared, info, io, T::SHUTS_DOWN_WHEN_IDLE).await;
    }
    if let conn::End::HandOff(io, read) = conn::run(&shared, &info, io).await {
        let write_timeout = shared.config.request_timeout;
        Box::pin(hyper::serve(
            shared,
            info,
            Rewind::new(read, io, write_timeout),
            T::SHUTS_DOWN_WHEN_IDLE,
        ))
        .await
    }
}

/// [`serve`] for plain TCP, where idle connections hold no buffers.
pub(crate) async fn serve_parkable<D: Dispatch>(
    shared: Arc<Env<D>>,
    info: Arc<ConnInfo>,
    io: Rewind<TcpStream>,
) {
    if !*OWN_DRIVER {
        return hyper::serve_parkable(shared, info, io).await;
    }
    if let conn::End::HandOff(mut io, read) = conn::run(&shared, &info, io).await {
        io.unread(read);
        Box::pin(hyper::serve_parkable(shared, info, io)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::ResBody;
    use crate::config::ServerConfig;
    use crate::lifecycle::Lifecycle;
    use crate::observe::stats::Stats;
    use crate::proto::Env;
    use bytes::Bytes;
    use http::{Request, Response};
    use std::convert::Infallible;
    use std::future::Future;
    use std::sync::atomic::AtomicU64;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio::io::{AsyncReadExt, DuplexStream};

    /// A dispatcher that answers each request with its path and its number
    /// on the connection, so tests see order and keep-alive.
    #[derive(Clone, Default)]
    struct Numbering(Arc<AtomicU64>);

    impl Dispatch for Numbering {
        fn call<B>(
            &self,
            _conn: Arc<ConnInfo>,
            req: Request<B>,
        ) -> impl Future<Output = Result<Response<ResBody>, Infallible>> + Send + 'static + use<B>
        where
            B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
            B::Error: std::fmt::Display,
        {
            let n = self.0.fetch_add(1, Relaxed) + 1;
            let text = format!("{} #{n}", req.uri().path());
            async move { Ok(Response::new(ResBody::full(Bytes::from(text)))) }
        }
    }

    fn env() -> Arc<Env<Numbering>> {
        env_with(Numbering::default())
    }

    fn env_with<D: Dispatch>(dispatch: D) -> Arc<Env<D>> {
        Arc::new(Env {
            config: Arc::new(ServerConfig::default()),
            life: Lifecycle::default(),
            stats: Arc::new(Stats::default()),
            metrics: None,
            dispatch,
        })
    }

    /// Starts a driver (`own`: ours, else hyper's) on one end of an
    /// in-memory stream.
    fn connect<D: Dispatch>(
        env: &Arc<Env<D>>,
        own: bool,
    ) -> (DuplexStream, tokio::task::JoinHandle<()>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let info = ConnInfo::new("127.0.0.1:6000".parse().unwrap(), false);
        let env = env.clone();
        let task = tokio::spawn(async move {
            if own {
                let _ = conn::run(&env, &info, server).await;
            } else {
                hyper::serve(env, info, server, false).await
            }
        });
        (client, task)
    }

    /// Reads until `n` whole responses (each with a body of known length)
    /// have arrived; returns their bodies.
    async fn responses(client: &mut DuplexStream, n: usize) -> Vec<String> {
        let mut buf = Vec::new();
        let mut bodies = Vec::new();
        while bodies.len() < n {
            let mut chunk = [0u8; 4096];
            let k = tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk))
                .await
                .expect("a response in time")
                .unwrap();
            assert!(k > 0, "connection closed after {} responses", bodies.len());
            buf.extend_from_slice(&chunk[..k]);
            bodies.clear();
            let text = String::from_utf8_lossy(&buf).to_string();
            let mut rest = text.as_str();
            while let Some(end) = rest.find("\r\n\r\n") {
                let head = &rest[..end];
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.parse().unwrap());
                if rest.len() < end + 4 + len {
                    break;
                }
                assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
                bodies.push(rest[end + 4..end + 4 + len].to_string());
                rest = &rest[end + 4 + len..];
            }
        }
        bodies
    }

    async fn send(client: &mut DuplexStream, bytes: &[u8]) {
        client.write_all(bytes).await.unwrap();
    }

    /// Waits (boundedly) for the driver's task to end.
    async fn ended(task: tokio::task::JoinHandle<()>) {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the driver ends in time")
            .unwrap();
    }

    #[tokio::test]
    async fn keep_alive_serves_request_after_request_on_one_connection() {
        for own in [true, false] {
            let env = env();
            let (mut client, task) = connect(&env, own);
            send(&mut client, b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n").await;
            assert_eq!(responses(&mut client, 1).await, ["/a #1"]);
            send(&mut client, b"GET /b HTTP/1.1\r\nhost: x\r\n\r\n").await;
            assert_eq!(responses(&mut client, 1).await, ["/b #2"]);
            // The client closes: the driver ends.
            drop(client);
            ended(task).await;
        }
    }

    #[tokio::test]
    async fn pipelined_requests_are_answered_in_order() {
        for own in [true, false] {
            let env = env();
            let (mut client, _task) = connect(&env, own);
            send(&mut client, b"GET /1 HTTP/1.1\r\nhost: x\r\n\r\nGET /2 HTTP/1.1\r\nhost: x\r\n\r\nGET /3 HTTP/1.1\r\nhost: x\r\n\r\n").await;
            assert_eq!(responses(&mut client, 3).await, ["/1 #1", "/2 #2", "/3 #3"]);
        }
    }

    #[tokio::test]
    async fn connection_close_ends_the_connection_after_its_response() {
        for own in [true, false] {
            let env = env();
            let (mut client, task) = connect(&env, own);
            send(&mut client, b"GET /last HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\nGET /never HTTP/1.1\r\nhost: x\r\n\r\n").await;
            assert_eq!(responses(&mut client, 1).await, ["/last #1"]);
            let mut rest = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
                .await
                .unwrap()
                .unwrap();
            assert!(rest.is_empty(), "nothing after the closing response");
            ended(task).await;
            assert_eq!(env.dispatch.0.load(Relaxed), 1);
        }
    }

    /// Records this thread's pooled buffers when the request is handed
    /// over and again once the driver has waited on it, then answers (as
    /// a JS handler does, after a pending poll); never, when `stuck`.
    #[derive(Clone, Default)]
    struct PoolWatch {
        seen: Arc<std::sync::Mutex<Vec<(usize, usize)>>>,
        stuck: bool,
        calls: Arc<AtomicU64>,
    }

    impl Dispatch for PoolWatch {
        fn call<B>(
            &self,
            _conn: Arc<ConnInfo>,
            _req: Request<B>,
        ) -> impl Future<Output = Result<Response<ResBody>, Infallible>> + Send + 'static + use<B>
        where
            B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
            B::Error: std::fmt::Display,
        {
            let seen = self.seen.clone();
            let at_call = io::pooled();
            self.calls.fetch_add(1, Relaxed);
            let stuck = self.stuck;
            async move {
                if stuck {
                    std::future::pending::<()>().await;
                }
                // Pending once: the driver watches the socket meanwhile, as
                // while a JS handler runs.
                tokio::task::yield_now().await;
                seen.lock().unwrap().push((at_call, io::pooled()));
                Ok(Response::new(ResBody::full(Bytes::from_static(b"ok"))))
            }
        }
    }

    /// Regression: a connection waiting for its answer held its read
    /// buffer, so with many connections in flight the per-thread pool ran
    /// dry and each request paid a fresh 8 KiB allocation and a free. The
    /// wait now gives the buffer back (on a socket that reports
    /// readiness), and the answer is written into a pooled buffer.
    #[tokio::test]
    async fn a_request_in_flight_holds_no_read_buffer() {
        let env = env_with(PoolWatch::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let io = Rewind::new(Bytes::new(), server, Duration::from_secs(5));
        let (run_env, info) = (env.clone(), ConnInfo::new(peer, false));
        let task = tokio::spawn(async move { conn::run(&run_env, &info, io).await });
        for _ in 0..2 {
            client
                .write_all(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut got = Vec::new();
            while !got.ends_with(b"\r\n\r\nok") {
                let mut chunk = [0u8; 1024];
                let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk))
                    .await
                    .expect("an answer in time")
                    .unwrap();
                assert!(n > 0, "closed before the answer");
                got.extend_from_slice(&chunk[..n]);
            }
            assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
        }
        let seen = env.dispatch.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        for (at_call, waiting) in seen {
            assert_eq!(
                waiting,
                at_call + 1,
                "the read buffer went back to the pool"
            );
        }
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }

    /// Regression: the driver polled the close signals' futures at every
    /// look (a mutex and a waiter list's lock each, ~10 per request). It
    /// registers on them once per connection now and reads their flags;
    /// a graceful close still ends the connection after its requests.
    #[tokio::test]
    async fn close_signals_are_registered_once_per_connection() {
        let env = env_with(PoolWatch::default());
        let (mut client, task) = connect(&env, true);
        let before = conn::REGISTRATIONS.with(|n| n.get());
        for _ in 0..20 {
            send(&mut client, b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n").await;
            assert_eq!(responses(&mut client, 1).await, ["ok"]);
        }
        let after = conn::REGISTRATIONS.with(|n| n.get());
        assert_eq!(after - before, 1, "one registration for 20 requests");
        env.life.shutdown.cancel();
        ended(task).await;
    }

    /// A graceful close waits for the request in flight; a forced close
    /// ends it (both seen through the flags, with the task woken by the
    /// tokens it registered on once).
    #[tokio::test]
    async fn a_forced_close_ends_a_request_in_flight() {
        let env = env_with(PoolWatch {
            stuck: true,
            ..Default::default()
        });
        let (mut client, task) = connect(&env, true);
        send(&mut client, b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n").await;
        while env.dispatch.calls.load(Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        env.life.shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!task.is_finished(), "a graceful close lets it finish");
        env.life.force.cancel();
        ended(task).await;
    }

    #[tokio::test]
    async fn a_graceful_close_lets_the_connection_finish() {
        for own in [true, false] {
            let env = env();
            let (mut client, task) = connect(&env, own);
            send(&mut client, b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n").await;
            assert_eq!(responses(&mut client, 1).await, ["/a #1"]);
            env.life.shutdown.cancel();
            ended(task).await;
        }
    }
}
