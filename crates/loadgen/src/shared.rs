//! A connection several clients share, as HTTP/2 and HTTP/3 do: each client
//! sends one stream at a time over it, and the first client to see it break
//! replaces it for all. Kept apart from the two protocols so the
//! replace-once rule (a generation number per connection) and the client
//! built on it are written once; a protocol only says how to connect, send
//! one stream and judge an error (`Multiplexed`).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::client::Client;
use crate::stats::{Failure, Outcome};

/// What a protocol brings to a shared connection.
pub(crate) trait Multiplexed: Send + Sync + 'static {
    /// The handle that opens streams on a connection.
    type Sender: Clone + Send + Sync;
    type Error: Send;
    /// The slot's current connection.
    fn shared(&self) -> &Shared<Self::Sender>;
    /// Opens a new connection.
    fn connect(&self) -> impl Future<Output = Result<Self::Sender, Failure>> + Send;
    /// One request and its whole response on a new stream.
    fn stream(
        &self,
        send: &mut Self::Sender,
    ) -> impl Future<Output = Result<Outcome, Self::Error>> + Send;
    /// The failure to count for `e`, and whether the connection is broken
    /// (a reset stream leaves it usable).
    fn classify(e: Self::Error) -> (Failure, bool);
}

/// The current connection's sender and its generation.
pub(crate) struct Shared<S> {
    current: Mutex<(u64, Option<S>)>,
}

impl<S: Clone> Shared<S> {
    pub fn new() -> Shared<S> {
        Shared {
            current: Mutex::new((0, None)),
        }
    }
}

/// The live connection of `slot`, connecting if there is none or if the
/// caller's (generation `failed`) is the one that broke; a client that saw
/// an older generation fail gets the replacement another client made.
async fn get<M: Multiplexed>(slot: &M, failed: Option<u64>) -> Result<(u64, M::Sender), Failure> {
    let mut cur = slot.shared().current.lock().await;
    if let Some(send) = &cur.1 {
        if failed != Some(cur.0) {
            return Ok((cur.0, send.clone()));
        }
    }
    cur.1 = None;
    let send = slot.connect().await?;
    cur.0 += 1;
    cur.1 = Some(send.clone());
    Ok((cur.0, send))
}

/// One stream at a time over a shared connection.
pub(crate) struct SharedClient<M: Multiplexed> {
    slot: Arc<M>,
    send: Option<(u64, M::Sender)>,
    failed: Option<u64>,
}

impl<M: Multiplexed> SharedClient<M> {
    pub fn new(slot: Arc<M>) -> SharedClient<M> {
        SharedClient {
            slot,
            send: None,
            failed: None,
        }
    }
}

impl<M: Multiplexed> Client for SharedClient<M> {
    async fn request(&mut self) -> Result<Outcome, Failure> {
        let (generation, send) = match self.send.take() {
            Some(s) => s,
            None => get(&*self.slot, self.failed.take()).await?,
        };
        let (generation, send) = self.send.insert((generation, send));
        match self.slot.stream(send).await {
            Ok(o) => Ok(o),
            Err(e) => {
                let (failure, broken) = M::classify(e);
                if broken {
                    self.failed = Some(*generation);
                    self.send = None;
                }
                Err(failure)
            }
        }
    }

    fn reset(&mut self) {
        // Dropping the stream resets it; the connection stays.
    }
}
