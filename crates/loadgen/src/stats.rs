//! Counting: each worker owns its own histogram and counters (no sharing on
//! the request path); they are merged once at the end into a `Report`.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Why a single request got no usable response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The TCP connect (or the HTTP/2 handshake) failed.
    Connect,
    /// No complete response within the per-request timeout.
    Timeout,
    /// The connection broke mid-request (reset, closed early).
    Io,
    /// The peer sent something that is not valid HTTP.
    Protocol,
}

impl FailureKind {
    pub(crate) const ALL: [FailureKind; 4] = [
        FailureKind::Connect,
        FailureKind::Timeout,
        FailureKind::Io,
        FailureKind::Protocol,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Short name used in reports (`connect`, `timeout`, `io`, `protocol`).
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Io => "io",
            FailureKind::Protocol => "protocol",
        }
    }
}

/// A failed request: its kind and a message for the first one of each kind.
#[derive(Debug)]
pub(crate) struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

/// The useful result of one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// HTTP status; 0 for a WebSocket echo, which has none.
    pub status: u16,
    /// Response body (or echoed message) bytes.
    pub bytes: u64,
}

/// Latencies are kept in nanoseconds, 3 significant digits, up to an hour.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("static histogram bounds are valid")
}

/// One worker's counters.
pub(crate) struct WorkerStats {
    pub latency: Histogram<u64>,
    /// Indexed by status code (0-999).
    pub statuses: Vec<u64>,
    pub failures: [u64; 4],
    pub first_failures: [Option<String>; 4],
    pub bytes: u64,
}

impl WorkerStats {
    pub fn new() -> WorkerStats {
        WorkerStats {
            latency: new_histogram(),
            statuses: vec![0; 1000],
            failures: [0; 4],
            first_failures: Default::default(),
            bytes: 0,
        }
    }

    pub fn record(&mut self, elapsed: Duration, outcome: Outcome) {
        let ns = (elapsed.as_nanos() as u64).max(1);
        // Saturate instead of failing on an out-of-range sample.
        self.latency.saturating_record(ns);
        if outcome.status != 0 {
            if let Some(slot) = self.statuses.get_mut(outcome.status as usize) {
                *slot += 1;
            }
        }
        self.bytes += outcome.bytes;
    }

    pub fn fail(&mut self, f: Failure) {
        let i = f.kind.index();
        self.failures[i] += 1;
        if self.first_failures[i].is_none() {
            self.first_failures[i] = Some(f.message);
        }
    }
}

/// Latency summary in nanoseconds (0 when there were no responses).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub min: u64,
    pub max: u64,
    pub mean: f64,
    pub stdev: f64,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
}

/// The outcome of a run.
///
/// ```no_run
/// # use httpy_loadgen::{run, LoadConfig};
/// let report = run(LoadConfig::new("127.0.0.1", 8080, "/"), None).unwrap();
/// println!("{:.0} req/s, p99 {} µs", report.requests_per_second(), report.latency.p99 / 1000);
/// ```
#[derive(Debug, Clone)]
pub struct Report {
    /// Length of the measured phase.
    pub elapsed: Duration,
    /// Measured requests that finished, with a response or a failure.
    pub total: u64,
    /// Measured requests that got a complete response (any status).
    pub responses: u64,
    /// Failures by kind, in `FailureKind::ALL` order.
    pub failures: Vec<(FailureKind, u64)>,
    /// First failure message of each kind that occurred.
    pub failure_messages: Vec<(FailureKind, String)>,
    /// `(status, count)`, sorted by status.
    pub status_counts: Vec<(u16, u64)>,
    /// Response body bytes of measured requests.
    pub bytes_received: u64,
    pub latency: Latency,
    /// TCP connections opened over the whole run (warm-up included).
    pub connections_opened: u64,
}

impl Report {
    /// Complete responses per second of the measured phase.
    pub fn requests_per_second(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.responses as f64 / s
        } else {
            0.0
        }
    }

    /// Requests without a response plus responses with status >= 400.
    pub fn errors(&self) -> u64 {
        self.failed()
            + self
                .status_counts
                .iter()
                .filter(|(s, _)| *s >= 400)
                .map(|(_, n)| n)
                .sum::<u64>()
    }

    /// Requests that got no response at all.
    pub fn failed(&self) -> u64 {
        self.failures.iter().map(|(_, n)| n).sum()
    }

    pub(crate) fn merge(
        workers: Vec<WorkerStats>,
        elapsed: Duration,
        connections_opened: u64,
    ) -> Report {
        let mut latency = new_histogram();
        let mut statuses = vec![0u64; 1000];
        let mut failures = [0u64; 4];
        let mut first: [Option<String>; 4] = Default::default();
        let mut bytes = 0;
        for w in workers {
            // Same bounds on both sides, so `add` cannot fail.
            let _ = latency.add(&w.latency);
            for (a, b) in statuses.iter_mut().zip(&w.statuses) {
                *a += b;
            }
            for i in 0..4 {
                failures[i] += w.failures[i];
                if first[i].is_none() {
                    first[i] = w.first_failures[i].clone();
                }
            }
            bytes += w.bytes;
        }
        let responses = latency.len();
        let lat = if responses == 0 {
            Latency::default()
        } else {
            Latency {
                min: latency.min(),
                max: latency.max(),
                mean: latency.mean(),
                stdev: latency.stdev(),
                p50: latency.value_at_quantile(0.50),
                p90: latency.value_at_quantile(0.90),
                p95: latency.value_at_quantile(0.95),
                p99: latency.value_at_quantile(0.99),
                p999: latency.value_at_quantile(0.999),
            }
        };
        let failed: u64 = failures.iter().sum();
        Report {
            elapsed,
            total: responses + failed,
            responses,
            failures: FailureKind::ALL
                .iter()
                .map(|k| (*k, failures[k.index()]))
                .collect(),
            failure_messages: FailureKind::ALL
                .iter()
                .filter_map(|k| first[k.index()].clone().map(|m| (*k, m)))
                .collect(),
            status_counts: statuses
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(s, n)| (s as u16, *n))
                .collect(),
            bytes_received: bytes,
            latency: lat,
            connections_opened,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_workers() {
        let mut a = WorkerStats::new();
        let mut b = WorkerStats::new();
        a.record(
            Duration::from_micros(100),
            Outcome {
                status: 200,
                bytes: 10,
            },
        );
        b.record(
            Duration::from_micros(300),
            Outcome {
                status: 500,
                bytes: 5,
            },
        );
        b.fail(Failure::new(FailureKind::Timeout, "slow"));
        let r = Report::merge(vec![a, b], Duration::from_secs(1), 2);
        assert_eq!(r.total, 3);
        assert_eq!(r.responses, 2);
        assert_eq!(r.errors(), 2);
        assert_eq!(r.status_counts, vec![(200, 1), (500, 1)]);
        assert_eq!(r.bytes_received, 15);
        assert_eq!(
            r.failure_messages,
            vec![(FailureKind::Timeout, "slow".to_string())]
        );
        assert!(r.latency.min >= 99_000 && r.latency.max <= 301_000);
        assert_eq!(r.requests_per_second(), 2.0);
    }
}
