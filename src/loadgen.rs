//! Binding of `httpy-loadgen`: `runLoad(options, onProgress?)` returns a
//! Promise; the run itself happens on the generator's own threads (the
//! libuv worker only waits), so the JS thread keeps serving meanwhile.

use std::sync::Arc;
use std::time::Duration;

use httpy_loadgen::{Bytes, LoadConfig, LoadError, Progress, Protocol, Report, Stop, TlsOptions};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

#[napi(object)]
pub struct LoadOptions {
    pub host: String,
    pub port: u32,
    /// Path and query.
    pub path: String,
    /// `Host` / `:authority` value; defaults to `host:port`.
    pub authority: Option<String>,
    pub method: String,
    /// Flat `[name, value, name, value, …]`.
    pub headers: Vec<String>,
    pub body: Option<Buffer>,
    /// `"http1"` or `"http2"`.
    pub protocol: String,
    pub connections: u32,
    pub concurrency: u32,
    /// Fixed request count; exclusive with `duration_ms`.
    pub requests: Option<f64>,
    pub duration_ms: Option<f64>,
    pub warmup_ms: f64,
    pub timeout_ms: f64,
    pub threads: u32,
    /// Speak TLS (`https://`); the protocol is then chosen by ALPN.
    pub tls: Option<bool>,
    /// With `tls`: accept any server certificate (signatures still checked).
    pub insecure: Option<bool>,
    /// With `tls`: PEM file of the certificates to trust.
    pub ca_file: Option<String>,
    /// A new connection (with TLS, a full handshake) for every request.
    pub new_connection_per_request: Option<bool>,
}

#[napi(object)]
pub struct LoadLatency {
    /// All in microseconds.
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub stdev: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
}

#[napi(object)]
pub struct LoadResult {
    pub elapsed_ms: f64,
    pub total: f64,
    pub responses: f64,
    /// `[status, count, status, count, …]`
    pub statuses: Vec<f64>,
    /// Counts of `connect`, `timeout`, `io`, `protocol` failures, in that order.
    pub failures: Vec<f64>,
    /// First message of each failure kind that occurred: `[kind, message, …]`.
    pub failure_messages: Vec<String>,
    pub bytes_received: f64,
    pub latency: LoadLatency,
    pub connections_opened: f64,
}

#[napi(object)]
#[derive(Clone, Copy)]
pub struct LoadProgress {
    pub warmup: bool,
    pub done: f64,
    pub errors: f64,
    pub elapsed: f64,
}

type ProgressTsfn = ThreadsafeFunction<LoadProgress, (), LoadProgress, Status, false>;

pub struct LoadTask {
    config: Option<LoadConfig>,
    progress: Option<Arc<ProgressTsfn>>,
}

fn load_error(e: LoadError) -> Error {
    // Same "CODE: message" convention as the server errors.
    Error::new(Status::GenericFailure, e.to_string())
}

fn invalid(msg: &str) -> Error {
    load_error(LoadError::InvalidOption(msg.to_string()))
}

fn to_config(o: LoadOptions) -> Result<LoadConfig> {
    let port = u16::try_from(o.port).map_err(|_| invalid("port must be 1-65535"))?;
    let ms = |v: f64| Duration::from_micros((v.max(0.0) * 1000.0) as u64);
    let stop = match (o.requests, o.duration_ms) {
        (Some(n), None) if n >= 1.0 && n.fract() == 0.0 => Stop::Requests(n as u64),
        (None, Some(d)) if d > 0.0 && d.is_finite() => Stop::Duration(ms(d)),
        _ => {
            return Err(invalid(
                "give either a positive request count or a positive duration",
            ))
        }
    };
    if !o.headers.len().is_multiple_of(2) {
        return Err(invalid("headers must be name/value pairs"));
    }
    let headers = o
        .headers
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    let mut cfg = LoadConfig::new(&o.host, port, &o.path);
    cfg.authority = o.authority;
    cfg.method = o.method;
    cfg.headers = headers;
    // Copied: the run outlives this call and must not hold a JS reference.
    cfg.body = o
        .body
        .map(|b| Bytes::copy_from_slice(&b))
        .unwrap_or_default();
    cfg.protocol = Protocol::parse(&o.protocol).map_err(load_error)?;
    cfg.connections = o.connections as usize;
    cfg.concurrency = o.concurrency as usize;
    cfg.stop = stop;
    cfg.warmup = ms(o.warmup_ms);
    cfg.timeout = ms(o.timeout_ms);
    cfg.threads = o.threads as usize;
    if o.tls == Some(true) {
        cfg.tls = Some(TlsOptions {
            insecure: o.insecure == Some(true),
            ca_file: o.ca_file.map(Into::into),
            server_name: None,
        });
    }
    cfg.new_connection_per_request = o.new_connection_per_request == Some(true);
    cfg.validate().map_err(load_error)?;
    Ok(cfg)
}

