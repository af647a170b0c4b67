//! The `pubsub` setting: where a publish goes besides the subscribers of
//! this process (the sibling workers' sockets, a Redis broker, the durable
//! mode). A plain value here, so that `config/` depends on no layer above
//! it; the carrying itself is `pubsub/`.

use std::path::PathBuf;

/// Where published messages go besides this process.
#[derive(Debug, Clone, Default)]
pub struct PubSubConfig {
    /// A directory shared by the workers of one server (the supervisor makes
    /// it): each worker listens on a Unix socket there and links to the
    /// sockets of the others.
    pub cluster_dir: Option<PathBuf>,
    /// `redis://[user:password@]host:port/db` or `rediss://…` (TLS).
    pub redis: Option<String>,
    /// With `redis`: carry messages on Redis Streams capped at this many
    /// entries per topic (the durable mode) instead of Redis pub/sub.
    pub durable: Option<u64>,
}

impl PubSubConfig {
    pub(crate) fn is_on(&self) -> bool {
        self.cluster_dir.is_some() || self.redis.is_some()
    }
}
