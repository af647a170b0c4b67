//! Response head fields the HTTP/2 and HTTP/3 drivers settle themselves
//! (and HTTPy's own HTTP/1.1 driver writes the same `Date`): the connection-specific fields those
//! protocols forbid are dropped, `Date` is added (RFC 9110 §6.6.1: an
//! origin server with a clock must send it) and `Content-Length` is set
//! from the body, a HEAD answer's as HTTP/1.1's `encode.rs` sets it.

use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, StatusCode};
use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Header fields HTTP/2 and HTTP/3 forbid (RFC 9113 §8.2.2, RFC 9114
/// §4.2); HTTP/1.x-minded code (ours included: `connection: close` after a
/// 413) may have set them.
pub(crate) fn strip_connection_headers(headers: &mut HeaderMap) {
    for name in [CONNECTION, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

thread_local! {
    /// The `Date` value of the current second, per thread: formatting it
    /// costs ~100 ns, a clock read and a comparison cost a few.
    static DATE_NOW: RefCell<(u64, HeaderValue)> =
        const { RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
}

/// Adds `Date` (the current second) unless the response has one.
pub(crate) fn add_date(headers: &mut HeaderMap) {
    if headers.contains_key(DATE) {
        return;
    }
    let value = date_now();
    if !value.is_empty() {
        headers.insert(DATE, value);
    }
}

/// The `Date` value of the current second (empty if the clock cannot be
/// formatted). A clone of a shared value: an atomic increment.
pub(crate) fn date_now() -> HeaderValue {
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    DATE_NOW.with(|cell| {
        let mut c = cell.borrow_mut();
        if c.0 != secs {
            let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
            if let Ok(v) = HeaderValue::from_str(&text) {
                *c = (secs, v);
            }
        }
        c.1.clone()
    })
}

/// Sets `Content-Length` for an HTTP/2 or HTTP/3 answer whose body has
/// `exact` bytes when known. 204 and 304 answers are left as they are. A
/// HEAD answer's length is what a GET would carry (RFC 9110 §8.6,
/// §9.3.2): one already set (the core's for a file or a stored answer, a
/// handler's checked in `route.rs`) is kept, else the length of a body the
/// handler gave anyway; an empty body says nothing about the GET, so no
/// field, as on HTTP/1.1.
pub(crate) fn set_content_length(
    headers: &mut HeaderMap,
    status: StatusCode,
    head: bool,
    exact: Option<u64>,
) {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return;
    }
    let Some(n) = exact else { return };
    if head && (n == 0 || headers.contains_key(CONTENT_LENGTH)) {
        return;
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn length(
        head: bool,
        status: u16,
        set: Option<&'static str>,
        exact: Option<u64>,
    ) -> Option<String> {
        let mut h = HeaderMap::new();
        if let Some(v) = set {
            h.insert(CONTENT_LENGTH, HeaderValue::from_static(v));
        }
        set_content_length(&mut h, StatusCode::from_u16(status).unwrap(), head, exact);
        assert!(h.get_all(CONTENT_LENGTH).iter().count() <= 1);
        h.get(CONTENT_LENGTH)
            .map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn head_answers_keep_a_set_length_and_invent_none() {
        let s = |v: &str| Some(v.to_string());
        // GET: the body's size wins over anything set.
        assert_eq!(length(false, 200, Some("99"), Some(5)), s("5"));
        assert_eq!(length(false, 200, None, Some(0)), s("0"));
        assert_eq!(length(false, 200, None, None), None);
        // HEAD: a set length is kept, even beside an empty body.
        assert_eq!(length(true, 200, Some("1234"), Some(0)), s("1234"));
        // HEAD with nothing set: a body given anyway says its size; an
        // empty one says nothing.
        assert_eq!(length(true, 200, None, Some(5)), s("5"));
        assert_eq!(length(true, 200, None, Some(0)), None);
        assert_eq!(length(true, 200, None, None), None);
        // 204 and 304 are left alone.
        assert_eq!(length(false, 204, None, Some(0)), None);
        assert_eq!(length(true, 304, Some("7"), Some(0)), s("7"));
    }

    #[test]
    fn date_is_added_once_and_kept_when_set() {
        let mut h = HeaderMap::new();
        add_date(&mut h);
        let v = h.get(DATE).unwrap().to_str().unwrap().to_string();
        let parsed = httpdate::parse_http_date(&v).unwrap();
        let age = SystemTime::now().duration_since(parsed).unwrap_or_default();
        assert!(age < Duration::from_secs(3), "{v}");
        let mut set = HeaderMap::new();
        set.insert(
            DATE,
            HeaderValue::from_static("Tue, 01 Jan 2030 00:00:00 GMT"),
        );
        add_date(&mut set);
        assert_eq!(set[DATE], "Tue, 01 Jan 2030 00:00:00 GMT");
        assert_eq!(set.get_all(DATE).iter().count(), 1);
    }

    #[test]
    fn connection_fields_are_dropped() {
        let mut h = HeaderMap::new();
        for (k, v) in [("connection", "close"), ("keep-alive", "5"), ("x-a", "1")] {
            h.insert(
                http::HeaderName::from_static(k),
                HeaderValue::from_static(v),
            );
        }
        strip_connection_headers(&mut h);
        assert_eq!(h.len(), 1);
    }
}
