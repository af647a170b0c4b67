//! From a parsed request to a response: the service routes it, applies the
//! limits, answers directly what needs no embedder (`respond`), upgrades
//! WebSockets (`ws`) and queues the rest for the embedder (`embedder`).
//!
//! Protocol drivers see this layer only through [`Dispatch`], the way
//! hyper's connection code sees only a `Service`: a driver can be run
//! against a stub.

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use crate::body::canned::CannedForm;
use crate::body::ResBody;

pub(crate) mod abort;
mod conn_info;
pub(crate) mod fault;
pub(crate) mod head;
pub(crate) mod limits;
pub mod router;
pub(crate) mod service;

pub(crate) use conn_info::ConnInfo;
use head::RawHead;

/// What a protocol driver calls for each request it has parsed. Generic
/// (no `dyn`): each driver is compiled for the one dispatcher it serves.
pub(crate) trait Dispatch: Clone + Send + Sync + 'static {
    fn call<B>(
        &self,
        conn: Arc<ConnInfo>,
        req: Request<B>,
    ) -> impl Future<Output = Result<Response<ResBody>, Infallible>> + Send + 'static + use<Self, B>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display;

    /// [`call`](Self::call) for a request of the own HTTP/1.1 driver, whose
    /// `Request` carries no header fields: they are in `head`. By default
    /// the map is built and the request goes to `call`.
    fn call_h1<B>(
        &self,
        conn: Arc<ConnInfo>,
        mut req: Request<B>,
        head: RawHead,
    ) -> impl Future<Output = Result<Response<ResBody>, Infallible>> + Send + 'static + use<Self, B>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        *req.headers_mut() = head.header_map();
        self.call(conn, req)
    }

    /// Answers a request from bytes the dispatcher holds ready, appending
    /// the whole HTTP/1.1 answer to `out`, where that is exactly what
    /// [`call`](Self::call) would answer and count; `false` (and nothing
    /// written or counted) sends the request to `call`. The own HTTP/1.1
    /// driver asks it before it builds a `Request`, for a keep-alive
    /// HTTP/1.1 `GET` without a body, `Upgrade`, or framing fields, with
    /// exactly one `Host`.
    /// `form` makes the driver's form of a stored answer (once per
    /// answer, kept with it) and writes it.
    fn answer_stored(
        &self,
        _conn: &ConnInfo,
        _req: &StoredReq<'_>,
        _form: &CannedForm,
        _out: &mut BytesMut,
    ) -> bool {
        false
    }

    /// The answer to a request armed for a direct answer
    /// (`embedder::direct`) whose handler did not reply by the deadline
    /// the driver keeps for it: what `call` answers at `requestTimeout`,
    /// counted the same. Only a dispatcher that arms slots is asked; by
    /// default the same answer, not counted.
    fn timed_out(&self) -> Response<ResBody> {
        service::too_slow()
    }
}

/// What [`Dispatch::answer_stored`] is told of a request.
pub(crate) struct StoredReq<'a> {
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    /// The request carries `Authorization` or `Cookie`.
    pub(crate) credentials: bool,
}
