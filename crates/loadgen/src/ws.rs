//! WebSocket echo client (RFC 6455, hand-rolled like the HTTP/1.1 one): one
//! connection per client, upgraded once; each "request" sends one masked
//! message and waits for its echo. Throughput is then messages per second
//! and latency the echo round trip.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{Client, Target};
use crate::stats::{Failure, FailureKind, Outcome};

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
/// Echoes larger than this are a protocol error (we send small messages).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// How long the closing handshake may wait for the server's close frame.
const CLOSE_WAIT: Duration = Duration::from_millis(500);
/// Normal closure (RFC 6455 §7.4.1).
const CLOSE_NORMAL: u16 = 1000;

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    frame: Vec<u8>,
    mask_state: u32,
}

pub(crate) struct WsClient {
    target: Arc<Target>,
    conn: Option<Conn>,
    /// Sent as a binary message when the payload is not valid UTF-8.
    binary: bool,
    seed: u32,
}

impl WsClient {
    pub fn new(target: Arc<Target>, seed: u32) -> WsClient {
        let binary = std::str::from_utf8(&target.config.body).is_err();
        WsClient {
            target,
            conn: None,
            binary,
            seed: seed.wrapping_mul(0x9E37_79B9) | 1,
        }
    }
}

fn fail(kind: FailureKind, msg: impl Into<String>) -> Failure {
    Failure::new(kind, msg)
}

fn io(e: std::io::Error) -> Failure {
    fail(FailureKind::Io, format!("WebSocket: {e}"))
}

/// xorshift: masking keys need not be secret here, only varied.
fn next_mask(state: &mut u32) -> [u8; 4] {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    x.to_le_bytes()
}

/// Appends one masked client frame.
pub(crate) fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// A complete server frame at the start of `buf`: (fin, opcode, header length, payload length).
pub(crate) fn parse_frame(buf: &[u8]) -> Result<Option<(bool, u8, usize, usize)>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let fin = buf[0] & 0x80 != 0;
    let opcode = buf[0] & 0x0f;
    if buf[1] & 0x80 != 0 {
        return Err("server frames must not be masked".into());
    }
    let (head, len) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (10, u64::from_be_bytes(b).min(usize::MAX as u64) as usize)
        }
        126 | 127 => return Ok(None),
        n => (2, n as usize),
    };
    if len > MAX_MESSAGE {
        return Err(format!(
            "frame of {len} bytes is larger than the echo limit"
        ));
    }
    if buf.len() < head + len {
        return Ok(None);
    }
    Ok(Some((fin, opcode, head, len)))
}

async fn fill(conn: &mut Conn) -> Result<(), Failure> {
    if conn.buf.capacity() - conn.buf.len() < 4096 {
        conn.buf.reserve(64 * 1024);
    }
    match conn.stream.read_buf(&mut conn.buf).await {
        Ok(0) => Err(fail(
            FailureKind::Io,
            "WebSocket: connection closed by the server",
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(io(e)),
    }
}

impl WsClient {
    async fn open(&mut self) -> Result<Conn, Failure> {
        let stream = self.target.connect().await?;
        let c = &self.target.config;
        let mut key_state = self.seed;
        let key: Vec<u8> = (0..4).flat_map(|_| next_mask(&mut key_state)).collect();
        let mut req = format!(
            "GET {} HTTP/1.1\r\nhost: {}\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: {}\r\n",
            c.path,
            c.authority(),
            base64(&key)
        );
        for (n, v) in &c.headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut conn = Conn {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            frame: Vec::new(),
            mask_state: self.seed,
        };
        conn.stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| fail(FailureKind::Connect, format!("WebSocket upgrade: {e}")))?;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&conn.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    if resp.code != Some(101) {
                        return Err(fail(
                            FailureKind::Connect,
                            format!(
                                "WebSocket upgrade refused with status {}",
                                resp.code.unwrap_or(0)
                            ),
                        ));
                    }
                    conn.buf.advance(n);
                    return Ok(conn);
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => {
                    return Err(fail(
                        FailureKind::Protocol,
                        format!("WebSocket upgrade response: {e}"),
                    ))
                }
            }
            fill(&mut conn)
                .await
                .map_err(|f| fail(FailureKind::Connect, f.message))?;
        }
    }
}

