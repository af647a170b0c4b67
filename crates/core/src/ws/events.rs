//! The batch of WebSocket events (message, drain, close) waiting for the
//! embedder, kept in the bytes the binding hands over: the I/O thread
//! writes each event into it as it queues it, and taking the batch is a
//! swap. It used to be a vector of events, each holding a `Bytes` of the
//! reader's buffer, encoded and dropped on the JavaScript thread: every
//! message then cost a reference count moved between the two threads (the
//! reader cut the next message from the same buffer meanwhile) and a pass
//! over the vector on the thread the echo waits on.

use bytes::Bytes;

/// Kind of a WebSocket event; the numbers are part of the record layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WsEventKind {
    Text = 0,
    Binary = 1,
    /// The connection is over; `data` is the close code (u16 LE) then the reason.
    Close = 2,
    /// Queued outbound bytes fell back under the high-water mark.
    Drain = 3,
}

/// Payloads this long or longer travel as their own buffer, not copied
/// into the records.
const EXTERNAL_MIN: usize = crate::embedder::record::EXTERNAL_BODY_MIN;

/// A taken batch's records are allocated at the previous batch's size, up
/// to this (so a busy server grows its batch once, not by doubling each
/// time, and one burst does not pin a large buffer for good).
const RECORDS_HINT_MAX: usize = 64 * 1024;

/// Events for the embedder, encoded (layout in `ts/websocket.ts`):
/// `u8 kind | u32 id | u32 len | u8 placement | inline bytes or u32 index`.
#[derive(Default)]
pub struct WsEvents {
    /// The events' records, in the order they were queued.
    pub records: Vec<u8>,
    /// The payloads of `EXTERNAL_BODY_MIN` bytes or more, by index.
    pub external: Vec<Bytes>,
    count: usize,
}

/// One event of a batch, decoded ([`WsEvents::iter`]).
pub struct WsEvent {
    pub id: u32,
    pub kind: WsEventKind,
    pub data: Bytes,
}

impl WsEvents {
    /// Appends one event.
    pub(super) fn push(&mut self, id: u32, kind: WsEventKind, data: &Bytes) {
        self.count += 1;
        let out = &mut self.records;
        let external = data.len() >= EXTERNAL_MIN;
        out.reserve(10 + if external { 4 } else { data.len() });
        out.push(kind as u8);
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        if external {
            out.push(1);
            out.extend_from_slice(&(self.external.len() as u32).to_le_bytes());
            self.external.push(data.clone());
        } else {
            out.push(0);
            out.extend_from_slice(data);
        }
    }

    /// Takes the batch, leaving an empty one with room for as much.
    pub(super) fn take(&mut self) -> WsEvents {
        let room = self.records.len().min(RECORDS_HINT_MAX);
        std::mem::replace(
            self,
            WsEvents {
                records: Vec::with_capacity(room),
                ..Default::default()
            },
        )
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.count
    }

    /// The events, decoded (payloads copied): for Rust embedders and
    /// tests; the binding hands `records` and `external` over as they are.
    pub fn iter(&self) -> impl Iterator<Item = WsEvent> + '_ {
        let b = &self.records;
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= b.len() {
                return None;
            }
            let word = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
            let kind = match b[at] {
                0 => WsEventKind::Text,
                1 => WsEventKind::Binary,
                2 => WsEventKind::Close,
                _ => WsEventKind::Drain,
            };
            let (id, len) = (word(at + 1), word(at + 5) as usize);
            let start = at + 10;
            let data = if b[at + 9] == 1 {
                at = start + 4;
                self.external[word(start) as usize].clone()
            } else {
                at = start + len;
                Bytes::copy_from_slice(&b[start..start + len])
            };
            Some(WsEvent { id, kind, data })
        })
    }
}
