//! Runs a load: its own Tokio runtime, one task per concurrent request
//! slot, a shared ticket counter for fixed-count runs, warm-up, and a
//! progress ticker. Each task keeps its own statistics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{Client, Target};
use crate::config::{LoadConfig, Protocol, Stop};
use crate::error::LoadError;
use crate::h1::H1Client;
use crate::h2c::{H2Client, H2Request, H2Slot};
use crate::h3::{H3Client, H3Slot};
use crate::stats::{Failure, FailureKind, Report, WorkerStats};
use crate::ws::WsClient;

/// A snapshot passed to the progress callback about 5 times a second.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// True while warming up (nothing is counted yet).
    pub warmup: bool,
    /// Measured requests finished so far.
    pub done: u64,
    /// Of which failed or got a status >= 400.
    pub errors: u64,
    /// Seconds since the measured phase started (0 during warm-up).
    pub elapsed: f64,
}

/// Called from a generator thread; must not block.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Pause after a failed connect so a refused port is not hammered in a loop.
const CONNECT_BACKOFF: Duration = Duration::from_millis(5);
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

struct Shared {
    stop: Stop,
    measure_start: Instant,
    end: Option<Instant>,
    tickets: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    timeout: Duration,
}

/// Runs `config` to completion on a new runtime and returns the merged
/// report. Blocks the calling thread (call it from a worker thread).
///
/// ```no_run
/// use httpy_loadgen::{run, LoadConfig, Protocol, Stop};
/// let cfg = LoadConfig::new("127.0.0.1", 8080, "/json")
///     .protocol(Protocol::Http2)
///     .connections(2)
///     .concurrency(32)
///     .stop(Stop::Duration(std::time::Duration::from_secs(5)));
/// let report = run(cfg, None)?;
/// println!("{:.0} req/s", report.requests_per_second());
/// # Ok::<(), httpy_loadgen::LoadError>(())
/// ```
pub fn run(config: LoadConfig, progress: Option<ProgressFn>) -> Result<Report, LoadError> {
    config.validate()?;
    // One thread: a current-thread runtime on the caller's (already
    // dedicated) thread. Its FIFO run queue lets every client queue its next
    // request before the HTTP/2 connection task flushes, so one write carries
    // many streams; the multi-thread scheduler's LIFO slot would run the
    // connection task after each request and flush them one by one.
    let mut builder = if config.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(config.threads)
            .thread_name("httpy-loadgen");
        b
    };
    let rt = builder
        .enable_all()
        .build()
        .map_err(|e| LoadError::Runtime(format!("cannot start the load generator runtime: {e}")))?;
    let report = rt.block_on(run_async(config, progress));
    // HTTP/2 connection tasks of a stalled server may still wait; do not.
    rt.shutdown_timeout(Duration::from_millis(100));
    report
}

