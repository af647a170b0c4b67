//! `multipart/form-data` parsed in the core while the body streams, for
//! routes that ask for it: the embedder gets parts (name, file name, type,
//! then the part's bytes chunk by chunk) instead of raw body bytes, and the
//! limits on parts are enforced here, before any of it reaches JavaScript.
//!
//! The parser is the `multer` crate (the one axum's `Multipart` extractor
//! uses; maintained, streaming, no whole-body buffering), not a hand-written
//! one. Parts travel through the upload channel of `body::upload` as framed
//! messages, so the embedder's read path and its backpressure are the same:
//!
//! ```text
//! u8 kind | u32 payload length | payload
//! kind 1 (part head): u16 len + name | u8 has file name | u16 len + file name | u16 len + content type
//! kind 2 (data):      the part's next bytes
//! kind 3 (part end):  empty
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::BodyDataStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::upload::{Progress, PumpEnd, UploadError, UploadSender};

pub const FRAME_HEAD: u8 = 1;
pub const FRAME_DATA: u8 = 2;
pub const FRAME_END: u8 = 3;

/// How a route's request bodies stream (`body::upload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyStreaming {
    /// Raw bytes, chunk by chunk.
    Raw,
    /// `multipart/form-data` bodies as parts; other bodies as `Raw`.
    Multipart(MultipartLimits),
    /// Raw bytes, but a `multipart/form-data` body waits (unread) for the
    /// embedder to take it, as raw bytes or as parts with these limits:
    /// a fetch handler's `request.formData()` gets the parser and its
    /// limits, its `request.body` the bytes as they came.
    RawOrParts(MultipartLimits),
}

/// Limits of a multipart route. Going past a size or count limit is a 413
/// naming the limit; a malformed body is a 400 naming the problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartLimits {
    /// Parts (fields and files) in one body.
    pub max_parts: u32,
    /// Bytes of one part without a file name (a plain field).
    pub max_field_size: u64,
    /// Bytes of one file.
    pub max_file_size: u64,
    /// Bytes of one part's header lines (names, values and their
    /// separators): checked while they are read (at most this and one
    /// chunk of the body are buffered), and exactly once they are parsed.
    pub max_header_size: u64,
}

impl Default for MultipartLimits {
    fn default() -> Self {
        Self {
            max_parts: 1000,
            max_field_size: 1024 * 1024,
            max_file_size: u64::MAX,
            max_header_size: 16 * 1024,
        }
    }
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub(crate) fn boundary(content_type: Option<&http::HeaderValue>) -> Option<String> {
    let ct = content_type?.to_str().ok()?;
    if !ct
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return None;
    }
    multer::parse_boundary(ct).ok()
}

fn frame(kind: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + payload.len());
    b.put_u8(kind);
    b.put_u32_le(payload.len() as u32);
    b.put_slice(payload);
    b.freeze()
}

fn put_str16(b: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    b.put_u16_le(s.len() as u16);
    b.put_slice(s);
}

fn head(name: &str, file_name: Option<&str>, content_type: &str) -> Bytes {
    let mut p = BytesMut::new();
    put_str16(&mut p, name);
    p.put_u8(u8::from(file_name.is_some()));
    put_str16(&mut p, file_name.unwrap_or(""));
    put_str16(&mut p, content_type);
    frame(FRAME_HEAD, &p)
}

fn limit(message: String) -> UploadError {
    UploadError::Refused {
        status: 413,
        code: "ERR_HTTPY_MULTIPART_LIMIT",
        message,
    }
}

fn head_too_large(part: u32, max: u64) -> UploadError {
    limit(format!(
        "multipart part {part} has headers over maxHeaderSize ({max} bytes)"
    ))
}

/// What the body stream counts for `maxHeaderSize` while a part's header
/// lines are being read (`pump`).
#[derive(Default)]
struct HeadWatch {
    /// `next_field` is waiting: chunks pulled now belong to a header.
    reading: AtomicBool,
    /// Bytes pulled since `next_field` started.
    pulled: AtomicU64,
    /// A chunk was refused for going past the limit.
    over: AtomicBool,
}

/// A parser error: the body's own size limit is a 413, the rest a 400.
fn parse_error(e: multer::Error, max_body: u64) -> UploadError {
    match e {
        multer::Error::StreamSizeExceeded { .. } => UploadError::TooLarge(max_body),
        multer::Error::StreamReadFailed(e) => UploadError::Broken(e.to_string()),
        other => UploadError::Refused {
            status: 400,
            code: "ERR_HTTPY_MULTIPART_MALFORMED",
            message: format!("malformed multipart body: {other}"),
        },
    }
}

