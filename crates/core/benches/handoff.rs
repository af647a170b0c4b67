//! The core's side of the hand-off between the Tokio I/O thread and the
//! embedder's thread, without JavaScript:
//!
//! 1. `record::encode` of a request parsed by a real server (what
//!    `drainInto` does per request);
//! 2. `ReplyBatch` decoding of a batch of 64 small replies (what
//!    `respondBatch` does per batch);
//! 3. one wake each way between a plain thread and a Tokio task that waits
//!    for it (a oneshot send to a waiting task, answered by an unpark: the
//!    two wakes a crossing may cost);
//! 4. the whole loop through a server on 127.0.0.1: clients on keep-alive
//!    connections, the Waker unparking a consumer thread that takes
//!    batches, encodes records, writes and decodes a reply batch and sends
//!    the replies, as the binding does with JS in the middle. Reports CPU
//!    per request of each thread, wakes per request and batch size.
//!
//!   cargo bench -p httpy-core --bench handoff
//!   cargo bench -p httpy-core --bench handoff -- --seconds 5 --conns 64
//!
//! A plain timing loop (harness = false), so it builds with nothing but
//! the crate's own dependencies. Not part of `cargo test`.

use bytes::Bytes;
use httpy_core::{record, Reply, ReplyBatch, Router, Server, ServerConfig, Waker};
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

const REQUEST: &[u8] =
    b"GET /users/42?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n";
const PLAINTEXT: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
const HELLO: &[u8] = b"Hello, World!";
const HEADERS: &[u8] = b"content-type\ntext/plain\n";

/// Wakes the consumer thread, as the binding's threadsafe function wakes JS.
#[derive(Default)]
struct Unpark {
    consumer: OnceLock<Thread>,
    wakes: AtomicU64,
}

struct SharedUnpark(Arc<Unpark>);

impl Waker for SharedUnpark {
    fn wake(&self) {
        self.0.wakes.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = self.0.consumer.get() {
            t.unpark();
        }
    }
    fn closed(&self) {}
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// User and system CPU of this process's threads named `name`, in µs.
fn named_threads_cpu(name: &str) -> (f64, f64) {
    let tick = 1e6 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let (mut user, mut sys) = (0.0, 0.0);
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return (f64::NAN, f64::NAN);
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != name {
            continue;
        }
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        user += f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) * tick;
        sys += f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) * tick;
    }
    (user, sys)
}

/// Appends one reply in the `ReplyBatch` layout.
fn put_reply(out: &mut Vec<u8>, id: u32) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&200u16.to_le_bytes());
    out.extend_from_slice(&(HEADERS.len() as u32).to_le_bytes());
    out.extend_from_slice(HEADERS);
    out.extend_from_slice(&(HELLO.len() as u32).to_le_bytes());
    out.extend_from_slice(HELLO);
}

fn start(threads: usize) -> (Server, Arc<Unpark>) {
    let mut router = Router::new();
    router.insert("GET", "/plaintext", 0).expect("route");
    router.insert("GET", "/users/{id}", 1).expect("route");
    let unpark = Arc::new(Unpark::default());
    let config = ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        threads,
        ..ServerConfig::default()
    };
    let server =
        Server::start(config, router, Box::new(SharedUnpark(unpark.clone()))).expect("start");
    (server, unpark)
}

/// Times `f` (which does `per_call` units of work) for about `budget`.
fn time_loop(name: &str, budget: Duration, per_call: u64, mut f: impl FnMut()) {
    for _ in 0..1000 {
        f();
    }
    let mut calls = 0u64;
    let t0 = Instant::now();
    while t0.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        calls += 100;
    }
    let ns = t0.elapsed().as_nanos() as f64 / (calls * per_call) as f64;
    println!("{name:<52} {ns:>9.1} ns");
}

/// Reads one response (head and a Content-Length body) from `conn`.
fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let len = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                buf.drain(..end + 4 + len);
                return Ok(());
            }
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn pieces(budget: Duration) {
    let (server, _unpark) = start(1);
    let mut client = TcpStream::connect(server.local_addr()).expect("connect");
    client.write_all(REQUEST).expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    let req = loop {
        if let Some(r) = server.take_batch().into_iter().next() {
            break r;
        }
        assert!(Instant::now() < deadline, "the request did not arrive");
        std::thread::sleep(Duration::from_millis(1));
    };

    println!("{:<52} {:>12}", "piece", "per unit");
    let mut out = Vec::with_capacity(64 * 256);
    let mut external: Vec<Bytes> = Vec::new();
    time_loop(
        "record::encode (GET /users/42?x=1, 3 headers)",
        budget,
        64,
        || {
            out.clear();
            for _ in 0..64 {
                record::encode(black_box(&req), &mut out, &mut external);
            }
            black_box(&out);
        },
    );

    let mut batch = Vec::new();
    for id in 0..64 {
        put_reply(&mut batch, id);
    }
    time_loop(
        "ReplyBatch: copy + decode, per reply (batch of 64)",
        budget,
        64,
        || {
            for (_, reply) in ReplyBatch::new(black_box(&batch)) {
                black_box(reply.is_ok());
            }
        },
    );
    time_loop("Reply::from_parts (one reply, one call)", budget, 1, || {
        black_box(
            Reply::from_parts(200, "content-type\ntext/plain\n", Bytes::from_static(HELLO)).is_ok(),
        );
    });
    drop(req);
    server.close(Duration::ZERO);
}

