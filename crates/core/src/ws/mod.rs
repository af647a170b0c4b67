//! WebSocket connections, after the HTTP upgrade: one task per connection
//! reads frames into a batched event queue for the embedder and writes what
//! the embedder (or a pub/sub publish) queued for it.
//!
//! The transport is whatever hyper hands over on upgrade (plain TCP or TLS)
//! or an HTTP/2 stream (RFC 8441, `tunnel.rs`), so nothing else here
//! depends on it. Flow control both ways:
//! - outbound, every connection counts the bytes queued for it; the embedder
//!   is told when the count falls back under the high-water mark (a `Drain`
//!   event) and a peer that lets the count pass `max_backpressure` is closed
//!   with 1008, so a slow reader cannot make the server buffer without bound;
//! - inbound, the reader stops reading the socket (TCP pushes back on the
//!   peer) while the embedder has paused the connection or has not yet taken
//!   a high-water mark's worth of events.

mod deflate;
mod driver;
mod events;
mod fault;
mod handshake;
mod hub;
mod inflate;
mod tunnel;
mod zng;

pub use deflate::{deflated_messages, WsCompression};
pub(crate) use driver::WsEnv;
pub use events::{WsEvent, WsEventKind, WsEvents};
pub(crate) use handshake::{check_handshake, switch, upgrade_required, Transport, ROUTE_METHOD};
pub use hub::{CheckedText, SendStatus, WsFrame, WsOptions, WsSender};
pub(crate) use hub::{Hub, TopicWatch};
pub(crate) use tunnel::{H2Stream, Tunnel};
