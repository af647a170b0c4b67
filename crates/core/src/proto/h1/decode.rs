//! Request body framing for the own HTTP/1.1 driver: a body of known
//! length (`Content-Length`) or a chunked one (RFC 9112 §7.1), cut out of
//! the connection's read buffer without copying the data.
//!
//! The chunked decoder is strict where leniency breeds request smuggling:
//! a chunk size is hex digits only (at most 16 of them), the size and data
//! lines end in CRLF (a bare LF there is an error), and extensions and
//! trailers are bounded and discarded (a bare LF in a trailer is part of
//! it, as in hyper: `docs/limits.md`). It is a byte-at-a-time state machine for the framing and
//! a slice for the data, so a body split anywhere across reads decodes the
//! same.

use bytes::{Buf, Bytes, BytesMut};

/// Bytes of chunk extensions (per chunk line) and of trailers (in all)
/// accepted before the body is refused.
const MAX_EXTENSION: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

/// What [`Decoder::decode`] found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Body bytes (never empty).
    Data(Bytes),
    /// The buffer ends inside the framing: read more.
    NeedMore,
    /// The body is complete.
    Done,
}

/// Why a body cannot be decoded; the connection cannot be reused after it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) &'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

#[derive(Debug)]
pub(crate) enum Decoder {
    /// Bytes still to come.
    Length(u64),
    Chunked(Chunked),
}

#[derive(Debug)]
pub(crate) struct Chunked {
    state: State,
    /// Data bytes left in the current chunk.
    left: u64,
    digits: u8,
    /// Extension or trailer bytes seen (bounded).
    extra: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    /// After the size: spaces, then `;` or CR.
    AfterSize,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

impl Decoder {
    pub(crate) fn chunked() -> Self {
        Decoder::Chunked(Chunked {
            state: State::Size,
            left: 0,
            digits: 0,
            extra: 0,
        })
    }

    pub(crate) fn is_done(&self) -> bool {
        match self {
            Decoder::Length(n) => *n == 0,
            Decoder::Chunked(c) => c.state == State::Done,
        }
    }

    /// The exact length still to come, when it is known.
    pub(crate) fn exact_left(&self) -> Option<u64> {
        match self {
            Decoder::Length(n) => Some(*n),
            Decoder::Chunked(_) => None,
        }
    }

    /// Takes the next piece of body from the front of `buf`.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, DecodeError> {
        match self {
            Decoder::Length(0) => Ok(Decoded::Done),
            Decoder::Length(left) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = (*left).min(buf.len() as u64) as usize;
                *left -= n as u64;
                // No copy: the data keeps the read buffer's allocation
                // alive until the consumer drops it.
                Ok(Decoded::Data(buf.split_to(n).freeze()))
            }
            Decoder::Chunked(c) => c.decode(buf),
        }
    }

    /// Discards whatever body is already buffered; true once the body is
    /// complete (the connection may then serve its next request).
    pub(crate) fn skip_buffered(&mut self, buf: &mut BytesMut) -> Result<bool, DecodeError> {
        loop {
            match self.decode(buf)? {
                Decoded::Data(_) => {}
                Decoded::NeedMore => return Ok(false),
                Decoded::Done => return Ok(true),
            }
        }
    }
}

impl Chunked {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, DecodeError> {
        loop {
            if self.state == State::Done {
                return Ok(Decoded::Done);
            }
            if self.state == State::Data {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = self.left.min(buf.len() as u64) as usize;
                self.left -= n as u64;
                if self.left == 0 {
                    self.state = State::DataCr;
                }
                return Ok(Decoded::Data(buf.split_to(n).freeze()));
            }
            let Some(&b) = buf.first() else {
                return Ok(Decoded::NeedMore);
            };
            buf.advance(1);
            self.step(b)?;
        }
    }

