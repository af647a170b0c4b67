//! HTTP/3 client on quinn and h3 (the same pinned versions as the server's
//! crates, so the workspace builds one copy). Like HTTP/2, clients share a
//! connection (`H3Slot`): `concurrency` request streams over `connections`
//! QUIC connections, each replaced when it breaks. The request head is the
//! HTTP/2 one (`H2Request`), built once.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::client::Target;
use crate::error::LoadError;
use crate::h2c::H2Request;
use crate::shared::{Multiplexed, Shared, SharedClient};
use crate::stats::{Failure, FailureKind, Outcome};
use crate::tls;
use bytes::{Buf, Bytes};
use h3::client::SendRequest;
use h3::error::StreamError;
use h3_quinn::OpenStreams;

type Sender = SendRequest<OpenStreams, Bytes>;

/// One shared QUIC connection, replaced when it breaks.
pub(crate) struct H3Slot {
    target: Arc<Target>,
    request: Arc<H2Request>,
    endpoint: quinn::Endpoint,
    name: String,
    shared: Shared<Sender>,
}

impl H3Slot {
    pub fn new(target: Arc<Target>, request: Arc<H2Request>) -> Result<H3Slot, LoadError> {
        let c = &target.config;
        let opts = c.tls.clone().unwrap_or_default();
        let tls = tls::client_config(&opts, b"h3")?;
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| LoadError::InvalidOption(format!("QUIC TLS: {e}")))?;
        let bind: SocketAddr = match target.addrs.first() {
            Some(SocketAddr::V6(_)) => "[::]:0".parse().unwrap(),
            _ => "0.0.0.0:0".parse().unwrap(),
        };
        let mut endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| LoadError::Runtime(format!("QUIC endpoint: {e}")))?;
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
        let name = tls::server_name(&opts, &c.host)?.to_str().into_owned();
        Ok(H3Slot {
            target,
            request,
            endpoint,
            name,
            shared: Shared::new(),
        })
    }

    async fn connect(&self) -> Result<Sender, Failure> {
        let fail = |m: String| Failure::new(FailureKind::Connect, m);
        let mut last = None;
        for addr in &self.target.addrs {
            let connecting = match self.endpoint.connect(*addr, &self.name) {
                Ok(c) => c,
                Err(e) => {
                    last = Some(format!("QUIC connect to {addr}: {e}"));
                    continue;
                }
            };
            let conn = match connecting.await {
                Ok(c) => c,
                Err(e) => {
                    last = Some(format!("QUIC handshake with {addr}: {e}"));
                    continue;
                }
            };
            self.target
                .connections
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
                .await
                .map_err(|e| fail(format!("HTTP/3 setup: {e}")))?;
            // Runs the connection's control streams until it closes.
            tokio::spawn(async move {
                let _ = driver.wait_idle().await;
            });
            return Ok(send);
        }
        Err(fail(
            last.unwrap_or_else(|| "no address to connect to".into()),
        ))
    }
}

/// One request stream at a time over a shared connection.
pub(crate) type H3Client = SharedClient<H3Slot>;

/// Whether an error ends the connection (a reset stream does not).
fn breaks_connection(e: &StreamError) -> bool {
    !matches!(
        e,
        StreamError::StreamError { .. }
            | StreamError::RemoteTerminate { .. }
            | StreamError::HeaderTooBig { .. }
    )
}

impl Multiplexed for H3Slot {
    type Sender = Sender;
    type Error = StreamError;

    fn shared(&self) -> &Shared<Sender> {
        &self.shared
    }

    async fn connect(&self) -> Result<Sender, Failure> {
        H3Slot::connect(self).await
    }

    async fn stream(&self, send: &mut Sender) -> Result<Outcome, StreamError> {
        let t = &self.target;
        stream(send, &self.request, &t.config.body, t.is_head).await
    }

    fn classify(e: StreamError) -> (Failure, bool) {
        let broken = breaks_connection(&e);
        (
            Failure::new(FailureKind::Io, format!("HTTP/3: {e}")),
            broken,
        )
    }
}

impl Drop for H3Slot {
    /// Closes the connection once every client sharing it is done (a
    /// client that finishes first must not cut the others' streams).
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"done");
    }
}

async fn stream(
    send: &mut Sender,
    req: &H2Request,
    body: &Bytes,
    is_head: bool,
) -> Result<Outcome, StreamError> {
    let mut s = send.send_request(req.build()).await?;
    if !body.is_empty() {
        s.send_data(body.clone()).await?;
    }
    s.finish().await?;
    let response = s.recv_response().await?;
    let mut bytes = 0u64;
    if !is_head {
        while let Some(mut chunk) = s.recv_data().await? {
            bytes += chunk.remaining() as u64;
            chunk.advance(chunk.remaining());
        }
    }
    Ok(Outcome {
        status: response.status().as_u16(),
        bytes,
    })
}
