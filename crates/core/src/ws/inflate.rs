//! permessage-deflate (RFC 7692), the receiving half: a transport wrapper
//! that sits between the socket and tungstenite and rewrites each
//! compressed message (RSV1 on its first frame) into plain frames carrying
//! the inflated bytes, so tungstenite, which rejects RSV1, sees an ordinary
//! message and keeps doing the rest of RFC 6455 (fragments, control frames,
//! UTF-8, limits, the closing handshake).
//!
//! Every other frame passes through byte for byte, including frames that
//! break the rules (RSV1 on a control or continuation frame, RSV2/RSV3,
//! unmasked frames): tungstenite fails those as before.
//!
//! Decompression bombs: a message is inflated in steps bounded by what is
//! left of `maxMessageSize`; once the inflated size passes it, inflating
//! stops and the connection is failed with 1009, having produced at most
//! `maxMessageSize` + one step of output.
//!
//! Cost: compressed connections copy every inbound byte once more (socket
//! buffer to here, here to tungstenite); a memcpy, small beside inflating.
//! Connections without the extension are not wrapped at all.

use bytes::{Buf, BufMut, BytesMut};
use flate2::{Decompress, FlushDecompress, Status};
use parking_lot::Mutex;
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Why the wrapper failed the connection: the close code and reason the
/// driver sends instead of the generic one for the I/O error it sees.
pub(crate) type Fault = Arc<Mutex<Option<(u16, &'static str)>>>;

/// The RFC 7692 section 7.2.2 tail appended to every compressed message.
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// Header we write in front of inflated data: FIN/opcode, masked with the
/// 64-bit length form, a zero mask key (XOR with zero is free, and
/// tungstenite insists on masked client frames).
const OUT_HEADER: usize = 2 + 8 + 4;

/// Largest socket read per call.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// Spare decompressors, so connections without context takeover hold
    /// none between messages (zlib's inflate state is ~40 KB with its window).
    static POOL: RefCell<Vec<Decompress>> = const { RefCell::new(Vec::new()) };
}
const POOL_MAX: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Msg {
    None,
    Plain,
    /// A compressed message is being inflated; `opcode` is still to be
    /// written when no frame of it has gone out yet.
    Compressed {
        opcode: Option<u8>,
    },
}

enum Phase {
    Header,
    /// Copy this many payload bytes through unchanged.
    Pass(u64),
    /// Inflate this many payload bytes, unmasking with `mask` from `off`.
    Inflate {
        left: u64,
        mask: [u8; 4],
        off: usize,
        fin: bool,
    },
}

pub(crate) struct Inflating<S> {
    io: S,
    raw: BytesMut,
    out: BytesMut,
    phase: Phase,
    msg: Msg,
    inflater: Option<Decompress>,
    /// The client keeps its LZ77 history between messages.
    client_takeover: bool,
    max: usize,
    inflated: usize,
    eof: bool,
    /// A failure found while earlier messages still wait in `out`: those
    /// are handed over first, then this is returned.
    failed: Option<io::Error>,
    fault: Fault,
}

impl<S> Inflating<S> {
    pub(crate) fn new(io: S, client_takeover: bool, max: usize, fault: Fault) -> Self {
        Self {
            io,
            raw: BytesMut::new(),
            out: BytesMut::new(),
            phase: Phase::Header,
            msg: Msg::None,
            inflater: None,
            client_takeover,
            max,
            inflated: 0,
            eof: false,
            failed: None,
            fault,
        }
    }

    fn fail(&mut self, code: u16, reason: &'static str) -> io::Error {
        *self.fault.lock() = Some((code, reason));
        io::Error::new(io::ErrorKind::InvalidData, reason)
    }