    /// One byte of framing.
    fn step(&mut self, b: u8) -> Result<(), DecodeError> {
        use State::*;
        self.state = match (self.state, b) {
            (Size, _) if b.is_ascii_hexdigit() => {
                self.digits += 1;
                if self.digits > 16 {
                    return Err(DecodeError("chunk size too large"));
                }
                let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                self.left = self.left << 4 | d;
                Size
            }
            (Size, _) if self.digits == 0 => return Err(DecodeError("invalid chunk size")),
            (Size | AfterSize, b' ' | b'\t') => AfterSize,
            (Size | AfterSize, b';') => Extension,
            (Size | AfterSize, b'\r') => SizeLf,
            (Size | AfterSize, _) => return Err(DecodeError("invalid chunk size line")),
            (Extension, b'\r') => SizeLf,
            (Extension, b'\n') => return Err(DecodeError("bare LF in a chunk extension")),
            (Extension, _) => {
                self.extra += 1;
                if self.extra > MAX_EXTENSION {
                    return Err(DecodeError("chunk extensions too long"));
                }
                Extension
            }
            (SizeLf, b'\n') => {
                self.digits = 0;
                self.extra = 0;
                if self.left == 0 {
                    TrailerStart
                } else {
                    Data
                }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size,
            (TrailerStart, b'\r') => EndLf,
            // In the trailer section a bare LF is an ordinary byte of the
            // (discarded) field: only CRLF ends a line, as in hyper. What
            // follows is trailer up to an empty line, never a request.
            (Trailer, b'\r') => TrailerLf,
            (TrailerStart | Trailer, _) => {
                self.extra += 1;
                if self.extra > MAX_TRAILERS {
                    return Err(DecodeError("trailers too long"));
                }
                Trailer
            }
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            _ => return Err(DecodeError("invalid chunked framing")),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the body, or
    /// the error, and what was left after the body.
    fn run(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), DecodeError> {
        let mut d = Decoder::chunked();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => body.extend_from_slice(&b),
                Decoded::Done => return Ok((body, buf.to_vec())),
                Decoded::NeedMore => {
                    if fed == input.len() {
                        return Err(DecodeError("truncated"));
                    }
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_the_same_however_they_are_split() {
        let input =
            b"5\r\nhello\r\n6;ext=1\r\n world\r\nA \r\n0123456789\r\n0\r\nx-t: 1\r\n\r\nGET";
        for step in [1, 2, 3, 7, 100] {
            let (body, rest) = run(input, step).unwrap();
            assert_eq!(body, b"hello world0123456789", "step {step}");
            assert_eq!(rest, b"GET"[..rest.len()].to_vec(), "step {step}");
        }
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..], // bare LF after the size
            b"5\r\nhello\n0\r\n\r\n",      // bare LF after the data
            b"5\r\nhelloX\r\n0\r\n\r\n",   // data longer than the size
            b"-5\r\nhello\r\n0\r\n\r\n",   // sign
            b"0x5\r\nhello\r\n0\r\n\r\n",  // prefix
            b"\r\n",                       // no size
            b"11111111111111111\r\n",      // 17 digits
            b"5 x\r\nhello\r\n0\r\n\r\n",  // junk after the size
        ] {
            assert!(run(bad, 1).is_err(), "{:?}", String::from_utf8_lossy(bad));
            assert!(run(bad, 64).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_bare_lf_in_the_trailers_is_part_of_them() {
        // The request after it is read as trailer lines, never served.
        let next = "GET /s HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
        for body in ["5\r\nhello\r\n0\r\n\n", "5\r\nhello\r\n0\r\nx-t: 1\n\r\n"] {
            let input = format!("{body}{next}");
            let (got, rest) = run(input.as_bytes(), 1000).unwrap();
            assert_eq!(got, b"hello");
            assert_eq!(rest, b"NEXT");
        }
    }

    #[test]
    fn the_largest_size_does_not_overflow() {
        let mut d = Decoder::chunked();
        let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::Data(Bytes::from_static(b"ab")))
        );
        assert_eq!(d.decode(&mut buf), Ok(Decoded::NeedMore));
    }

    #[test]
    fn long_extensions_and_trailers_are_bounded() {
        let mut ext = b"1;".to_vec();
        ext.extend(std::iter::repeat_n(b'a', MAX_EXTENSION + 1));
        assert!(run(&ext, 4096).is_err());
        let mut tr = b"0\r\n".to_vec();
        for _ in 0..(MAX_TRAILERS / 7 + 1) {
            tr.extend_from_slice(b"x-a: 12\r\n");
        }
        tr.extend_from_slice(b"\r\n");
        assert!(run(&tr, 4096).is_err());
    }

    #[test]
    fn length_bodies_stop_at_their_length() {
        let mut d = Decoder::Length(5);
        let mut buf = BytesMut::from(&b"helGET"[..3]);
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::Data(Bytes::from_static(b"hel")))
        );
        assert_eq!(d.decode(&mut buf), Ok(Decoded::NeedMore));
        buf.extend_from_slice(b"loGET");
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::Data(Bytes::from_static(b"lo")))
        );
        assert_eq!(d.decode(&mut buf), Ok(Decoded::Done));
        assert_eq!(&buf[..], b"GET");
    }
}