async fn run_async(config: LoadConfig, progress: Option<ProgressFn>) -> Result<Report, LoadError> {
    let addrs: Vec<_> = tokio::net::lookup_host((config.host.as_str(), config.port))
        .await
        .map_err(|e| LoadError::Resolve(format!("cannot resolve {:?}: {e}", config.host)))?
        .collect();
    if addrs.is_empty() {
        return Err(LoadError::Resolve(format!(
            "{:?} has no address",
            config.host
        )));
    }
    let protocol = config.protocol;
    let concurrency = config.concurrency;
    let connections = config.connections.min(concurrency);
    let target = Arc::new(Target::new(config, addrs)?);
    let c = &target.config;
    let measure_start = Instant::now() + c.warmup;
    let shared = Arc::new(Shared {
        stop: c.stop,
        measure_start,
        end: match c.stop {
            Stop::Duration(d) => Some(measure_start + d),
            Stop::Requests(_) => None,
        },
        tickets: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        timeout: c.timeout,
    });

    let mut tasks = Vec::with_capacity(concurrency);
    match protocol {
        Protocol::Http1 => {
            for _ in 0..concurrency {
                tasks.push(tokio::spawn(worker(
                    H1Client::new(target.clone()),
                    shared.clone(),
                )));
            }
        }
        Protocol::Http2 => {
            let request = Arc::new(H2Request::new(&target)?);
            let slots: Vec<_> = (0..connections)
                .map(|_| Arc::new(H2Slot::new(target.clone(), request.clone())))
                .collect();
            for i in 0..concurrency {
                let client = H2Client::new(slots[i % connections].clone());
                tasks.push(tokio::spawn(worker(client, shared.clone())));
            }
        }
        Protocol::Http3 => {
            let request = Arc::new(H2Request::new(&target)?);
            let slots = (0..connections)
                .map(|_| H3Slot::new(target.clone(), request.clone()).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()?;
            for i in 0..concurrency {
                let client = H3Client::new(slots[i % connections].clone());
                tasks.push(tokio::spawn(worker(client, shared.clone())));
            }
        }
        Protocol::WebSocket => {
            for i in 0..concurrency {
                tasks.push(tokio::spawn(worker(
                    WsClient::new(target.clone(), i as u32 + 1),
                    shared.clone(),
                )));
            }
        }
    }

    let finished = Arc::new(AtomicBool::new(false));
    let ticker = progress.map(|cb| {
        let shared = shared.clone();
        let finished = finished.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PROGRESS_EVERY);
            every.tick().await;
            while !finished.load(Ordering::Relaxed) {
                every.tick().await;
                cb(snapshot(&shared));
            }
        })
    });

    let mut stats = Vec::with_capacity(tasks.len());
    // The measured phase ends when the last client stops sending requests,
    // not when the last connection has finished closing.
    let mut end = measure_start;
    for t in tasks {
        match t.await {
            Ok((s, stopped)) => {
                stats.push(s);
                end = end.max(stopped);
            }
            Err(e) => return Err(LoadError::Runtime(format!("a load task failed: {e}"))),
        }
    }
    finished.store(true, Ordering::Relaxed);
    if let Some(t) = ticker {
        t.abort();
    }
    let elapsed = end.saturating_duration_since(measure_start);
    Ok(Report::merge(
        stats,
        elapsed,
        target.connections.load(Ordering::Relaxed),
    ))
}

fn snapshot(s: &Shared) -> Progress {
    let now = Instant::now();
    Progress {
        warmup: now < s.measure_start,
        done: s.done.load(Ordering::Relaxed),
        errors: s.errors.load(Ordering::Relaxed),
        elapsed: now.saturating_duration_since(s.measure_start).as_secs_f64(),
    }
}

/// Runs requests until the run is over, then lets the client close its
/// connection; returns the statistics and when the last request ended.
async fn worker<C: Client>(mut client: C, shared: Arc<Shared>) -> (WorkerStats, Instant) {
    let mut stats = WorkerStats::new();
    loop {
        let now = Instant::now();
        let measured = now >= shared.measure_start;
        if measured {
            let more = match shared.stop {
                Stop::Requests(n) => shared.tickets.fetch_add(1, Ordering::Relaxed) < n,
                Stop::Duration(_) => shared.end.is_some_and(|end| now < end),
            };
            if !more {
                break;
            }
        }
        let started = Instant::now();
        let result = match tokio::time::timeout(shared.timeout, client.request()).await {
            Ok(r) => r,
            Err(_) => {
                client.reset();
                Err(Failure::new(
                    FailureKind::Timeout,
                    format!(
                        "no complete response within {} ms",
                        shared.timeout.as_millis()
                    ),
                ))
            }
        };
        match result {
            Ok(outcome) => {
                if measured {
                    stats.record(started.elapsed(), outcome);
                    shared.done.fetch_add(1, Ordering::Relaxed);
                    if outcome.status >= 400 {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(failure) => {
                let connect = failure.kind == FailureKind::Connect;
                if measured {
                    stats.fail(failure);
                    shared.done.fetch_add(1, Ordering::Relaxed);
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                }
                if connect {
                    tokio::time::sleep(CONNECT_BACKOFF).await;
                }
            }
        }
    }
    let stopped = Instant::now();
    client.finish().await;
    (stats, stopped)
}
