//! HTTP/3 over QUIC (quinn + h3) on a UDP port, inside the server's Tokio
//! runtime and through the same request path (`service::handle`) as
//! HTTP/1.1 and HTTP/2.
//!
//! - The TLS certificates are the TCP listener's (SNI, client
//!   certificates), offered with ALPN `h3`; when they are replaced, the
//!   endpoint is handed the new ones for its next handshakes.
//! - `Http3Config` maps onto quinn's transport: datagram size (also the
//!   advertised `max_udp_payload_size`), stream and connection receive
//!   windows, concurrent bidirectional streams, idle timeout.
//! - Garbage datagrams, truncated packets and unknown QUIC versions are
//!   dropped (or answered with Version Negotiation) by quinn without
//!   touching other connections; a silent client is dropped after the idle
//!   timeout, which frees its streams and their requests.
//! - Graceful close: HTTP/3 GOAWAY, open requests finish, then the QUIC
//!   connection closes with H3_NO_ERROR.
//! - A client gone: when its QUIC connection closes (or times out) while
//!   requests wait for their handlers, they are dropped, which fires their
//!   `request.signal`. So is a request whose stream the client stops
//!   (STOP_SENDING, as a client cancelling a request sends) while its
//!   handler works, body still coming or not: `h3_quic.rs` (our transport
//!   adapter) hands over quinn's `stopped()` watch of each request stream,
//!   polled only once the handler reads its signal ([`WatchWanted`]).
//! - Push is not offered over HTTP/3: a push list becomes `Link` headers.

use bytes::{Buf, Bytes};
use h3::server::RequestResolver;
use http::header::{HeaderValue, HOST};
use http::{Method, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use quinn::crypto::rustls::QuicServerConfig;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::task::JoinSet;

use super::h3_quic::{self, Stops};
use super::Env;
use crate::config::tls::{TlsSettings, ALPN_H3};
use crate::config::{Http3Config, ServerConfig};
use crate::dispatch::ConnInfo;
use crate::dispatch::Dispatch;
use crate::embedder::queue::WatchWanted;
use crate::embedder::reply::{add_preload_links, PushList};
use crate::error::{Error, ErrorKind, Result};
use crate::observe::metrics::{open_connection, Protocol};
use crate::observe::stats::{OpenConnection, Stats};
use crate::proto::head::{add_date, set_content_length, strip_connection_headers};

/// HTTP/3 application error code for a clean close (RFC 9114 §8.1).
const H3_NO_ERROR: u32 = 0x100;

type H3Conn = h3_quic::Conn;

/// Binds the UDP socket at once so that errors reach `Server::start`.
pub(crate) fn bind(config: &ServerConfig, h3: &Http3Config) -> Result<UdpSocket> {
    let label = format!("udp {}:{}", config.host, h3.port);
    let addr: SocketAddr = (config.host.as_str(), h3.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::AddrNotAvailable,
                format!("cannot resolve {label}"),
            )
        })?;
    UdpSocket::bind(addr).map_err(|e| Error::from_bind(e, &label))
}

fn quinn_config(
    config: &ServerConfig,
    h3: &Http3Config,
) -> Result<(quinn::EndpointConfig, quinn::ServerConfig)> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        Error::new(ErrorKind::Listen, format!("HTTP/3 {what}: {e}"))
    };
    let tls = config
        .tls
        .as_ref()
        .ok_or_else(|| Error::new(ErrorKind::Tls, "HTTP/3 needs TLS: set the tls option"))?;
    let crypto = quic_crypto(tls)?;

    let mut transport = quinn::TransportConfig::default();
    let varint = |v: u64| quinn::VarInt::from_u64(v).unwrap_or(quinn::VarInt::MAX);
    transport
        .max_concurrent_bidi_streams(varint(h3.max_streams_bidi))
        .stream_receive_window(varint(h3.stream_window))
        .receive_window(varint(h3.connection_window))
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(h3.idle_timeout).map_err(|e| bad("idle timeout", &e))?,
        ))
        .initial_mtu(h3.max_datagram_size.max(1200))
        .min_mtu(1200);
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(h3.max_datagram_size.max(1200));
    transport.mtu_discovery_config(Some(mtu));

    let mut server = quinn::ServerConfig::with_crypto(crypto);
    server.transport_config(Arc::new(transport));
    // One UDP port per server process: connection migration stays on (no
    // SO_REUSEPORT sharing across processes here).
    let mut endpoint = quinn::EndpointConfig::default();
    endpoint
        .max_udp_payload_size(h3.max_datagram_size.max(1200))
        .map_err(|e| bad("maxDatagramSize", &e))?;
    Ok((endpoint, server))
}