    /// Turns as much of `raw` into `out` as it can; false when it needs
    /// more input.
    fn step(&mut self) -> io::Result<bool> {
        match self.phase {
            Phase::Header => self.header(),
            Phase::Pass(left) => {
                if self.raw.is_empty() {
                    return Ok(false);
                }
                let n = (left.min(self.raw.len() as u64)) as usize;
                self.out.extend_from_slice(&self.raw[..n]);
                self.raw.advance(n);
                self.phase = if n as u64 == left {
                    Phase::Header
                } else {
                    Phase::Pass(left - n as u64)
                };
                Ok(true)
            }
            Phase::Inflate {
                left,
                mask,
                off,
                fin,
            } => {
                let n = (left.min(self.raw.len() as u64)) as usize;
                if n == 0 && left > 0 {
                    return Ok(false);
                }
                let mut chunk = self.raw.split_to(n);
                for (i, b) in chunk.iter_mut().enumerate() {
                    *b ^= mask[(off + i) & 3];
                }
                let last = n as u64 == left;
                self.inflate_into_frame(&chunk, last && fin)?;
                self.phase = if last {
                    Phase::Header
                } else {
                    Phase::Inflate {
                        left: left - n as u64,
                        mask,
                        off: (off + n) & 3,
                        fin,
                    }
                };
                Ok(true)
            }
        }
    }

    fn header(&mut self) -> io::Result<bool> {
        let r = &self.raw[..];
        if r.len() < 2 {
            return Ok(false);
        }
        let (b0, b1) = (r[0], r[1]);
        let masked = b1 & 0x80 != 0;
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let hlen = 2 + ext + if masked { 4 } else { 0 };
        if r.len() < hlen {
            return Ok(false);
        }
        let len = match ext {
            0 => u64::from(b1 & 0x7f),
            2 => u64::from(u16::from_be_bytes([r[2], r[3]])),
            _ => u64::from_be_bytes(r[2..10].try_into().expect("8 bytes")),
        };
        let (fin, rsv1, rsv23, opcode) =
            (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x30 != 0, b0 & 0x0f);
        let data = opcode == 1 || opcode == 2;
        let compressed_start = data && rsv1 && !rsv23 && masked && self.msg == Msg::None;
        let compressed_next =
            opcode == 0 && !rsv1 && !rsv23 && masked && matches!(self.msg, Msg::Compressed { .. });
        if compressed_start || compressed_next {
            // The compressed bytes alone may not pass the limit either.
            if len > self.max as u64 {
                return Err(self.fail(1009, "message too big"));
            }
            let mask = r[hlen - 4..hlen].try_into().expect("4 bytes");
            self.raw.advance(hlen);
            if compressed_start {
                self.msg = Msg::Compressed {
                    opcode: Some(opcode),
                };
                self.inflated = 0;
            }
            self.phase = Phase::Inflate {
                left: len,
                mask,
                off: 0,
                fin,
            };
            return Ok(true);
        }
        if data && matches!(self.msg, Msg::Compressed { .. }) {
            // A new message inside a compressed one: tungstenite may not have
            // seen the first fragment yet, so it is caught here.
            return Err(self.fail(1002, "protocol error"));
        }
        if data && !rsv1 {
            self.msg = if fin { Msg::None } else { Msg::Plain };
        } else if opcode == 0 && fin && self.msg == Msg::Plain {
            self.msg = Msg::None;
        }
        self.out.extend_from_slice(&r[..hlen]);
        self.raw.advance(hlen);
        self.phase = if len == 0 {
            Phase::Header
        } else {
            Phase::Pass(len)
        };
        Ok(true)
    }