/// Parses `body` as `multipart/form-data` with `boundary`, sending the
/// parts to `tx` (waiting while the consumer is behind, so the socket is
/// not read meanwhile).
pub(crate) async fn pump<B>(
    body: B,
    boundary: String,
    limits: MultipartLimits,
    max_body: u64,
    mut tx: UploadSender,
    progress: &Progress,
) -> PumpEnd
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    // `maxHeaderSize` while a part's header lines are read: multer keeps
    // what it has read of them in memory until it finds their end, so a
    // header without a line end would otherwise be buffered up to
    // `maxBodySize`. While `next_field` waits, every chunk handed to the
    // parser is counted, and one more is refused once those before it
    // exceed the limit (with the boundary line and its CRLFs): at most the
    // limit and one chunk are ever buffered. Cost: two relaxed atomics per
    // chunk (the counter is shared with this task only).
    let watch = Arc::new(HeadWatch::default());
    let head_room = limits.max_header_size + boundary.len() as u64 + 8;
    let seen = watch.clone();
    // The protocol layer's error becomes text at once (it need not be an
    // `Error`, nor `Send`).
    let stream = BodyDataStream::new(body).map(move |r| {
        let chunk = r.map_err(|e| std::io::Error::other(e.to_string()))?;
        if seen.reading.load(Ordering::Relaxed) {
            let before = seen.pulled.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if before > head_room {
                seen.over.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other("part header over maxHeaderSize"));
            }
        }
        Ok(chunk)
    });
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(max_body));
    let mut parts = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut count = 0u32;
    let fail = |e: UploadError| {
        tx.fail_now(e.clone());
        PumpEnd::Failed(e)
    };
    loop {
        watch.pulled.store(0, Ordering::Relaxed);
        watch.reading.store(true, Ordering::Relaxed);
        let next = parts.next_field().await;
        watch.reading.store(false, Ordering::Relaxed);
        let mut field = match next {
            Ok(Some(f)) => f,
            Ok(None) => {
                tx.complete = true;
                return PumpEnd::Done;
            }
            Err(_) if watch.over.load(Ordering::Relaxed) => {
                return fail(head_too_large(count + 1, limits.max_header_size))
            }
            Err(e) => return fail(parse_error(e, max_body)),
        };
        count += 1;
        if count > limits.max_parts {
            return fail(limit(format!(
                "multipart body has more than {} parts (maxParts)",
                limits.max_parts
            )));
        }
        let head_size: u64 = field
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
            .sum();
        if head_size > limits.max_header_size {
            return fail(head_too_large(count, limits.max_header_size));
        }
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let content_type = field
            .content_type()
            .map(|m| m.to_string())
            .unwrap_or_default();
        let (max, which) = match file_name {
            Some(_) => (limits.max_file_size, "maxFileSize"),
            None => (limits.max_field_size, "maxFieldSize"),
        };
        if !tx
            .send(Ok(head(&name, file_name.as_deref(), &content_type)))
            .await
        {
            return PumpEnd::Done;
        }
        let mut size = 0u64;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    size += chunk.len() as u64;
                    if size > max {
                        return fail(limit(format!(
                            "multipart part {name:?} exceeds {which} ({max} bytes)"
                        )));
                    }
                    if !tx.send(Ok(frame(FRAME_DATA, &chunk))).await {
                        return PumpEnd::Done;
                    }
                    progress.mark();
                }
                Ok(None) => break,
                Err(e) => return fail(parse_error(e, max_body)),
            }
        }
        if !tx.send(Ok(frame(FRAME_END, &[]))).await {
            return PumpEnd::Done;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::upload::{upload_channel, UploadRead};
    use http_body_util::Full;
    use tokio::time::Instant;

    const BODY: &str = "--XB\r\ncontent-disposition: form-data; name=\"a\"\r\n\r\none\r\n--XB\r\ncontent-disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\ncontent-type: text/plain\r\n\r\nfile body\r\n--XB--\r\n";

    async fn run(body: &'static str, limits: MultipartLimits) -> (PumpEnd, Vec<u8>) {
        let (tx, mut rx) = upload_channel();
        let progress = Progress::new(Instant::now());
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                match rx.try_read() {
                    UploadRead::Chunk(c) => out.extend_from_slice(&c),
                    UploadRead::Pending => {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await
                    }
                    UploadRead::End | UploadRead::Failed(_) => return out,
                }
            }
        });
        let end = pump(
            Full::new(Bytes::from_static(body.as_bytes())),
            "XB".into(),
            limits,
            1 << 20,
            tx,
            &progress,
        )
        .await;
        (end, reader.await.unwrap())
    }

    #[tokio::test]
    async fn parts_become_frames() {
        let (end, out) = run(BODY, MultipartLimits::default()).await;
        assert_eq!(end, PumpEnd::Done);
        let mut want = Vec::new();
        want.extend_from_slice(&head("a", None, ""));
        want.extend_from_slice(&frame(FRAME_DATA, b"one"));
        want.extend_from_slice(&frame(FRAME_END, b""));
        want.extend_from_slice(&head("f", Some("x.txt"), "text/plain"));
        want.extend_from_slice(&frame(FRAME_DATA, b"file body"));
        want.extend_from_slice(&frame(FRAME_END, b""));
        assert_eq!(out, want);
    }

    #[tokio::test]
    async fn limits_and_malformed_bodies_are_named() {
        let parts = MultipartLimits {
            max_parts: 1,
            ..Default::default()
        };
        let (end, _) = run(BODY, parts).await;
        assert!(
            matches!(end, PumpEnd::Failed(UploadError::Refused { status: 413, ref message, .. }) if message.contains("maxParts"))
        );
        let files = MultipartLimits {
            max_file_size: 4,
            ..Default::default()
        };
        let (end, _) = run(BODY, files).await;
        assert!(
            matches!(end, PumpEnd::Failed(UploadError::Refused { status: 413, ref message, .. }) if message.contains("\"f\" exceeds maxFileSize (4 bytes)"))
        );
        let fields = MultipartLimits {
            max_field_size: 2,
            ..Default::default()
        };
        let (end, _) = run(BODY, fields).await;
        assert!(
            matches!(end, PumpEnd::Failed(UploadError::Refused { status: 413, ref message, .. }) if message.contains("maxFieldSize"))
        );
        let heads = MultipartLimits {
            max_header_size: 50,
            ..Default::default()
        };
        let (end, _) = run(BODY, heads).await;
        assert!(
            matches!(end, PumpEnd::Failed(UploadError::Refused { status: 413, ref message, .. }) if message == "multipart part 2 has headers over maxHeaderSize (50 bytes)")
        );
        let (end, _) = run("--XB\r\ngarbage", MultipartLimits::default()).await;
        assert!(matches!(
            end,
            PumpEnd::Failed(UploadError::Refused { status: 400, .. })
        ));
    }

    #[tokio::test]
    async fn a_header_without_a_line_end_is_refused_while_it_is_read() {
        // 10 MB of header value with no line end, 64 KiB at a time: the
        // parser must give up after about maxHeaderSize, not buffer it all.
        use http_body_util::StreamBody;
        use std::sync::atomic::AtomicUsize;
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        let start = futures_util::stream::iter([Bytes::from_static(
            b"--XB\r\ncontent-disposition: form-data; name=\"a\"\r\nx-long: ",
        )]);
        let endless = futures_util::stream::repeat(Bytes::from(vec![b'a'; 64 * 1024])).take(160);
        let body = StreamBody::new(start.chain(endless).map(move |b| {
            counter.fetch_add(b.len(), Ordering::Relaxed);
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(b))
        }));
        let (tx, _rx) = upload_channel();
        let progress = Progress::new(Instant::now());
        let end = pump(
            body,
            "XB".into(),
            MultipartLimits::default(),
            u64::MAX,
            tx,
            &progress,
        )
        .await;
        assert_eq!(
            end,
            PumpEnd::Failed(head_too_large(1, 16 * 1024)),
            "refused as over maxHeaderSize"
        );
        let read = pulled.load(Ordering::Relaxed);
        assert!(read <= 16 * 1024 + 3 * 64 * 1024, "read {read} bytes of it");
    }

    #[test]
    fn only_form_data_has_a_boundary() {
        let v = |s: &'static str| http::HeaderValue::from_static(s);
        assert_eq!(
            boundary(Some(&v("multipart/form-data; boundary=abc"))),
            Some("abc".into())
        );
        assert_eq!(boundary(Some(&v("multipart/mixed; boundary=abc"))), None);
        assert_eq!(boundary(Some(&v("text/plain"))), None);
        assert_eq!(boundary(None), None);
    }
}