impl Client for WsClient {
    async fn request(&mut self) -> Result<Outcome, Failure> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.open().await?,
        };
        let payload = self.target.config.body.clone();
        let mask = next_mask(&mut conn.mask_state);
        conn.frame.clear();
        encode_frame(
            &mut conn.frame,
            if self.binary { OP_BINARY } else { OP_TEXT },
            &payload,
            mask,
        );
        conn.stream.write_all(&conn.frame).await.map_err(io)?;
        // Read frames until one whole data message (answering pings on the way).
        let mut message: Vec<u8> = Vec::new();
        loop {
            let Some((fin, opcode, head, len)) =
                parse_frame(&conn.buf).map_err(|m| fail(FailureKind::Protocol, m))?
            else {
                fill(&mut conn).await?;
                continue;
            };
            let data = conn.buf[head..head + len].to_vec();
            conn.buf.advance(head + len);
            match opcode {
                OP_PING => {
                    let mut pong = Vec::new();
                    encode_frame(&mut pong, OP_PONG, &data, next_mask(&mut conn.mask_state));
                    conn.stream.write_all(&pong).await.map_err(io)?;
                }
                OP_PONG => {}
                OP_CLOSE => {
                    let code = if data.len() >= 2 {
                        u16::from_be_bytes([data[0], data[1]])
                    } else {
                        1005
                    };
                    return Err(fail(
                        FailureKind::Io,
                        format!("WebSocket closed by the server (code {code})"),
                    ));
                }
                OP_TEXT | OP_BINARY | OP_CONT => {
                    message.extend_from_slice(&data);
                    if fin {
                        break;
                    }
                }
                other => {
                    return Err(fail(
                        FailureKind::Protocol,
                        format!("unknown WebSocket opcode {other}"),
                    ))
                }
            }
        }
        if message != payload[..] {
            return Err(fail(
                FailureKind::Protocol,
                "WebSocket echo differs from the message sent",
            ));
        }
        let bytes = message.len() as u64;
        self.conn = Some(conn);
        Ok(Outcome { status: 0, bytes })
    }

    fn reset(&mut self) {
        self.conn = None;
    }

    /// The closing handshake (RFC 6455 §7.1.2): a close frame with 1000,
    /// then the server's close frame (or its end of the stream), for at most
    /// `CLOSE_WAIT`, so the server sees a normal closure rather than 1006.
    async fn finish(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let _ = tokio::time::timeout(CLOSE_WAIT, close(&mut conn)).await;
        let _ = conn.stream.shutdown().await;
    }
}

/// Sends a normal close frame and reads until the server's close frame.
async fn close(conn: &mut Conn) {
    let mask = next_mask(&mut conn.mask_state);
    conn.frame.clear();
    encode_frame(&mut conn.frame, OP_CLOSE, &CLOSE_NORMAL.to_be_bytes(), mask);
    if conn.stream.write_all(&conn.frame).await.is_err() {
        return;
    }
    loop {
        match parse_frame(&conn.buf) {
            Ok(Some((_, opcode, head, len))) => {
                conn.buf.advance(head + len);
                if opcode == OP_CLOSE {
                    return;
                }
            }
            Ok(None) => {
                if fill(conn).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_parser_once_unmasked() {
        for n in [0usize, 5, 125, 126, 65535, 65536] {
            let payload = vec![7u8; n];
            let mut f = Vec::new();
            encode_frame(&mut f, OP_TEXT, &payload, [1, 2, 3, 4]);
            // What a server would send back: same frame without the mask.
            let head = f.len() - n - 4;
            let mut server = f[..head].to_vec();
            server[1] &= 0x7f;
            server.extend_from_slice(&payload);
            let (fin, op, h, len) = parse_frame(&server).unwrap().unwrap();
            assert!(fin);
            assert_eq!((op, h, len), (OP_TEXT, head, n));
            assert!(parse_frame(&server[..server.len() - 1]).unwrap().is_none());
            // And the client frame is masked.
            assert!(f[1] & 0x80 != 0);
            assert!(parse_frame(&f).is_err());
        }
    }

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
