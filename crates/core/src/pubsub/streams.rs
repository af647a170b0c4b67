//! The durable mode (`pubsub: { redis, durable: true }`): messages travel on
//! Redis Streams instead of Redis pub/sub, so a process whose link to Redis
//! drops, or whose Redis restarts with its data, reads afterwards what was
//! published meanwhile, from the last entry it had read. This file is the
//! session of the broker task (`broker.rs`) in that mode; the task's
//! channel, queue bound and reconnection are shared with the plain mode.
//!
//! - A publish is one `XADD httpy:<topic> MAXLEN ~ <maxLen> * d <payload>`
//!   (the plain mode's payload: kind, origin, message), pipelined on the
//!   task's multiplexed connection like the plain mode's `PUBLISH`.
//! - Reading takes a second connection, used only for `XREAD BLOCK`: one
//!   read names every topic with local subscribers and the last id read on
//!   each. A topic's first local subscriber fixes where its reading starts:
//!   the stream's last entry then (`XREVRANGE … COUNT 1`), so a subscriber
//!   gets what is published after it joined, not the history.
//! - A blocking `XREAD` names a fixed set of streams. A new topic must not
//!   wait for it to time out, so the task wakes it with `CLIENT UNBLOCK`
//!   from the other connection and reads again with the new set. If the
//!   unblock overtakes the read it finds nothing to wake, and the read ends
//!   at its timeout ([`BLOCK`]): that bounds the delay of a new topic's
//!   first message, never loses it (its start id is already fixed).
//! - The last ids survive a reconnection: the first read after it resumes
//!   from them, which is what makes the mode durable.

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::Value;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use super::broker::{
    channel, connection_config, fatal, take_batch, Cmd, Task, CHANNEL_PREFIX, IO_TIMEOUT,
};

/// How long one `XREAD` waits for entries. It bounds how late a new topic's
/// first message can be when its wake-up is lost (above); an idle process
/// issues one read per this period.
const BLOCK: Duration = Duration::from_secs(2);
/// Entries one `XREAD` returns per stream at most: bounds a reply's memory
/// (a process catching up after an outage reads in steps of this).
const COUNT: usize = 512;
/// The field of a stream entry that holds the payload.
const FIELD: &[u8] = b"d";
/// Pause before reading again after Redis refused a read (a key of another
/// type under `httpy:`), so a refusal does not spin.
const REFUSED_PAUSE: Duration = Duration::from_secs(1);

/// The durable mode's state, kept across reconnections.
pub(super) struct Reading {
    max_len: u64,
    /// Per topic with local subscribers, the id of the last entry read (or
    /// where reading starts).
    ids: FxHashMap<Arc<str>, String>,
}

impl Reading {
    pub(super) fn new(max_len: u64) -> Reading {
        Reading {
            max_len,
            ids: FxHashMap::default(),
        }
    }

    /// The topic's last local subscriber left: stop reading it.
    pub(super) fn forget(&mut self, topic: &str) {
        self.ids.remove(topic);
    }

    /// Appends one publish to the pipeline (`~`: Redis trims whole nodes of
    /// the stream, far cheaper than an exact cap).
    pub(super) fn append(&self, pipe: &mut redis::Pipeline, topic: &str, payload: Vec<u8>) {
        pipe.cmd("XADD")
            .arg(channel(topic))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_len)
            .arg("*")
            .arg(FIELD)
            .arg(payload);
    }

    /// The next `XREAD`, or `None` when no topic has local subscribers.
    fn read_cmd(&self) -> Option<redis::Cmd> {
        if self.ids.is_empty() {
            return None;
        }
        let mut c = redis::cmd("XREAD");
        c.arg("COUNT")
            .arg(COUNT)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS");
        // Keys then ids, in one pass's order (the map does not change here).
        let pairs: Vec<(&Arc<str>, &String)> = self.ids.iter().collect();
        for (t, _) in &pairs {
            c.arg(channel(t));
        }
        for (_, id) in &pairs {
            c.arg(id.as_str());
        }
        Some(c)
    }
}

