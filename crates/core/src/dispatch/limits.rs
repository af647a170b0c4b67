//! The limits a request must pass before the embedder sees it: unambiguous
//! HTTP/1 framing, the head size below the protocol layers' own bound, and
//! the body size while it is read.

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::Request;
use http_body_util::BodyExt;

/// An HTTP/1 request whose framing or target is ambiguous: `Transfer-Encoding`
/// together with `Content-Length`, repeated or non-`chunked` framing headers,
/// or an HTTP/1.1 request without exactly one `Host` (RFC 9112 §3.2, §6.1,
/// §6.3). These are what request smuggling is built from, so they are
/// refused with 400 and a close instead of being interpreted.
pub(crate) fn ambiguous_h1<B>(req: &Request<B>) -> bool {
    let version = req.version();
    if version != http::Version::HTTP_11 && version != http::Version::HTTP_10 {
        return false;
    }
    let h = req.headers();
    if version == http::Version::HTTP_11 {
        let mut hosts = h.get_all(HOST).iter();
        if hosts.next().is_none() || hosts.next().is_some() {
            return true;
        }
    }
    let mut te = h.get_all(TRANSFER_ENCODING).iter();
    if let Some(first) = te.next() {
        return te.next().is_some()
            || h.contains_key(CONTENT_LENGTH)
            || !first.as_bytes().eq_ignore_ascii_case(b"chunked");
    }
    let mut cl = h.get_all(CONTENT_LENGTH).iter();
    cl.next().is_some() && cl.next().is_some()
}

/// The smallest head limit hyper applies itself (its minimum read buffer).
pub(crate) const MIN_PROTOCOL_HEAD: usize = 8192;

/// Approximate size of the request head on the wire.
pub(crate) fn head_size<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    req.headers()
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

pub(crate) enum BodyError {
    TooLarge,
    Broken,
}

pub(crate) async fn read_body<B>(
    mut body: B,
    max: u64,
    declared: Option<u64>,
) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let mut first: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not exposed
        };
        total += data.len() as u64;
        if total > max {
            return Err(BodyError::TooLarge);
        }
        // A body that arrives in one piece is passed on without a copy.
        match (&mut first, &mut buf) {
            (None, None) => first = Some(data),
            (Some(f), None) => {
                let cap = declared.unwrap_or(0).max((f.len() + data.len()) as u64 * 2);
                let mut b = BytesMut::with_capacity(cap.min(max) as usize);
                b.extend_from_slice(f);
                b.extend_from_slice(&data);
                first = None;
                buf = Some(b);
            }
            (_, Some(b)) => b.extend_from_slice(&data),
        }
    }
    Ok(match (first, buf) {
        (Some(f), _) => f,
        (_, Some(b)) => b.freeze(),
        _ => Bytes::new(),
    })
}
