//! The HTTP protocol drivers. Each one turns a connection's byte stream
//! into requests for `service::handle` and writes its responses back.

pub(crate) mod h1;
pub(crate) mod h2;
