//! HTTP/2 client over cleartext TCP (prior knowledge) on the `h2` crate.
//! Several clients share one connection (`H2Slot`), so `concurrency`
//! streams are multiplexed over `connections` sockets.

use std::future::poll_fn;
use std::sync::Arc;

use crate::client::Target;
use crate::error::LoadError;
use crate::shared::{Multiplexed, Shared, SharedClient};
use crate::stats::{Failure, FailureKind, Outcome};
use bytes::Bytes;
use h2::client::SendRequest;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};

/// Large windows so a 100 KB response never waits for a WINDOW_UPDATE.
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
const CONN_WINDOW: u32 = 16 * 1024 * 1024;

/// The request every stream sends, built once.
pub(crate) struct H2Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl H2Request {
    pub fn new(target: &Target) -> Result<H2Request, LoadError> {
        let c = &target.config;
        let bad = |m: String| LoadError::InvalidOption(m);
        let method =
            Method::from_bytes(c.method.as_bytes()).map_err(|e| bad(format!("method: {e}")))?;
        let uri = Uri::builder()
            .scheme(if c.tls.is_some() { "https" } else { "http" })
            .authority(c.authority())
            .path_and_query(c.path.as_str())
            .build()
            .map_err(|e| bad(format!("url: {e}")))?;
        let mut headers = HeaderMap::new();
        for (n, v) in &c.headers {
            // Connection-specific headers are forbidden in HTTP/2.
            if [
                "host",
                "connection",
                "keep-alive",
                "transfer-encoding",
                "upgrade",
            ]
            .iter()
            .any(|h| n.eq_ignore_ascii_case(h))
            {
                continue;
            }
            let name = HeaderName::from_bytes(n.as_bytes())
                .map_err(|e| bad(format!("header {n:?}: {e}")))?;
            let value = HeaderValue::from_str(v).map_err(|e| bad(format!("header {n:?}: {e}")))?;
            headers.append(name, value);
        }
        Ok(H2Request {
            method,
            uri,
            headers,
        })
    }

    pub(crate) fn build(&self) -> Request<()> {
        let mut req = Request::new(());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// One shared connection, replaced when it breaks.
pub(crate) struct H2Slot {
    target: Arc<Target>,
    request: Arc<H2Request>,
    shared: Shared<SendRequest<Bytes>>,
}

impl H2Slot {
    pub fn new(target: Arc<Target>, request: Arc<H2Request>) -> H2Slot {
        H2Slot {
            target,
            request,
            shared: Shared::new(),
        }
    }

    async fn connect(&self) -> Result<SendRequest<Bytes>, Failure> {
        let tcp = self.target.open().await?;
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONN_WINDOW)
            .handshake::<_, Bytes>(tcp)
            .await
            .map_err(|e| Failure::new(FailureKind::Connect, format!("HTTP/2 handshake: {e}")))?;
        // The connection task ends when every sender is dropped or the peer closes.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }
}

/// One stream at a time over a shared connection.
pub(crate) type H2Client = SharedClient<H2Slot>;

fn classify(e: h2::Error) -> (Failure, bool) {
    // A reset stream leaves the connection usable; anything else does not.
    let broken = !e.is_reset() || e.is_go_away();
    let kind = if e.is_io() || e.is_go_away() {
        FailureKind::Io
    } else {
        FailureKind::Protocol
    };
    (Failure::new(kind, format!("HTTP/2: {e}")), broken)
}

impl Multiplexed for H2Slot {
    type Sender = SendRequest<Bytes>;
    type Error = h2::Error;

    fn shared(&self) -> &Shared<SendRequest<Bytes>> {
        &self.shared
    }

    async fn connect(&self) -> Result<SendRequest<Bytes>, Failure> {
        H2Slot::connect(self).await
    }

    async fn stream(&self, send: &mut SendRequest<Bytes>) -> Result<Outcome, h2::Error> {
        let t = &self.target;
        stream(send, &self.request, &t.config.body, t.is_head).await
    }

    fn classify(e: h2::Error) -> (Failure, bool) {
        classify(e)
    }
}

async fn stream(
    send: &mut SendRequest<Bytes>,
    req: &H2Request,
    body: &Bytes,
    is_head: bool,
) -> Result<Outcome, h2::Error> {
    poll_fn(|cx| send.poll_ready(cx)).await?;
    let (response, mut out) = send.send_request(req.build(), body.is_empty())?;
    if !body.is_empty() {
        out.send_data(body.clone(), true)?;
    }
    let response = response.await?;
    let status = response.status().as_u16();
    let mut data = response.into_body();
    let mut bytes = 0u64;
    if !is_head {
        while let Some(chunk) = data.data().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            let _ = data.flow_control().release_capacity(chunk.len());
        }
    }
    Ok(Outcome { status, bytes })
}