/// One wake each way: this thread sends to a Tokio task waiting on a
/// oneshot (a Responder's send), the task unparks this thread (the Waker).
fn ping_pong(budget: Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let me = std::thread::current();
    let mut rounds = 0u64;
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    while t0.elapsed() < budget {
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let back = me.clone();
        let done = Arc::new(AtomicBool::new(false));
        let seen = done.clone();
        rt.spawn(async move {
            if rx.await.is_ok() {
                seen.store(true, Ordering::Release);
                back.unpark();
            }
        });
        // Let the task reach its await and the worker go idle, as a
        // connection task waiting for its reply does.
        std::thread::yield_now();
        let _ = tx.send(1);
        while !done.load(Ordering::Acquire) {
            std::thread::park();
        }
        rounds += 1;
    }
    let wall = t0.elapsed().as_nanos() as f64 / rounds as f64;
    let cpu = (thread_cpu() - cpu0).as_nanos() as f64 / rounds as f64;
    println!(
        "{:<52} {:>9.1} ns wall, {:.1} ns CPU of the sending thread",
        "wake a waiting task and be woken back (round trip)", wall, cpu
    );
}

/// The whole hand-off under load, with a Rust consumer in place of JS.
fn round_trip(seconds: f64, conns: usize) {
    let (server, unpark) = start(1);
    let server = Arc::new(server);
    let addr = server.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));

    // The load: `conns` keep-alive connections, one request in flight on each.
    let client = {
        let (stop, served) = (stop.clone(), served.clone());
        std::thread::spawn(move || {
            let mut conns: Vec<(TcpStream, Vec<u8>)> = (0..conns)
                .map(|_| {
                    let c = TcpStream::connect(addr).expect("connect");
                    c.set_nodelay(true).ok();
                    c.set_read_timeout(Some(Duration::from_secs(5))).ok();
                    (c, Vec::new())
                })
                .collect();
            while !stop.load(Ordering::Relaxed) {
                for (c, _) in conns.iter_mut() {
                    c.write_all(PLAINTEXT).expect("write");
                }
                for (c, buf) in conns.iter_mut() {
                    read_response(c, buf).expect("read");
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    // The consumer: what drainInto, the handlers and respondBatch do, less JS.
    let consumer = {
        let (server, unpark, stop) = (server.clone(), unpark.clone(), stop.clone());
        std::thread::Builder::new()
            .name("consumer".into())
            .spawn(move || {
                let _ = unpark.consumer.set(std::thread::current());
                let mut records = Vec::with_capacity(64 * 1024);
                let mut external: Vec<Bytes> = Vec::new();
                let mut replies = Vec::with_capacity(64 * 1024);
                let (mut batches, mut requests) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::park_timeout(Duration::from_millis(20));
                    loop {
                        let batch = server.take_batch();
                        if batch.is_empty() {
                            break;
                        }
                        records.clear();
                        replies.clear();
                        let mut responders = Vec::with_capacity(batch.len());
                        for req in batch {
                            record::encode(&req, &mut records, &mut external);
                            put_reply(&mut replies, req.id);
                            responders.push(req.responder);
                        }
                        black_box(&records);
                        batches += 1;
                        for ((_, reply), responder) in ReplyBatch::new(&replies).zip(responders) {
                            if let Ok(reply) = reply {
                                responder.send(reply);
                            }
                            requests += 1;
                        }
                    }
                }
                (batches, requests)
            })
            .expect("consumer thread")
    };

    let warmup = Duration::from_millis(500);
    std::thread::sleep(warmup);
    let io0 = named_threads_cpu("httpy-io");
    let js0 = named_threads_cpu("consumer");
    let wakes0 = unpark.wakes.load(Ordering::Relaxed);
    let n0 = served.load(Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let io1 = named_threads_cpu("httpy-io");
    let js1 = named_threads_cpu("consumer");
    let wakes1 = unpark.wakes.load(Ordering::Relaxed);
    let n1 = served.load(Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    unpark.consumer.get().map(Thread::unpark);
    let (batches, requests) = consumer.join().expect("consumer");
    client.join().expect("client");

    let n = (n1 - n0).max(1) as f64;
    println!(
        "\nround trip through a server on 127.0.0.1, {conns} keep-alive connections, GET /plaintext, {seconds} s after {} ms warm-up:",
        warmup.as_millis()
    );
    println!("  {:.0} requests/s", n / elapsed);
    println!(
        "  I/O thread (httpy-io): {:.2} µs user + {:.2} µs system per request",
        (io1.0 - io0.0) / n,
        (io1.1 - io0.1) / n
    );
    println!(
        "  consumer thread (take, encode, reply batch, send): {:.2} µs user + {:.2} µs system per request",
        (js1.0 - js0.0) / n,
        (js1.1 - js0.1) / n
    );
    println!(
        "  wakes of the consumer: {:.3} per request; {:.1} requests per batch",
        (wakes1 - wakes0) as f64 / n,
        requests as f64 / batches.max(1) as f64
    );
    if let Ok(server) = Arc::try_unwrap(server) {
        server.close(Duration::ZERO);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, dflt: f64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(dflt)
    };
    let seconds = opt("--seconds", 3.0);
    let conns = opt("--conns", 64.0) as usize;
    let budget = Duration::from_millis(opt("--budget-ms", 700.0) as u64);
    pieces(budget);
    ping_pong(budget);
    round_trip(seconds, conns);
}
