//! A whole answer in the bytes one protocol writes for it, kept beside the
//! stored answer it was made from (a route-cache entry, `respond::cache`),
//! so that a driver can send it again with two copies. The type lives here,
//! below the layers that meet on it, because none of them may name another's
//! modules: the HTTP/1.1 driver makes and writes it (`proto::h1::encode`),
//! the cache keeps it, and the dispatcher hands it over.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};

/// One answer's wire form, less what changes per answer (the `Date`).
#[derive(Debug)]
pub(crate) struct Canned {
    /// The head up to where the `Date` field goes.
    pub(crate) head: Bytes,
    /// The answer has no `Date` of its own: the writer adds the current one.
    pub(crate) date: bool,
    /// What follows: the end of the head and the body.
    pub(crate) tail: Bytes,
}

/// How a driver makes its form of a stored answer (`None`: it cannot be
/// sent that way) and writes it.
pub(crate) struct CannedForm {
    pub(crate) make: fn(StatusCode, &HeaderMap, &Bytes) -> Option<Canned>,
    pub(crate) put: fn(&Canned, &mut BytesMut),
}