impl Task {
    /// One connection's life in the durable mode: connect both connections,
    /// fix the start of every new topic, then read and publish until the
    /// link fails. Returns why it ended (`None`: the server is gone).
    pub(super) async fn durable_session(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Cmd>,
    ) -> Option<String> {
        let config = connection_config();
        let pid = std::process::id();
        let connect = async {
            let mut writer = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            let mut reader = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            // Named, so an operator (or a test) can tell them apart in
            // `CLIENT LIST`.
            redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(format!("httpy-{pid}-write"))
                .query_async::<()>(&mut writer)
                .await?;
            redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(format!("httpy-{pid}-read"))
                .query_async::<()>(&mut reader)
                .await?;
            let id: i64 = redis::cmd("CLIENT")
                .arg("ID")
                .query_async(&mut reader)
                .await?;
            redis::RedisResult::Ok((writer, reader, id))
        };
        let (mut writer, reader, reader_id) = match tokio::time::timeout(IO_TIMEOUT, connect).await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Some(format!("cannot connect to Redis: {e}")),
            Err(_) => return Some("cannot connect to Redis: timed out".into()),
        };
        if let Err(e) = self.start_ids(&mut writer).await {
            return Some(e);
        }
        self.up();
        let mut batch = Vec::new();
        let mut pause = Duration::ZERO;
        loop {
            let read = self.durable.as_ref().and_then(Reading::read_cmd);
            let reading = read.is_some();
            let mut conn = reader.clone();
            let wait = pause;
            let next = async move {
                let Some(cmd) = read else {
                    return std::future::pending().await;
                };
                tokio::time::sleep(wait).await;
                tokio::time::timeout(BLOCK + IO_TIMEOUT, cmd.query_async::<Value>(&mut conn)).await
            };
            tokio::pin!(next);
            pause = Duration::ZERO;
            loop {
                tokio::select! {
                    // The read first: it is then handed to its connection
                    // before a wake-up meant for it can be sent.
                    biased;
                    r = &mut next => {
                        match r {
                            Ok(Ok(v)) => self.deliver(v),
                            Ok(Err(e)) if !fatal(&e) => {
                                self.shared.counters.error(format!("Redis XREAD failed: {e}"));
                                pause = REFUSED_PAUSE;
                            }
                            Ok(Err(e)) => return Some(format!("Redis XREAD failed: {e}")),
                            Err(_) => return Some("Redis XREAD timed out".into()),
                        }
                        break;
                    }
                    cmd = rx.recv() => {
                        take_batch(cmd?, rx, &mut batch);
                        let added = match self.run_batch(&mut batch, &mut writer, None).await {
                            Ok(added) => added,
                            Err(e) => return Some(e),
                        };
                        if added {
                            if !reading {
                                break;
                            }
                            // Wake the read so it is issued again with the
                            // new topics; a failure here shows on the next
                            // command.
                            let mut unblock = redis::cmd("CLIENT");
                            unblock.arg("UNBLOCK").arg(reader_id);
                            let _ = tokio::time::timeout(
                                IO_TIMEOUT,
                                unblock.query_async::<Value>(&mut writer),
                            )
                            .await;
                        }
                    }
                }
            }
        }
    }

    /// Drops the read position of topics no longer wanted and fixes where
    /// each newly wanted topic starts: its stream's last entry now (`0-0`
    /// when the stream does not exist yet). True when topics were added.
    pub(super) async fn start_ids(
        &mut self,
        writer: &mut MultiplexedConnection,
    ) -> std::result::Result<bool, String> {
        let Some(d) = self.durable.as_mut() else {
            return Ok(false);
        };
        let wanted = &self.wanted;
        d.ids.retain(|t, _| wanted.contains(t));
        let new: Vec<Arc<str>> = wanted
            .iter()
            .filter(|t| !d.ids.contains_key(*t))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(false);
        }
        let mut pipe = redis::pipe();
        // A refused command (a key of another type) fails its topic only.
        pipe.ignore_errors();
        for t in &new {
            pipe.cmd("XREVRANGE")
                .arg(channel(t))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1);
        }
        let replies: Vec<Value> =
            match tokio::time::timeout(IO_TIMEOUT, pipe.query_async(writer)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return Err(format!("Redis XREVRANGE failed: {e}")),
                Err(_) => return Err("Redis XREVRANGE timed out".into()),
            };
        for (t, reply) in new.into_iter().zip(replies) {
            let last = match reply {
                Value::Array(mut entries) => entries.pop().and_then(entry_id),
                Value::ServerError(e) => {
                    let what = format!("Redis XREVRANGE refused for topic {t}: {e}");
                    self.shared.counters.error(what);
                    None
                }
                _ => None,
            };
            d.ids.insert(t, last.unwrap_or_else(|| "0-0".into()));
        }
        Ok(true)
    }

    /// Fans out the entries of one `XREAD` reply (nil when it timed out or
    /// was woken) and moves each topic's read position past them.
    fn deliver(&mut self, reply: Value) {
        let streams: Vec<(Value, Value)> = match reply {
            Value::Array(streams) => streams.into_iter().filter_map(pair).collect(),
            Value::Map(streams) => streams,
            _ => return,
        };
        for (key, entries) in streams {
            let (Some(key), Value::Array(entries)) = (bytes_of(key), entries) else {
                continue;
            };
            let Some(topic) = std::str::from_utf8(&key)
                .ok()
                .and_then(|k| k.strip_prefix(CHANNEL_PREFIX))
            else {
                continue;
            };
            // Where this process is in the topic now: a topic dropped while
            // the read was in flight stays dropped, and one dropped and
            // added again starts where its new start says, not earlier.
            let Some(mut at) = self
                .durable
                .as_ref()
                .and_then(|d| d.ids.get(topic))
                .and_then(|id| parse_id(id))
            else {
                continue;
            };
            let mut moved = false;
            for entry in entries {
                let Some((id, fields)) = pair(entry) else {
                    continue;
                };
                let Some(id) = bytes_of(id).and_then(|b| parse_id(std::str::from_utf8(&b).ok()?))
                else {
                    continue;
                };
                if id <= at {
                    continue;
                }
                (at, moved) = (id, true);
                match payload_of(fields) {
                    Some(p) => self.receive_payload(topic, Bytes::from(p)),
                    None => {
                        // Not one of ours: skipped, counted.
                        self.shared
                            .counters
                            .dropped
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            if let (true, Some(d)) = (moved, self.durable.as_mut()) {
                if let Some(slot) = d.ids.get_mut(topic) {
                    *slot = format!("{}-{}", at.0, at.1);
                }
            }
        }
        self.shared.ws.hub.flush();
    }
}

/// A stream entry id, `<ms>-<seq>`, as a pair that orders like Redis does.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// A two-element array as a pair (a stream and its entries; an entry's id
/// and its fields).
fn pair(v: Value) -> Option<(Value, Value)> {
    let Value::Array(mut a) = v else { return None };
    if a.len() != 2 {
        return None;
    }
    let second = a.pop()?;
    let first = a.pop()?;
    Some((first, second))
}

fn bytes_of(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// The id of an entry `[id, fields]`.
fn entry_id(entry: Value) -> Option<String> {
    let (id, _) = pair(entry)?;
    String::from_utf8(bytes_of(id)?).ok()
}

/// The payload field of an entry's fields (a flat array, or a map in RESP3).
fn payload_of(fields: Value) -> Option<Vec<u8>> {
    let pairs: Vec<(Value, Value)> = match fields {
        Value::Array(flat) => {
            let mut it = flat.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((k, v));
            }
            out
        }
        Value::Map(m) => m,
        _ => return None,
    };
    pairs
        .into_iter()
        .find(|(k, _)| matches!(k, Value::BulkString(b) if b == FIELD))
        .and_then(|(_, v)| bytes_of(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn reads_name_every_topic_then_its_id() {
        let mut r = Reading::new(100);
        assert!(r.read_cmd().is_none());
        r.ids.insert("a".into(), "5-0".into());
        r.ids.insert("b".into(), "0-0".into());
        let packed =
            String::from_utf8_lossy(&r.read_cmd().unwrap().get_packed_command()).into_owned();
        let words: Vec<&str> = packed
            .split("\r\n")
            .filter(|w| !w.is_empty() && !w.starts_with(['*', '$']))
            .collect();
        assert_eq!(
            &words[..6],
            ["XREAD", "COUNT", "512", "BLOCK", "2000", "STREAMS"]
        );
        assert_eq!(words.len(), 10);
        for (key, id) in words[6..8].iter().zip(&words[8..10]) {
            let topic = key.strip_prefix("httpy:").unwrap();
            assert_eq!(Some(&id.to_string()), r.ids.get(topic));
        }
        r.forget("a");
        assert_eq!(r.ids.len(), 1);
    }

    #[test]
    fn entries_parse_in_both_protocols() {
        let resp2 = Value::Array(vec![
            bulk(b"1-1"),
            Value::Array(vec![bulk(b"x"), bulk(b"1"), bulk(b"d"), bulk(b"pp")]),
        ]);
        let (id, fields) = pair(resp2).unwrap();
        assert_eq!(bytes_of(id).unwrap(), b"1-1");
        assert_eq!(payload_of(fields).unwrap(), b"pp");
        let resp3 = Value::Map(vec![(bulk(b"d"), bulk(b"qq"))]);
        assert_eq!(payload_of(resp3).unwrap(), b"qq");
        assert!(payload_of(Value::Array(vec![bulk(b"e"), bulk(b"1")])).is_none());
        assert_eq!(
            entry_id(Value::Array(vec![bulk(b"7-3"), Value::Array(vec![])])).as_deref(),
            Some("7-3")
        );
        assert!(pair(Value::Nil).is_none());
        assert_eq!(parse_id("1700000000000-12"), Some((1_700_000_000_000, 12)));
        assert!(parse_id("9-10") > parse_id("9-9"));
        assert!(parse_id("10-0") > parse_id("9-99"));
        assert_eq!(parse_id("x-1"), None);
        assert_eq!(parse_id("5"), None);
    }
}