/// The current TLS configuration, with ALPN `h3` and no 0-RTT.
fn quic_crypto(tls: &TlsSettings) -> Result<Arc<QuicServerConfig>> {
    let mut rustls_config = (*tls.current().config).clone();
    rustls_config.alpn_protocols = vec![ALPN_H3.to_vec()];
    rustls_config.max_early_data_size = 0;
    QuicServerConfig::try_from(rustls_config)
        .map(Arc::new)
        .map_err(|e| Error::new(ErrorKind::Listen, format!("HTTP/3 TLS set-up: {e}")))
}

/// Hands every replaced TLS configuration to the endpoint, until shutdown
/// (the accept loop then withdraws the configuration for good).
async fn follow_tls(
    tls: TlsSettings,
    endpoint: quinn::Endpoint,
    mut server: quinn::ServerConfig,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut changes = tls.changes();
    loop {
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
        // `replace` only stores configurations that rustls accepted, and
        // the QUIC conversion only refuses ones without TLS 1.3, which
        // the server never builds; keep the old one if it ever did.
        if let Ok(crypto) = quic_crypto(&tls) {
            server.crypto = crypto;
            if !shutdown.is_cancelled() {
                endpoint.set_server_config(Some(server.clone()));
            }
        }
    }
}

/// Creates the QUIC endpoint on `socket` and starts accepting. Must run
/// inside the server's runtime.
pub(crate) fn start<D: Dispatch>(shared: Arc<Env<D>>, socket: UdpSocket) -> Result<()> {
    let Some(h3) = shared.config.http3.clone() else {
        return Ok(());
    };
    let (endpoint_config, server_config) = quinn_config(&shared.config, &h3)?;
    let server_config_copy = server_config.clone();
    let endpoint = quinn::Endpoint::new(
        endpoint_config,
        Some(server_config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|e| Error::new(ErrorKind::Listen, format!("HTTP/3 endpoint: {e}")))?;
    if let Some(tls) = shared.config.tls.clone() {
        tokio::spawn(follow_tls(
            tls,
            endpoint.clone(),
            server_config_copy,
            shared.life.shutdown.token(),
        ));
    }
    let tracker = shared.life.tracker.clone();
    tracker.spawn(accept_loop(shared, endpoint, h3.validate_address));
    Ok(())
}

async fn accept_loop<D: Dispatch>(shared: Arc<Env<D>>, endpoint: quinn::Endpoint, validate: bool) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
            _ = shared.life.shutdown.cancelled() => break,
        };
        if validate && !incoming.remote_address_validated() {
            // Costs a spoofing client nothing but us no state either: only
            // a client that can receive at its address comes back.
            let _ = incoming.retry();
            continue;
        }
        let remote = incoming.remote_address();
        let task_shared = shared.clone();
        shared
            .life
            .tracker
            .spawn(connection(task_shared, incoming, remote));
    }
    // New connections are refused from here on; open ones finish (their
    // tasks hold the endpoint alive) and then the endpoint goes idle.
    endpoint.set_server_config(None);
    tokio::select! {
        _ = endpoint.wait_idle() => {}
        _ = shared.life.force.cancelled() => endpoint.close(quinn::VarInt::from_u32(H3_NO_ERROR), b"server closed"),
    }
}

/// SNI name and client certificate of a finished QUIC handshake.
fn quic_peer<D: Dispatch>(
    shared: &Env<D>,
    conn: &quinn::Connection,
) -> Option<Arc<crate::config::client_auth::TlsPeer>> {
    let server_name = conn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.server_name);
    let certs = conn.peer_identity().and_then(|c| {
        c.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
            .ok()
    });
    let built = shared.config.tls.as_ref()?.current();
    crate::config::client_auth::peer(
        server_name.as_deref(),
        certs.as_deref().map(Vec::as_slice),
        built.client_check.as_ref(),
    )
}

