//! From a parsed request to a response: the service routes it, applies the
//! limits, answers directly what needs no embedder (`respond`), upgrades
//! WebSockets (`ws`) and queues the rest for the embedder (`embedder`).
//!
//! Protocol drivers see this layer only through [`Dispatch`], the way
//! hyper's connection code sees only a `Service`: a driver can be run
//! against a stub.

use bytes::Bytes;
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use crate::body::ResBody;

pub(crate) mod abort;
mod conn_info;
pub(crate) mod fault;
pub(crate) mod limits;
pub mod router;
pub(crate) mod service;

pub(crate) use conn_info::ConnInfo;

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
}
