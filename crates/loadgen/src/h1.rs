//! HTTP/1.1 keep-alive client: one connection, one request in flight, no
//! pipelining. Hand-rolled over `httparse` because the generator must cost
//! less CPU per request than the servers it measures.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{Client, Target};
use crate::stats::{Failure, FailureKind, Outcome};
use crate::tls::Stream;

/// A response head larger than this is treated as a protocol error.
const MAX_HEAD: usize = 64 * 1024;
const READ_CHUNK: usize = 64 * 1024;

struct Conn {
    stream: Stream,
    buf: BytesMut,
    /// Responses already read on this connection.
    used: u64,
}

/// One HTTP/1.1 connection's worth of requests.
pub(crate) struct H1Client {
    target: Arc<Target>,
    conn: Option<Conn>,
}

impl H1Client {
    pub fn new(target: Arc<Target>) -> H1Client {
        H1Client { target, conn: None }
    }
}

impl Client for H1Client {
    async fn request(&mut self) -> Result<Outcome, Failure> {
        loop {
            let mut conn = match self.conn.take() {
                Some(c) => c,
                None => Conn {
                    stream: self.target.open().await?,
                    buf: BytesMut::with_capacity(READ_CHUNK),
                    used: 0,
                },
            };
            match exchange(&mut conn, &self.target).await {
                Ok((outcome, keep)) => {
                    conn.used += 1;
                    if keep && !self.target.config.new_connection_per_request {
                        self.conn = Some(conn);
                    }
                    return Ok(outcome);
                }
                // The server closed an idle kept-alive connection just as we
                // reused it: nothing was processed, so a new connection may
                // retry (as every keep-alive client does).
                Err(Exchange::Stale) if conn.used > 0 => continue,
                Err(Exchange::Stale) => {
                    return Err(Failure::new(
                        FailureKind::Io,
                        "connection closed before a response",
                    ))
                }
                Err(Exchange::Failed(f)) => return Err(f),
            }
        }
    }

    fn reset(&mut self) {
        self.conn = None;
    }
}

enum Exchange {
    /// Closed before any byte of a response arrived.
    Stale,
    Failed(Failure),
}

fn io(e: std::io::Error) -> Exchange {
    Exchange::Failed(Failure::new(FailureKind::Io, e.to_string()))
}

fn proto(msg: impl Into<String>) -> Exchange {
    Exchange::Failed(Failure::new(FailureKind::Protocol, msg))
}

fn early_eof() -> Exchange {
    Exchange::Failed(Failure::new(
        FailureKind::Io,
        "connection closed in the middle of a response",
    ))
}

/// Reads more bytes; `Ok(false)` at end of stream.
async fn fill_raw(conn: &mut Conn) -> std::io::Result<bool> {
    if conn.buf.capacity() - conn.buf.len() < 4096 {
        conn.buf.reserve(READ_CHUNK);
    }
    Ok(conn.stream.read_buf(&mut conn.buf).await? > 0)
}

async fn fill(conn: &mut Conn) -> Result<bool, Exchange> {
    fill_raw(conn).await.map_err(io)
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
    )
}

struct Head {
    status: u16,
    length: Option<u64>,
    chunked: bool,
    close: bool,
}

/// Writes the request and reads one complete response. Returns whether the
/// connection may be reused.
async fn exchange(conn: &mut Conn, target: &Target) -> Result<(Outcome, bool), Exchange> {
    if let Err(e) = conn.stream.write_all(&target.h1_request).await {
        return Err(if is_reset(&e) { Exchange::Stale } else { io(e) });
    }
    let mut first = true;
    let head = loop {
        if !conn.buf.is_empty() {
            if let Some(head) = parse_head(conn)? {
                // Interim responses (100 Continue, 103) precede the real one.
                if (100..200).contains(&head.status) {
                    continue;
                }
                break head;
            }
            if conn.buf.len() > MAX_HEAD {
                return Err(proto("response head larger than 64 KiB"));
            }
        }
        let nothing_yet = first && conn.buf.is_empty();
        match fill_raw(conn).await {
            Ok(true) => {}
            Ok(false) if nothing_yet => return Err(Exchange::Stale),
            Ok(false) => return Err(early_eof()),
            Err(e) if nothing_yet && is_reset(&e) => return Err(Exchange::Stale),
            Err(e) => return Err(io(e)),
        }
        first = false;
    };
    let no_body = target.is_head || head.status == 204 || head.status == 304;
    let (bytes, to_eof) = if no_body {
        (0, false)
    } else if head.chunked {
        (read_chunked(conn).await?, false)
    } else if let Some(n) = head.length {
        discard(conn, n).await?;
        (n, false)
    } else {
        (read_to_eof(conn).await?, true)
    };
    Ok((
        Outcome {
            status: head.status,
            bytes,
        },
        !(head.close || to_eof),
    ))
}

fn parse_head(conn: &mut Conn) -> Result<Option<Head>, Exchange> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let used = match resp.parse(&conn.buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(proto(format!("invalid response head: {e}"))),
    };
    let status = resp.code.unwrap_or(0);
    let mut head = Head {
        status,
        length: None,
        chunked: false,
        close: resp.version == Some(0),
    };
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
            match v {
                Some(n) => head.length = Some(n),
                None => return Err(proto("invalid content-length")),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = h
                .value
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            if h.value.windows(5).any(|w| w.eq_ignore_ascii_case(b"close")) {
                head.close = true;
            } else if h
                .value
                .windows(10)
                .any(|w| w.eq_ignore_ascii_case(b"keep-alive"))
            {
                head.close = false;
            }
        }
    }
    conn.buf.advance(used);
    Ok(Some(head))
}

/// Skips `n` body bytes.
async fn discard(conn: &mut Conn, mut n: u64) -> Result<(), Exchange> {
    loop {
        let take = (conn.buf.len() as u64).min(n);
        conn.buf.advance(take as usize);
        n -= take;
        if n == 0 {
            return Ok(());
        }
        if !fill(conn).await? {
            return Err(early_eof());
        }
    }
}

async fn read_to_eof(conn: &mut Conn) -> Result<u64, Exchange> {
    let mut total = 0;
    loop {
        total += conn.buf.len() as u64;
        conn.buf.clear();
        if !fill(conn).await? {
            return Ok(total);
        }
    }
}

/// Reads a line ending in CRLF (without it); used for chunk sizes and trailers.
async fn line(conn: &mut Conn) -> Result<BytesMut, Exchange> {
    loop {
        if let Some(i) = conn.buf.windows(2).position(|w| w == b"\r\n") {
            let l = conn.buf.split_to(i);
            conn.buf.advance(2);
            return Ok(l);
        }
        if conn.buf.len() > 4096 {
            return Err(proto("chunk-size line too long"));
        }
        if !fill(conn).await? {
            return Err(early_eof());
        }
    }
}

async fn read_chunked(conn: &mut Conn) -> Result<u64, Exchange> {
    let mut total = 0;
    loop {
        let l = line(conn).await?;
        let hex = l[..].split(|b| *b == b';').next().unwrap_or(&[]);
        let size = std::str::from_utf8(hex)
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| proto("invalid chunk size"))?;
        if size == 0 {
            // Trailers end with an empty line.
            while !line(conn).await?.is_empty() {}
            return Ok(total);
        }
        discard(conn, size).await?;
        if !line(conn).await?.is_empty() {
            return Err(proto("chunk not followed by CRLF"));
        }
        total += size;
    }
}
