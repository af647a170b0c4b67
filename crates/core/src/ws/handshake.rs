//! The opening handshake (RFC 6455 section 4): checking the client's
//! request, refusing plain requests to WebSocket-only paths, and switching
//! an accepted request to a connection task.

use bytes::Bytes;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::deflate::negotiate;
use super::driver::{report_close, run, WsEnv};
use crate::body::ResBody;
use crate::respond::plain;

/// Answers the handshake key (RFC 6455 section 4.2.2).
pub(crate) fn accept_key(key: &[u8]) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key)
}

/// The method name under which WebSocket routes live in the route table.
pub const ROUTE_METHOD: &str = "WEBSOCKET";

/// `426` for a plain request to a path that only has a WebSocket route.
pub(crate) fn upgrade_required() -> Response<ResBody> {
    let mut res = plain(
        StatusCode::UPGRADE_REQUIRED,
        "Upgrade Required: this path speaks WebSocket",
    );
    res.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    res
}

/// What the switch needs from an acceptable upgrade request.
pub(crate) struct Handshake {
    key: String,
    /// The client's `Sec-WebSocket-Extensions` values, joined.
    extensions: String,
}

/// Checks the client's half of the opening handshake (RFC 6455 section
/// 4.2.1) and returns its key and offers, or the response refusing it.
pub(crate) fn check_handshake(headers: &HeaderMap) -> Result<Handshake, Box<Response<ResBody>>> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    if !connection_upgrade {
        return Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            "Bad Request: missing Connection: upgrade",
        )));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        let mut res = plain(
            StatusCode::UPGRADE_REQUIRED,
            "Upgrade Required: WebSocket version 13",
        );
        res.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(Box::new(res));
    }
    // A key is 16 random bytes in base64: 24 characters ending in "==".
    match headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
    {
        Some(k) if k.len() == 24 && k.ends_with("==") => Ok(Handshake {
            key: k.to_string(),
            extensions: headers
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(","),
        }),
        _ => Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            "Bad Request: invalid Sec-WebSocket-Key",
        ))),
    }
}

/// Builds the `101` response for an accepted upgrade and starts the
/// connection's task, which runs once hyper hands the transport over and
/// holds the connection's `maxConnections` slot (`slot`) until it ends.
pub(crate) fn switch(
    shared: &Arc<WsEnv>,
    id: u32,
    hs: &Handshake,
    reply: crate::Reply,
    on_upgrade: hyper::upgrade::OnUpgrade,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Response<ResBody> {
    let Some(conn) = shared.hub.get(id) else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let mut res = Response::new(ResBody::full(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *res.headers_mut() = reply.headers;
    let h = res.headers_mut();
    h.remove(header::CONTENT_LENGTH);
    h.remove(header::CONTENT_TYPE);
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept_key(hs.key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    // The extension is ours to answer: one a middleware set is dropped.
    h.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    let deflate = negotiate(hs.extensions.split(','), conn.opts.compression);
    if let Some(v) = deflate.and_then(|a| HeaderValue::from_str(&a.header()).ok()) {
        h.insert(header::SEC_WEBSOCKET_EXTENSIONS, v);
    }
    let task_shared = shared.clone();
    shared.life.tracker.spawn(async move {
        // Held until the WebSocket ends: it still occupies a connection.
        let _slot = slot;
        match on_upgrade.await {
            Ok(upgraded) => run(task_shared, conn, TokioIo::new(upgraded), deflate).await,
            Err(_) => {
                report_close(&task_shared, &conn, 1006, "upgrade failed");
                task_shared.hub.remove(conn.id);
            }
        }
    });
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn handshake_checks_version_and_key() {
        let good = [
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        assert_eq!(
            check_handshake(&headers(&good))
                .ok()
                .map(|h| h.key)
                .unwrap_or_default(),
            "dGhlIHNhbXBsZSBub25jZQ=="
        );
        // The example of RFC 6455 section 1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let mut v8 = good;
        v8[1].1 = "8";
        assert_eq!(
            check_handshake(&headers(&v8))
                .err()
                .map(|r| r.status())
                .unwrap(),
            426
        );
        let mut short = good;
        short[2].1 = "abc";
        assert_eq!(
            check_handshake(&headers(&short))
                .err()
                .map(|r| r.status())
                .unwrap(),
            400
        );
        assert_eq!(
            check_handshake(&headers(&good[1..]))
                .err()
                .map(|r| r.status())
                .unwrap(),
            400
        );
    }
}