async fn connection<D: Dispatch>(
    shared: Arc<Env<D>>,
    incoming: quinn::Incoming,
    remote: SocketAddr,
) {
    let wait = shared.idle_limit();
    let conn = match tokio::time::timeout(wait, async { incoming.accept()?.await }).await {
        Ok(Ok(c)) => c,
        _ => return,
    };
    // Counted like a TCP connection, from the finished QUIC handshake on.
    Stats::inc(&shared.stats.connections_total);
    let _open = OpenConnection::new(shared.stats.clone());
    let _open_metric = open_connection(&shared.metrics, Protocol::Http3);
    let info = ConnInfo::with_peer(remote, true, quic_peer(&shared, &conn));
    let close = |conn: &quinn::Connection| conn.close(quinn::VarInt::from_u32(H3_NO_ERROR), b"");
    let mut builder = h3::server::builder();
    builder.max_field_section_size(shared.config.max_header_size as u64);
    let stops = Stops::default();
    let mut h3conn: h3::server::Connection<H3Conn, Bytes> = match tokio::time::timeout(
        wait,
        builder.build(h3_quic::Conn::new(conn.clone(), stops.clone())),
    )
    .await
    {
        Ok(Ok(c)) => c,
        _ => return close(&conn),
    };
    let mut streams: JoinSet<()> = JoinSet::new();
    let mut draining = false;
    loop {
        tokio::select! {
            biased;
            _ = shared.life.force.cancelled() => return close(&conn),
            _ = shared.life.shutdown.cancelled(), if !draining => {
                draining = true;
                // GOAWAY: requests already accepted are still answered.
                let _ = h3conn.shutdown(0).await;
            }
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
            r = h3conn.accept(), if !draining => match r {
                Ok(Some(resolver)) => {
                    streams.spawn(request(shared.clone(), info.clone(), resolver, stops.clone()));
                }
                // GOAWAY from the client, the idle timeout, or an error:
                // quinn has already closed or will close the connection.
                Ok(None) | Err(_) => break,
            },
        }
        if draining && streams.is_empty() {
            break;
        }
    }
    // Let streams already running finish (bounded by the server's grace),
    // unless the connection is gone: then no answer can be delivered, and
    // dropping the requests tells their handlers (`request.signal`).
    tokio::select! {
        _ = async { while streams.join_next().await.is_some() {} } => {}
        _ = conn.closed() => {
            streams.abort_all();
            while streams.join_next().await.is_some() {}
            return;
        }
        _ = shared.life.force.cancelled() => return close(&conn),
    }
    // A finished stream's last bytes may still be in flight, and closing the
    // connection discards them: give the peer a few round trips to receive
    // them (or to close first).
    let settle = (conn.rtt() * 4 + std::time::Duration::from_millis(100))
        .min(std::time::Duration::from_secs(2));
    tokio::select! {
        _ = tokio::time::sleep(settle) => {}
        _ = conn.closed() => {}
        _ = shared.life.force.cancelled() => {}
    }
    close(&conn);
}

/// A request body read from the QUIC stream (quinn reopens the flow-control
/// window as data is read).
struct H3Body(h3::server::RequestStream<h3_quic::RecvHalf, Bytes>);

impl Body for H3Body {
    type Data = Bytes;
    type Error = h3::error::StreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        match self.0.poll_recv_data(cx) {
            Poll::Ready(Ok(Some(mut buf))) => {
                let n = buf.remaining();
                Poll::Ready(Some(Ok(Frame::data(buf.copy_to_bytes(n)))))
            }
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

async fn request<D: Dispatch>(
    shared: Arc<Env<D>>,
    info: Arc<ConnInfo>,
    resolver: RequestResolver<H3Conn, Bytes>,
    stops: Stops,
) {
    let Ok((req, stream)) = resolver.resolve_request().await else {
        return;
    };
    let stopped = stops.take(stream.id());
    let (mut send, recv) = stream.split();
    let method = req.method().clone();
    let authority = req.uri().authority().cloned();
    let mut req = req.map(|()| H3Body(recv));
    *req.version_mut() = http::Version::HTTP_3;
    if let Some(a) = authority {
        if !req.headers().contains_key(HOST) {
            if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                req.headers_mut().insert(HOST, v);
            }
        }
    }
    // Watching the stop costs a lock of the QUIC connection and a
    // registration on every poll (about 0.5 µs of server CPU per request,
    // measured), for a signal nearly no handler reads: it starts when the
    // embedder watches the request (`request.signal` read).
    let wanted = WatchWanted::default();
    req.extensions_mut().insert(wanted.clone());
    let work = shared.dispatch.call(info, req);
    // A client that stops the stream no longer wants the answer: stop
    // waiting (dropping the work drops the request's responder, which
    // fires `request.signal`). A stop before the watch began is found by
    // its first poll.
    let res = match stopped {
        Some(stopped) => {
            tokio::pin!(work);
            tokio::select! {
                biased;
                r = &mut work => r,
                () = wanted.told() => tokio::select! {
                    r = work => r,
                    _ = stopped => return,
                },
            }
        }
        None => work.await,
    };
    let res = match res {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (mut parts, mut body) = res.into_parts();
    if let Some(PushList(list)) = parts.extensions.remove::<PushList>() {
        add_preload_links(&mut parts.headers, &list);
    }
    strip_connection_headers(&mut parts.headers);
    add_date(&mut parts.headers);
    let no_body = method == Method::HEAD
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    set_content_length(
        &mut parts.headers,
        parts.status,
        method == Method::HEAD,
        body.size_hint().exact(),
    );
    if send
        .send_response(Response::from_parts(parts, ()))
        .await
        .is_err()
    {
        return;
    }
    if !no_body {
        while let Some(frame) = body.frame().await {
            // A producer that failed midway: reset the stream so the client
            // cannot take the truncated body for a whole one.
            let Ok(frame) = frame else {
                send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return;
            };
            if let Ok(data) = frame.into_data() {
                if send.send_data(data).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = send.finish().await;
}
