//! Compact binary records for a batch of requests.
//!
//! One batch becomes one byte buffer (and a list of large bodies passed
//! separately), so crossing into JS costs one buffer for the whole batch
//! instead of a JS object per field per request. The JS side decodes fields
//! lazily, only when a handler touches them.
//!
//! Layout of one record, little-endian (`ts/record.ts` reads the same):
//!
//! ```text
//! u32 record length (this field included) | u32 id | u32 route (u32::MAX = none) | u8 version | u8 flags
//! u16 param count | u16 header count
//! u16 len + method | u32 len + path | u32 len + query
//! u16 len + remote ip | u16 remote port
//! params:  (u32 len + utf-8)*
//! flags&2: u16 len + allow list ("GET, HEAD")
//! headers: (u16 len + name, u32 len + value)*
//! u32 body len | u8 placement (0 inline, 1 external) | inline bytes or u32 index
//! ```
//! flags: bit 0 = TLS, bit 1 = allow list present.

use bytes::Bytes;
use std::io::Write as _;

use crate::embedder::queue::Incoming;

/// Bodies at least this large travel as their own buffer (no copy into the
/// batch); smaller ones are copied inline, which is cheaper than a second
/// JS object.
pub const EXTERNAL_BODY_MIN: usize = 16 * 1024;

pub const NO_ROUTE: u32 = u32::MAX;

#[inline]
fn put_u16(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v.min(u16::MAX as usize) as u16).to_le_bytes());
}

#[inline]
fn put_u32(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_le_bytes());
}

#[inline]
fn put_str16(out: &mut Vec<u8>, s: &[u8]) {
    let s = &s[..s.len().min(u16::MAX as usize)];
    put_u16(out, s.len());
    out.extend_from_slice(s);
}

#[inline]
fn put_str32(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, s.len());
    out.extend_from_slice(s);
}

/// Appends one request to `out`; a large body is moved to `external`.
pub fn encode(req: &Incoming, out: &mut Vec<u8>, external: &mut Vec<Bytes>) {
    // Formatted on the stack: this runs once per request, and `to_string`
    // would allocate each time. 45 bytes hold any IPv6 text form.
    let mut ip_buf = [0u8; 48];
    let ip_len = {
        let mut w = &mut ip_buf[..];
        let _ = write!(w, "{}", req.remote.ip());
        48 - w.len()
    };
    let ip = &ip_buf[..ip_len];
    out.reserve(64 + req.path.len() + req.query.len() + req.headers.len() * 32);
    let start = out.len();
    put_u32(out, 0); // record length, filled in below
    put_u32(out, req.id as usize);
    put_u32(out, req.route.unwrap_or(NO_ROUTE) as usize);
    out.push(req.version as u8);
    let mut flags = 0u8;
    if req.tls {
        flags |= 1;
    }
    if req.allow.is_some() {
        flags |= 2;
    }
    out.push(flags);
    put_u16(out, req.params.len());
    put_u16(out, req.headers.len());
    put_str16(out, req.method.as_str().as_bytes());
    put_str32(out, req.path.as_bytes());
    put_str32(out, req.query.as_bytes());
    put_str16(out, ip);
    put_u16(out, req.remote.port() as usize);
    for p in &req.params {
        put_str32(out, p.as_bytes());
    }
    if let Some(allow) = &req.allow {
        put_str16(out, allow.join(", ").as_bytes());
    }
    for (name, value) in req.headers.iter() {
        put_str16(out, name.as_str().as_bytes());
        put_str32(out, value.as_bytes());
    }
    put_u32(out, req.body.len());
    if req.body.len() >= EXTERNAL_BODY_MIN {
        out.push(1);
        put_u32(out, external.len());
        external.push(req.body.clone());
    } else {
        out.push(0);
        out.extend_from_slice(&req.body);
    }
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}
