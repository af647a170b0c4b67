//! The access log: one line per answered request, in Apache/nginx
//! "combined" format or as JSON, written by a dedicated thread.
//!
//! Tokio threads only hand an [`Entry`] to a bounded channel (never block,
//! never format); the writer thread formats, buffers and flushes once per
//! burst, so a line reaches the file within one burst of its request while a
//! busy server pays one write(2) per burst rather than per line.

use http::{HeaderValue, Method};
use std::fmt::Write as _;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, ErrorKind, Result};

/// Lines waiting for the writer; beyond this, lines are dropped and counted
/// rather than stalling a network thread on a slow disk.
const QUEUE: usize = 64 * 1024;

/// Line format of the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// `ip - - [time] "GET /path HTTP/1.1" status bytes "referer" "user-agent"`
    Combined,
    /// One JSON object per line.
    Json,
}

/// Where and how to write the access log.
#[derive(Debug, Clone)]
pub struct AccessLogConfig {
    pub format: AccessLogFormat,
    /// File appended to (created if missing); `None` writes to stdout.
    pub path: Option<PathBuf>,
}

/// What one line says about one request.
pub(crate) struct Entry {
    pub(crate) time: SystemTime,
    pub(crate) remote: IpAddr,
    pub(crate) method: Method,
    pub(crate) target: String,
    pub(crate) version: http::Version,
    pub(crate) status: u16,
    pub(crate) bytes: u64,
    pub(crate) referer: Option<HeaderValue>,
    pub(crate) user_agent: Option<HeaderValue>,
    pub(crate) took: Duration,
}

pub(crate) struct AccessLog {
    tx: SyncSender<Entry>,
    pub(crate) dropped: AtomicU64,
}

impl AccessLog {
    /// Opens the destination now (so a bad path fails at start) and starts
    /// the writer thread, which ends once the server is gone.
    pub(crate) fn start(config: &AccessLogConfig) -> Result<Self> {
        let out: Box<dyn Write + Send> = match &config.path {
            Some(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::InvalidOption,
                            format!("accessLog: cannot open {}: {e}", p.display()),
                        )
                    })?,
            ),
            None => Box::new(std::io::stdout()),
        };
        let (tx, rx) = sync_channel(QUEUE);
        let format = config.format;
        std::thread::Builder::new()
            .name("httpy-access-log".into())
            .spawn(move || write_loop(rx, out, format))
            .map_err(|e| {
                Error::new(
                    ErrorKind::Internal,
                    format!("cannot start the access log thread: {e}"),
                )
            })?;
        Ok(Self {
            tx,
            dropped: AtomicU64::new(0),
        })
    }

    pub(crate) fn log(&self, entry: Entry) {
        match self.tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Relaxed);
            }
        }
    }
}

fn write_loop(rx: Receiver<Entry>, out: Box<dyn Write + Send>, format: AccessLogFormat) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut line = String::with_capacity(512);
    // `recv` fails once every sender (the server) is gone: then flush and end.
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(entry) = next {
            line.clear();
            match format {
                AccessLogFormat::Combined => combined(&entry, &mut line),
                AccessLogFormat::Json => json(&entry, &mut line),
            }
            // A failing disk must not take the server down; lines are lost.
            let _ = out.write_all(line.as_bytes());
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}

fn version_str(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Inside a quoted combined-format field: escape `"`, `\` and bytes that
/// are not printable ASCII as `\xNN`, like nginx, so a line cannot be forged.
fn push_quoted(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02X}");
            }
        }
    }
}

fn combined(e: &Entry, out: &mut String) {
    let (date, _) = civil(e.time);
    let _ = write!(out, "{} - - [{date}] \"{} ", e.remote, e.method);
    push_quoted(out, e.target.as_bytes());
    let _ = write!(
        out,
        " {}\" {} {} \"",
        version_str(e.version),
        e.status,
        e.bytes
    );
    push_quoted(out, e.referer.as_ref().map_or(b"-", |v| v.as_bytes()));
    out.push_str("\" \"");
    push_quoted(out, e.user_agent.as_ref().map_or(b"-", |v| v.as_bytes()));
    out.push_str("\"\n");
}

fn push_json_str(out: &mut String, bytes: &[u8]) {
    out.push('"');
    // Header values may hold any byte; read them as Latin-1 so every byte
    // survives as one character.
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x00..=0x1f | 0x7f => {
                let _ = write!(out, "\\u{b:04x}");
            }
            _ => out.push(b as char),
        }
    }
    out.push('"');
}

fn json(e: &Entry, out: &mut String) {
    let (_, iso) = civil(e.time);
    let _ = write!(
        out,
        "{{\"time\":\"{iso}\",\"remote_addr\":\"{}\",\"method\":",
        e.remote
    );
    push_json_str(out, e.method.as_str().as_bytes());
    out.push_str(",\"path\":");
    push_json_str(out, e.target.as_bytes());
    let _ = write!(
        out,
        ",\"protocol\":\"{}\",\"status\":{},\"bytes\":{},\"duration_ms\":{:.3},\"referer\":",
        version_str(e.version),
        e.status,
        e.bytes,
        e.took.as_secs_f64() * 1000.0
    );
    match &e.referer {
        Some(v) => push_json_str(out, v.as_bytes()),
        None => out.push_str("null"),
    }
    out.push_str(",\"user_agent\":");
    match &e.user_agent {
        Some(v) => push_json_str(out, v.as_bytes()),
        None => out.push_str("null"),
    }
    out.push_str("}\n");
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `time` as `27/Nov/2026:09:40:56 +0000` and `2026-11-27T09:40:56.123Z`
/// (UTC; days to a civil date by Howard Hinnant's algorithm).
fn civil(time: SystemTime) -> (String, String) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let ms = since.subsec_millis();
    (
        format!(
            "{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02} +0000",
            MONTHS[(m - 1) as usize]
        ),
        format!("{y}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            time: UNIX_EPOCH + Duration::from_millis(1_795_772_456_123),
            remote: "127.0.0.1".parse().unwrap(),
            method: Method::GET,
            target: "/a b?q=\"x\"".into(),
            version: http::Version::HTTP_11,
            status: 200,
            bytes: 13,
            referer: None,
            user_agent: Some(HeaderValue::from_static("curl/8")),
            took: Duration::from_micros(1500),
        }
    }

    #[test]
    fn formats_dates() {
        let (clf, iso) = civil(UNIX_EPOCH + Duration::from_millis(951_782_400_007));
        assert_eq!(clf, "29/Feb/2000:00:00:00 +0000");
        assert_eq!(iso, "2000-02-29T00:00:00.007Z");
    }

    #[test]
    fn formats_combined_lines_with_escapes() {
        let mut s = String::new();
        combined(&entry(), &mut s);
        assert_eq!(
            s,
            "127.0.0.1 - - [27/Nov/2026:09:40:56 +0000] \"GET /a b?q=\\\"x\\\" HTTP/1.1\" 200 13 \"-\" \"curl/8\"\n"
        );
    }

    #[test]
    fn formats_json_lines() {
        let mut s = String::new();
        json(&entry(), &mut s);
        assert_eq!(
            s,
            "{\"time\":\"2026-11-27T09:40:56.123Z\",\"remote_addr\":\"127.0.0.1\",\"method\":\"GET\",\"path\":\"/a b?q=\\\"x\\\"\",\"protocol\":\"HTTP/1.1\",\"status\":200,\"bytes\":13,\"duration_ms\":1.500,\"referer\":null,\"user_agent\":\"curl/8\"}\n"
        );
    }
}
