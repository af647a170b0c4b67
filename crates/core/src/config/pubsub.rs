//! The `pubsub` setting: where a publish goes besides the subscribers of
//! this process (the sibling workers' sockets, a Redis broker, the durable
//! mode). A plain value here, so that `config/` depends on no layer above
//! it; the carrying itself is `pubsub/`.

use std::path::PathBuf;

/// Where published messages go besides this process.
#[derive(Debug, Clone, Default)]
pub struct PubSubConfig {
    /// Where the workers of one server find each other (the supervisor
    /// chooses it): each worker listens on a Unix socket there and links to
    /// the sockets of the others. A directory, or on Linux `@<prefix>`: the
    /// sockets are then abstract ones named `<prefix>-<pid>-<n>`.
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
