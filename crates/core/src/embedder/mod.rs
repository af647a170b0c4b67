//! Everything that crosses to the embedder (the JS side, through the
//! binding): the queue of requests waiting for a handler and its waker, the
//! byte record a request is encoded into, and the reply that comes back.

pub(crate) mod queue;
pub mod record;
pub(crate) mod reply;