fn to_result(r: Report) -> LoadResult {
    let us = |ns: u64| ns as f64 / 1000.0;
    LoadResult {
        elapsed_ms: r.elapsed.as_secs_f64() * 1000.0,
        total: r.total as f64,
        responses: r.responses as f64,
        statuses: r
            .status_counts
            .iter()
            .flat_map(|(s, n)| [*s as f64, *n as f64])
            .collect(),
        failures: r.failures.iter().map(|(_, n)| *n as f64).collect(),
        failure_messages: r
            .failure_messages
            .iter()
            .flat_map(|(k, m)| [k.name().to_string(), m.clone()])
            .collect(),
        bytes_received: r.bytes_received as f64,
        latency: LoadLatency {
            min: us(r.latency.min),
            max: us(r.latency.max),
            mean: r.latency.mean / 1000.0,
            stdev: r.latency.stdev / 1000.0,
            p50: us(r.latency.p50),
            p90: us(r.latency.p90),
            p95: us(r.latency.p95),
            p99: us(r.latency.p99),
            p999: us(r.latency.p999),
        },
        connections_opened: r.connections_opened as f64,
    }
}

impl Task for LoadTask {
    type Output = Report;
    type JsValue = LoadResult;

    fn compute(&mut self) -> Result<Report> {
        let config = self
            .config
            .take()
            .ok_or_else(|| invalid("the load task ran twice"))?;
        let progress = self.progress.clone().map(|tsfn| {
            Arc::new(move |p: Progress| {
                let arg = LoadProgress {
                    warmup: p.warmup,
                    done: p.done as f64,
                    errors: p.errors as f64,
                    elapsed: p.elapsed,
                };
                tsfn.call(arg, ThreadsafeFunctionCallMode::NonBlocking);
            }) as httpy_loadgen::ProgressFn
        });
        // A panic in the generator must not unwind through the libuv thread.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            httpy_loadgen::run(config, progress)
        })) {
            Ok(r) => r.map_err(load_error),
            Err(_) => Err(Error::new(
                Status::GenericFailure,
                "ERR_HTTPY_INTERNAL: the load generator panicked",
            )),
        }
    }

    fn resolve(&mut self, _env: Env, output: Report) -> Result<LoadResult> {
        Ok(to_result(output))
    }

    fn finally(mut self, _env: Env) -> Result<()> {
        self.progress = None;
        Ok(())
    }
}

/// Runs a load in the background; resolves with the counts and latency
/// summary, rejects (code in the message prefix) on invalid options or an
/// unresolvable host. `on_progress` gets a snapshot about 5 times a second.
#[napi(catch_unwind)]
pub fn run_load(
    options: LoadOptions,
    on_progress: Option<Function<LoadProgress, ()>>,
) -> Result<AsyncTask<LoadTask>> {
    let config = to_config(options)?;
    let progress = match on_progress {
        Some(f) => Some(Arc::new(
            f.build_threadsafe_function()
                .callee_handled::<false>()
                .build()?,
        )),
        None => None,
    };
    Ok(AsyncTask::new(LoadTask {
        config: Some(config),
        progress,
    }))
}