    /// Inflates one piece of a compressed message into one plain frame
    /// (none when it produced nothing and is not the last).
    fn inflate_into_frame(&mut self, input: &[u8], last: bool) -> io::Result<()> {
        let start = self.out.len();
        self.out.put_bytes(0, OUT_HEADER);
        let mut d = match self.inflater.take() {
            Some(d) => d,
            None => POOL
                .with(|p| p.borrow_mut().pop())
                .unwrap_or_else(|| Decompress::new(false)),
        };
        // Output room for the first call: 8× the input covers a typical
        // message (JSON inflates 4-6×), so it takes one call and one
        // zero-fill; the tail produces nothing, so its call gets little room.
        let res = self.inflate(&mut d, input, input.len() * 8).and_then(|()| {
            if last {
                self.inflate(&mut d, &TAIL, 0)
            } else {
                Ok(())
            }
        });
        if let Err(e) = res {
            self.out.truncate(start);
            return Err(e);
        }
        if last && !self.client_takeover {
            d.reset(false);
            POOL.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < POOL_MAX {
                    p.push(d);
                }
            });
        } else {
            self.inflater = Some(d);
        }
        let produced = self.out.len() - start - OUT_HEADER;
        if produced == 0 && !last {
            self.out.truncate(start);
            return Ok(());
        }
        // The first frame of the message carries its opcode, the rest are
        // continuations.
        let op = match &mut self.msg {
            Msg::Compressed { opcode } => opcode.take().unwrap_or(0),
            _ => 0,
        };
        let h = &mut self.out[start..start + OUT_HEADER];
        h[0] = if last { 0x80 } else { 0 } | op;
        h[1] = 0x80 | 127;
        h[2..10].copy_from_slice(&(produced as u64).to_be_bytes());
        if last {
            self.msg = Msg::None;
        }
        Ok(())
    }

    /// Feeds `input` to the decompressor, appending output to `out` in
    /// steps bounded by what is left of the message limit; `hint` is the
    /// output room of the first step.
    fn inflate(&mut self, d: &mut Decompress, mut input: &[u8], hint: usize) -> io::Result<()> {
        // Output room per call: starts at the hint and doubles, so a highly
        // compressed message needs few calls.
        let mut hint = hint.clamp(64, 256 * 1024);
        loop {
            let left = (self.max + 1).saturating_sub(self.inflated).max(1);
            let room = left.min(hint);
            hint = (hint * 2).min(256 * 1024);
            // Inflated into the buffer's spare capacity as it is: zeroing
            // the room first (8× the input, ~1.6 KB for a 1 KB JSON
            // message) was a memset per message for bytes about to be
            // written over.
            self.out.reserve(room);
            let (in0, out0) = (d.total_in(), d.total_out());
            let status = d.decompress_uninit(
                input,
                &mut self.out.spare_capacity_mut()[..room],
                FlushDecompress::Sync,
            );
            let consumed = (d.total_in() - in0) as usize;
            let produced = (d.total_out() - out0) as usize;
            // SAFETY: the decompressor wrote exactly `produced` bytes (what
            // total_out counts) at the start of the room it was given.
            unsafe { self.out.set_len(self.out.len() + produced) };
            input = &input[consumed..];
            self.inflated += produced;
            if self.inflated > self.max {
                return Err(self.fail(1009, "message too big"));
            }
            match status {
                Err(_) => return Err(self.fail(1007, "invalid compressed data")),
                // A final deflate block: what follows starts a new stream.
                Ok(Status::StreamEnd) => d.reset(false),
                Ok(_) => {}
            }
            if produced < room && input.is_empty() {
                return Ok(());
            }
            if consumed == 0 && produced == 0 {
                return Err(self.fail(1007, "invalid compressed data"));
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Inflating<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = this.failed.take() {
                return Poll::Ready(Err(e));
            }
            if this.eof {
                // Hand a truncated frame to tungstenite as it is: it reports
                // the connection as reset.
                if !this.raw.is_empty() {
                    this.out = this.raw.split();
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            loop {
                match this.step() {
                    Ok(true) if this.out.len() < READ_CHUNK => {}
                    Ok(_) => break,
                    Err(e) => {
                        this.failed = Some(e);
                        break;
                    }
                }
            }
            if !this.out.is_empty() || this.failed.is_some() {
                continue;
            }
            this.raw.reserve(READ_CHUNK);
            let n = match tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, &mut this.raw) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            if n == 0 {
                this.eof = true;
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Inflating<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};
    use tokio::io::AsyncReadExt;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut c = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(data.len() + 64);
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        out.truncate(out.len() - 4);
        out
    }

    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut f = vec![b0];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        f
    }

    /// Runs `wire` through the wrapper; the plain frames it yields, as
    /// (first byte, unmasked payload), or the fault.
    async fn rewrite(wire: Vec<u8>, max: usize) -> Result<Vec<(u8, Vec<u8>)>, (u16, &'static str)> {
        let fault = Fault::default();
        let mut r = Inflating::new(&wire[..], false, max, fault.clone());
        let mut plain = Vec::new();
        if r.read_to_end(&mut plain).await.is_err() {
            return Err(fault.lock().expect("fault set"));
        }
        let mut frames = Vec::new();
        let mut p = &plain[..];
        while !p.is_empty() {
            let len = match p[1] & 0x7f {
                127 => u64::from_be_bytes(p[2..10].try_into().unwrap()) as usize,
                n => n as usize,
            };
            let h = if p[1] & 0x7f == 127 { 14 } else { 6 };
            let mask: [u8; 4] = p[h - 4..h].try_into().unwrap();
            let data = p[h..h + len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i & 3])
                .collect();
            frames.push((p[0], data));
            p = &p[h + len..];
        }
        Ok(frames)
    }

    #[tokio::test]
    async fn compressed_fragments_become_plain_frames() {
        let text = b"hello hello hello hello, compressed world".repeat(20);
        let z = deflate(&text);
        let (a, b) = z.split_at(z.len() / 2);
        let mut wire = frame(0x40 | 0x01, a); // text, RSV1, not final
        wire.extend(frame(0x89, b"ping")); // a ping in between passes through
        wire.extend(frame(0x80, b)); // final continuation
        wire.extend(frame(0x82, b"plain")); // an uncompressed message is untouched
        let frames = rewrite(wire, 1 << 20).await.unwrap();
        let joined: Vec<u8> = frames
            .iter()
            .filter(|(b0, _)| b0 & 0x0f <= 1)
            .flat_map(|(_, d)| d.clone())
            .collect();
        assert_eq!(joined, text);
        assert_eq!(
            frames.first().map(|f| f.0),
            Some(0x01),
            "opcode on the first, no RSV1"
        );
        assert!(frames.iter().any(|f| f.0 == 0x89 && f.1 == b"ping"));
        assert_eq!(
            frames.last().map(|f| (f.0, f.1.as_slice())),
            Some((0x82, &b"plain"[..]))
        );
    }

    /// Runs `wire` through the wrapper: the plain bytes it yields before
    /// failing, and the fault.
    async fn until_fault(wire: Vec<u8>, max: usize) -> (Vec<u8>, Option<(u16, &'static str)>) {
        let fault = Fault::default();
        let mut r = Inflating::new(&wire[..], false, max, fault.clone());
        let mut plain = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = r.read(&mut buf).await {
            plain.extend_from_slice(&buf[..n]);
        }
        let f = *fault.lock();
        (plain, f)
    }

    #[tokio::test]
    async fn a_good_message_before_a_bad_one_is_still_delivered() {
        // Regression: both arrive in one read; the first must not be lost
        // when the second fails the connection.
        let good = b"x".repeat(1024);
        let mut wire = frame(0xc1, &deflate(&good));
        wire.extend(frame(0xc1, &deflate(&b"y".repeat(1025))));
        let (plain, fault) = until_fault(wire, 1024).await;
        assert_eq!(fault, Some((1009, "message too big")));
        assert_eq!(&plain[..2], &[0x81, 0x80 | 127]);
        assert_eq!(&plain[14..], &good[..]);
    }

    #[tokio::test]
    async fn a_bad_message_fails_without_waiting_for_more_input() {
        // Regression: the socket stays open after the bad frame; the
        // failure must come out of the read at once, not after more bytes.
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let fault = Fault::default();
        let mut r = Inflating::new(server, false, 1 << 20, fault.clone());
        tokio::io::AsyncWriteExt::write_all(&mut client, &frame(0xc1, &[0xff; 40]))
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(std::time::Duration::from_secs(2), r.read(&mut buf)).await;
        assert!(matches!(read, Ok(Err(_))), "the read fails at once");
        assert_eq!(*fault.lock(), Some((1007, "invalid compressed data")));
    }

    #[tokio::test]
    async fn bombs_and_garbage_fail_cleanly() {
        // 1 MiB of zeros deflates to about a kilobyte; the limit is 64 KiB.
        let bomb = deflate(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 2048);
        assert_eq!(
            rewrite(frame(0xc2, &bomb), 64 * 1024).await.err(),
            Some((1009, "message too big"))
        );
        assert_eq!(
            rewrite(frame(0xc2, &[0xff; 40]), 1 << 20).await.err(),
            Some((1007, "invalid compressed data"))
        );
    }
}
