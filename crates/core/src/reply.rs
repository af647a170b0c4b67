//! A response produced by the embedder, checked before it reaches a socket.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::error::{Error, ErrorKind};

/// Status, headers and a whole body.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Builds a reply from a header block `name\nvalue\nname\nvalue…` (the
    /// form the JS side produces with one string join, so headers cross the
    /// boundary as a single string).
    ///
    /// ```
    /// let r = httpy_core::Reply::from_parts(201, "content-type\ntext/plain\nx-a\n1", "hi".into()).unwrap();
    /// assert_eq!(r.status.as_u16(), 201);
    /// assert_eq!(r.headers["x-a"], "1");
    /// ```
    pub fn from_parts(status: u16, header_block: &str, body: Bytes) -> Result<Self, Error> {
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.as_u16() >= 200 || s.as_u16() == 101)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidResponse,
                    format!("invalid status code {status}: must be an integer from 200 to 999"),
                )
            })?;
        let mut headers = HeaderMap::new();
        if !header_block.is_empty() {
            let mut parts = header_block.split('\n');
            while let Some(name) = parts.next() {
                let value = parts.next().ok_or_else(|| {
                    Error::new(ErrorKind::InvalidResponse, "header block has a name without a value")
                })?;
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    Error::new(ErrorKind::InvalidResponse, format!("invalid header name {name:?}"))
                })?;
                let value = HeaderValue::from_str(value).map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidResponse,
                        format!("invalid value for header {name}: {value:?}"),
                    )
                })?;
                headers.append(name, value);
            }
        }
        Ok(Self {
            status,
            headers,
            body,
        })
    }

    pub fn text(status: StatusCode, text: &'static str) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Self {
            status,
            headers,
            body: Bytes::from_static(text.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_status_and_headers() {
        assert!(Reply::from_parts(99, "", Bytes::new()).is_err());
        assert!(Reply::from_parts(1000, "", Bytes::new()).is_err());
        assert!(Reply::from_parts(200, "bad name\nx", Bytes::new()).is_err());
        assert!(Reply::from_parts(200, "x-a\nline\rbreak", Bytes::new()).is_err());
        assert!(Reply::from_parts(200, "x-a", Bytes::new()).is_err());
        let ok = Reply::from_parts(200, "set-cookie\na=1\nset-cookie\nb=2", Bytes::new()).unwrap();
        assert_eq!(ok.headers.get_all("set-cookie").iter().count(), 2);
    }
}
