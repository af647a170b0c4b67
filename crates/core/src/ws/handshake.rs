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
use super::tunnel::H2Stream;
use crate::body::ResBody;
use crate::respond::plain;
use tokio::sync::oneshot;

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
    /// `Sec-WebSocket-Key`; none over HTTP/2, where the stream itself
    /// proves the server took the request (RFC 8441 section 5).
    key: Option<String>,
    /// The client's `Sec-WebSocket-Extensions` values, joined.
    extensions: String,
}

/// Checks the client's half of the opening handshake (RFC 6455 section
/// 4.2.1) and returns its key and offers, or the response refusing it. An
/// extended CONNECT on an HTTP/2 stream (`tunnel`) has neither `Connection`
/// nor a key (RFC 8441 section 5), only the version and the offers.
pub(crate) fn check_handshake(
    headers: &HeaderMap,
    tunnel: bool,
) -> Result<Handshake, Box<Response<ResBody>>> {
    let connection_upgrade = tunnel
        || headers
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
    let extensions = headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if tunnel {
        return Ok(Handshake {
            key: None,
            extensions,
        });
    }
    // A key is 16 random bytes in base64: 24 characters ending in "==".
    match headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
    {
        Some(k) if k.len() == 24 && k.ends_with("==") => Ok(Handshake {
            key: Some(k.to_string()),
            extensions,
        }),
        _ => Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            "Bad Request: invalid Sec-WebSocket-Key",
        ))),
    }
}

/// Where the accepted connection's bytes will come from.
pub(crate) enum Transport {
    /// hyper's upgraded HTTP/1.1 connection (answered with `101`).
    Http1(hyper::upgrade::OnUpgrade),
    /// An HTTP/2 stream, delivered once the `200` is sent (RFC 8441).
    Http2(oneshot::Receiver<H2Stream>),
}

/// Builds the response for an accepted upgrade (`101` on HTTP/1.1, `200`
/// on an HTTP/2 stream) and starts the connection's task, which runs once
/// the transport is handed over and holds the connection's
/// `maxConnections` slot (`slot`, HTTP/1.1 only) until it ends.
pub(crate) fn switch(
    shared: &Arc<WsEnv>,
    id: u32,
    hs: &Handshake,
    reply: crate::Reply,
    transport: Transport,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Response<ResBody> {
    let Some(conn) = shared.hub.get(id) else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let mut res = Response::new(ResBody::full(Bytes::new()));
    *res.headers_mut() = reply.headers;
    let h = res.headers_mut();
    h.remove(header::CONTENT_LENGTH);
    h.remove(header::CONTENT_TYPE);
    if let Some(key) = &hs.key {
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = res.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Ok(v) = HeaderValue::from_str(&accept_key(key.as_bytes())) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
    }
    let h = res.headers_mut();
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
        let failed = match transport {
            Transport::Http1(on_upgrade) => match on_upgrade.await {
                Ok(upgraded) => {
                    run(
                        task_shared.clone(),
                        conn.clone(),
                        TokioIo::new(upgraded),
                        deflate,
                    )
                    .await;
                    false
                }
                Err(_) => true,
            },
            Transport::Http2(stream) => match stream.await {
                Ok(stream) => {
                    run(task_shared.clone(), conn.clone(), stream, deflate).await;
                    false
                }
                Err(_) => true,
            },
        };
        if failed {
            report_close(&task_shared, &conn, 1006, "upgrade failed");
            task_shared.hub.remove(conn.id);
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
            check_handshake(&headers(&good), false)
                .ok()
                .and_then(|h| h.key)
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
            check_handshake(&headers(&v8), false)
                .err()
                .map(|r| r.status())
                .unwrap(),
            426
        );
        let mut short = good;
        short[2].1 = "abc";
        assert_eq!(
            check_handshake(&headers(&short), false)
                .err()
                .map(|r| r.status())
                .unwrap(),
            400
        );
        assert_eq!(
            check_handshake(&headers(&good[1..]), false)
                .err()
                .map(|r| r.status())
                .unwrap(),
            400
        );
    }

    #[test]
    fn an_http2_tunnel_needs_only_the_version() {
        // RFC 8441 section 5: no Connection, no key; the offers still count.
        let h2 = [
            ("sec-websocket-version", "13"),
            ("sec-websocket-extensions", "permessage-deflate"),
        ];
        let hs = check_handshake(&headers(&h2), true).ok().unwrap();
        assert!(hs.key.is_none());
        assert_eq!(hs.extensions, "permessage-deflate");
        assert_eq!(
            check_handshake(&headers(&h2[1..]), true)
                .err()
                .map(|r| r.status())
                .unwrap(),
            426
        );
        // The same headers on HTTP/1.1 are refused: no Connection: upgrade.
        assert_eq!(
            check_handshake(&headers(&h2), false)
                .err()
                .map(|r| r.status())
                .unwrap(),
            400
        );
    }
}
