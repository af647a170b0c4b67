//! The content encoders (gzip, brotli, zstd) a response body is compressed
//! with, whole or chunk by chunk. Kept apart from the decision whether to
//! compress (`respond::compress`) so that the body type, which drives a
//! streaming encoder, depends on nothing above it.

use bytes::Bytes;
use std::io::Write;

use crate::error::BoxError;

/// A content coding HTTPy can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Br,
    Zstd,
}

impl Coding {
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// A streaming encoder.
pub(crate) enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    pub(crate) fn new(c: Coding, level: u32) -> Result<Self, BoxError> {
        Ok(match c {
            Coding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level),
            )),
            Coding::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                level,
                22,
            ))),
            Coding::Zstd => {
                Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), level as i32)?)
            }
        })
    }

    /// Compresses one chunk and flushes, so a stream's data is not held
    /// back waiting for more input.
    pub(crate) fn write_chunk(&mut self, data: &[u8]) -> Result<Bytes, BoxError> {
        let out = match self {
            Encoder::Gzip(e) => {
                e.write_all(data)?;
                e.flush()?;
                std::mem::take(e.get_mut())
            }
            Encoder::Br(e) => {
                e.write_all(data)?;
                e.flush()?;
                std::mem::take(e.get_mut())
            }
            Encoder::Zstd(e) => {
                e.write_all(data)?;
                e.flush()?;
                std::mem::take(e.get_mut())
            }
        };
        Ok(Bytes::from(out))
    }

    pub(crate) fn finish(self) -> Result<Bytes, BoxError> {
        Ok(Bytes::from(match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Br(e) => e.into_inner(),
            Encoder::Zstd(e) => e.finish()?,
        }))
    }
}

/// Compresses a whole body in one go.
///
/// ```
/// let z = httpy_core::compress_all(httpy_core::Coding::Gzip, 5, b"hello hello hello").unwrap();
/// assert_eq!(&z[..2], &[0x1f, 0x8b]);
/// ```
pub fn compress_all(c: Coding, level: u32, data: &[u8]) -> Result<Bytes, BoxError> {
    let mut e = Encoder::new(c, level)?;
    match &mut e {
        Encoder::Gzip(w) => w.write_all(data)?,
        Encoder::Br(w) => w.write_all(data)?,
        Encoder::Zstd(w) => w.write_all(data)?,
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn streaming_encoders_round_trip() {
        let text = "the quick brown fox ".repeat(5000);
        for c in [Coding::Gzip, Coding::Br, Coding::Zstd] {
            let mut e = Encoder::new(c, 3).unwrap();
            let mut out = Vec::new();
            for chunk in text.as_bytes().chunks(7000) {
                out.extend_from_slice(&e.write_chunk(chunk).unwrap());
            }
            out.extend_from_slice(&e.finish().unwrap());
            let mut back = Vec::new();
            match c {
                Coding::Gzip => {
                    flate2::read::GzDecoder::new(&out[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Coding::Br => {
                    brotli::Decompressor::new(&out[..], 4096)
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Coding::Zstd => back = zstd::decode_all(&out[..]).unwrap(),
            }
            assert_eq!(back, text.as_bytes(), "{c:?}");
            assert!(out.len() < text.len() / 10);
        }
    }
}
