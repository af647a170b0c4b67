//! The encoding of a batch of WebSocket events (message, drain, close)
//! into the bytes the binding hands to the embedder.

use bytes::Bytes;

use super::hub::WsEvent;

/// Appends the events of one batch to `out` (layout in `ts/websocket.ts`):
/// `u8 kind | u32 id | u32 len | u8 placement | inline bytes or u32 index`.
pub fn encode(events: &[WsEvent], out: &mut Vec<u8>, external: &mut Vec<Bytes>) {
    for ev in events {
        out.push(ev.kind as u8);
        out.extend_from_slice(&ev.id.to_le_bytes());
        out.extend_from_slice(&(ev.data.len() as u32).to_le_bytes());
        if ev.data.len() >= crate::embedder::record::EXTERNAL_BODY_MIN {
            out.push(1);
            out.extend_from_slice(&(external.len() as u32).to_le_bytes());
            external.push(ev.data.clone());
        } else {
            out.push(0);
            out.extend_from_slice(&ev.data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::hub::{Hub, WsEventKind, WsOptions};
    use std::sync::atomic::Ordering;

    #[test]
    fn events_encode_inline_and_external() {
        let hub = Hub::default();
        let conn = hub.register(7, WsOptions::default());
        hub.push(&conn, WsEventKind::Text, Bytes::from_static(b"hi"));
        hub.push(
            &conn,
            WsEventKind::Binary,
            Bytes::from(vec![1u8; crate::embedder::record::EXTERNAL_BODY_MIN]),
        );
        let events = hub.take_events();
        assert_eq!(conn.undrained.load(Ordering::Relaxed), 0);
        let (mut out, mut ext) = (Vec::new(), Vec::new());
        encode(&events, &mut out, &mut ext);
        assert_eq!(&out[..12], &[0, 7, 0, 0, 0, 2, 0, 0, 0, 0, b'h', b'i']);
        assert_eq!(out[12], 1);
        assert_eq!(out[21], 1, "large payloads travel as their own buffer");
        assert_eq!(ext.len(), 1);
    }
}
