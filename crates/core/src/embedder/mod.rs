//! Everything that crosses to the embedder (the JS side, through the
//! binding): the queue of requests waiting for a handler and its waker, the
//! byte record a request is encoded into, the reply that comes back, and
//! the slot through which a reply may be written straight into its socket.

pub(crate) mod direct;
pub(crate) mod queue;
pub mod record;
pub(crate) mod reply;
