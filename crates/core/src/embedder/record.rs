//! Compact binary records for a batch of requests.
//!
//! One batch becomes one byte buffer (and a list of large bodies passed
//! separately), so crossing into JS costs one buffer for the whole batch
//! instead of a JS object per field per request. The JS side decodes fields
//! lazily, only when a handler touches them.
//!
//! Layout of one record, little-endian (the TS server, `ts/server.ts`,
//! reads the same; the decoder in this file's tests checks the round trip):
//!
//! ```text
//! u32 record length (this field included) | u32 id | u32 route (u32::MAX = none) | u8 version | u8 flags
//! u16 param count | u16 header count
//! u16 len + method | u32 len + path | u32 len + query
//! u16 len + remote ip | u16 remote port
//! params:  (u32 len + utf-8)*
//! flags&2: u16 len + allow list ("GET, HEAD")
//! flags&4: u16 len + SNI name | u8 client cert (0 none, 1 verified, 2 not verified)
//!          [u16 len + subject | u16 len + SHA-256 fingerprint]
//! headers: (u16 len + name, u32 len + value)*
//! u32 body len | u8 placement (0 inline, 1 external) | inline bytes or u32 index
//! flags&64: absolute URL bytes | u32 len of those bytes (the record's last 4)
//! ```
//! flags: bit 0 = TLS, bit 1 = allow list present, bit 2 = TLS peer facts
//! present, bit 3 = the body streams (its length is 0 here; the embedder
//! takes it with `Server::take_upload`), bit 4 = that stream carries
//! multipart parts (`body::multipart` frames), bit 5 = a multipart body
//! not read yet, bit 6 = the absolute URL trails the record ([`FLAG_URL`]).

use bytes::Bytes;
use std::io::Write as _;

use crate::embedder::queue::{Fields, Incoming, Source};

/// Bodies at least this large travel as their own buffer (no copy into the
/// batch); smaller ones are copied inline, which is cheaper than a second
/// JS object.
pub const EXTERNAL_BODY_MIN: usize = 16 * 1024;

pub const NO_ROUTE: u32 = u32::MAX;

/// The longest method a record holds whole (a u16-length field); the
/// dispatcher answers 501 to longer ones before they are queued.
pub const MAX_METHOD_LEN: usize = u16::MAX as usize;

/// Flag bit: the record ends with the request's absolute URL,
/// `scheme://host` + path + (`?` + query when the query is not empty), then
/// its length as a u32. Written when the request has exactly one `Host`
/// field whose bytes are all [`host_byte`]s; a fetch handler's
/// `request.url` (and `req.host`) is then one slice from the record's end,
/// already a flat string, instead of a walk to the `Host` field, a
/// concatenation and the flattening its first reader pays (about 0.1–0.15
/// µs of the JS thread, docs/performance.md §13.4). Cost here: the `Host`
/// name compared while the fields are copied anyway, and one copy of the
/// host, path and query (a few dozen bytes) per request; written only when
/// the embedder asked for it ([`crate::Waker::urls`]: a server with a
/// fetch-style handler), since HTTPy's own handlers never read it.
pub const FLAG_URL: u8 = 64;

/// Bytes a `Host` value may hold for the URL to be built from it (RFC 3986
/// `reg-name`, IPv6 brackets and the port's colon): anything else leaves
/// the URL to the embedder, which falls back to the listening address.
const fn host_byte(b: u8) -> bool {
    matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9'
        | b'-' | b'.' | b'_' | b'~' | b'%' | b'!' | b'$' | b'&' | b'\''
        | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'[' | b']')
}

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

/// Writes the dotted form of an IPv4 address into `out`, returning its
/// length. The `fmt` machinery took ~0.035 µs per request of the JS thread
/// (a profile of /plaintext); this takes a few nanoseconds.
fn ipv4_text(octets: [u8; 4], out: &mut [u8; 48]) -> usize {
    let mut n = 0;
    for (i, o) in octets.into_iter().enumerate() {
        if i > 0 {
            out[n] = b'.';
            n += 1;
        }
        if o >= 100 {
            out[n] = b'0' + o / 100;
            n += 1;
        }
        if o >= 10 {
            out[n] = b'0' + o / 10 % 10;
            n += 1;
        }
        out[n] = b'0' + o % 10;
        n += 1;
    }
    n
}

/// Appends one request to `out`, with the URL trailer ([`FLAG_URL`]) when
/// the request allows it; a large body is moved to `external`.
pub fn encode(req: &Incoming, out: &mut Vec<u8>, external: &mut Vec<Bytes>) {
    encode_fields(&req.fields(), out, external, true)
}

/// [`encode`] without the URL trailer, as a server without fetch-style
/// handlers writes its records.
pub fn encode_without_url(req: &Incoming, out: &mut Vec<u8>, external: &mut Vec<Bytes>) {
    encode_fields(&req.fields(), out, external, false)
}

/// [`encode`] from borrowed fields: the dispatcher writes a request's
/// record from its parsed parts (the URI's path and query, the head's
/// bytes) without first copying them into an [`Incoming`]. `url`: whether
/// to write the URL trailer (the queue's [`crate::Waker::urls`]).
pub(crate) fn encode_fields(
    req: &Fields<'_>,
    out: &mut Vec<u8>,
    external: &mut Vec<Bytes>,
    url: bool,
) {
    // Formatted on the stack: this runs once per request, and `to_string`
    // would allocate each time. 45 bytes hold any IPv6 text form.
    let mut ip_buf = [0u8; 48];
    let ip_len = match req.remote.ip() {
        std::net::IpAddr::V4(v4) => ipv4_text(v4.octets(), &mut ip_buf),
        ip => {
            let mut w = &mut ip_buf[..];
            let _ = write!(w, "{ip}");
            48 - w.len()
        }
    };
    let ip = &ip_buf[..ip_len];
    let fields_room = match req.headers {
        Source::Map(m) => m.len() * 32,
        Source::Head(h) => h.len() + 64,
    };
    out.reserve(64 + req.path.len() + req.query.len() + fields_room);
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
    if req.tls_peer.is_some() {
        flags |= 4;
    }
    if req.streamed {
        flags |= 8;
    }
    if req.multipart {
        flags |= 16;
    }
    if req.parts_on_ask {
        flags |= 32;
    }
    let flags_at = out.len();
    out.push(flags);
    put_u16(out, req.params.len());
    // The header count: known here for a map, filled in after the fields
    // for a head (some of its `Content-Length` fields are left out).
    let count_at = out.len();
    put_u16(out, 0);
    put_str16(out, req.method.as_str().as_bytes());
    put_str32(out, req.path.as_bytes());
    put_str32(out, req.query.as_bytes());
    put_str16(out, ip);
    put_u16(out, req.remote.port() as usize);
    for p in req.params {
        put_str32(out, p.as_bytes());
    }
    if let Some(allow) = req.allow {
        put_str16(out, allow.join(", ").as_bytes());
    }
    if let Some(peer) = req.tls_peer {
        put_str16(out, peer.server_name.as_deref().unwrap_or("").as_bytes());
        match &peer.client_cert {
            None => out.push(0),
            Some(c) => {
                out.push(if c.authorized { 1 } else { 2 });
                put_str16(out, c.subject.as_bytes());
                put_str16(out, c.fingerprint256.as_bytes());
            }
        }
    }
    // Where the `Host` value lands in `out`, and how many `Host` fields
    // there were: the URL trailer is written for exactly one. Without a
    // trailer wanted (`url` false: no fetch-style handler) no name is
    // compared (a 4-byte compare per field, ~10 per request, saved).
    let (mut host_at, mut hosts) = (0usize, 0u32);
    let count = match req.headers {
        Source::Map(map) => {
            for (name, value) in map.iter() {
                put_str16(out, name.as_str().as_bytes());
                put_str32(out, value.as_bytes());
                if url && name == http::header::HOST {
                    hosts += 1;
                    host_at = out.len() - value.len();
                }
            }
            map.len()
        }
        Source::Head(head) => {
            let mut n = 0;
            head.each_field(&mut |name, value| {
                // Lower-cased as `HeaderName` does, in place after the
                // copy (names are at most 64 KiB - 1: the parse refused longer).
                put_str16(out, name.as_bytes());
                let end = out.len();
                out[end - name.len()..].make_ascii_lowercase();
                let is_host = url && out[end - name.len()..] == *b"host";
                put_str32(out, value);
                if is_host {
                    hosts += 1;
                    host_at = out.len() - value.len();
                }
                n += 1;
            });
            n
        }
    };
    out[count_at..count_at + 2]
        .copy_from_slice(&(count.min(u16::MAX as usize) as u16).to_le_bytes());
    put_u32(out, req.body.len());
    if req.body.len() >= EXTERNAL_BODY_MIN {
        out.push(1);
        put_u32(out, external.len());
        external.push(req.body.clone());
    } else {
        out.push(0);
        out.extend_from_slice(req.body);
    }
    if url && hosts == 1 {
        put_url(out, flags_at, host_at, req);
    }
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Appends the absolute URL trailer ([`FLAG_URL`]) of the record whose
/// flags byte is at `flags_at` and whose one `Host` value begins at
/// `host_at` of `out` (its length is the u32 before it), and sets the flag;
/// an empty `Host`, or one with a byte [`host_byte`] refuses, leaves the
/// record as it is.
fn put_url(out: &mut Vec<u8>, flags_at: usize, host_at: usize, req: &Fields<'_>) {
    let host_len = u32::from_le_bytes([
        out[host_at - 4],
        out[host_at - 3],
        out[host_at - 2],
        out[host_at - 1],
    ]) as usize;
    let host = host_at..host_at + host_len;
    if host_len == 0 || !out[host.clone()].iter().all(|&b| host_byte(b)) {
        return;
    }
    let url_at = out.len();
    out.extend_from_slice(if req.tls { b"https://" } else { b"http://" });
    out.extend_from_within(host);
    out.extend_from_slice(req.path.as_bytes());
    if !req.query.is_empty() {
        out.push(b'?');
        out.extend_from_slice(req.query.as_bytes());
    }
    put_u32(out, out.len() - url_at);
    out[flags_at] |= FLAG_URL;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedder::queue::tests::{incoming, queue};
    use crate::embedder::queue::Version;
    use http::{HeaderMap, HeaderName, HeaderValue, Method};
    use proptest::prelude::*;
    use std::net::{IpAddr, SocketAddr};

    /// What a reader of the layout gets back from one record.
    /// SNI name, then (verified, subject, fingerprint) of a client certificate.
    type Peer = (String, Option<(bool, String, String)>);

    #[derive(Debug, PartialEq)]
    struct Decoded {
        id: u32,
        route: Option<u32>,
        version: u8,
        tls: bool,
        method: String,
        path: String,
        query: String,
        ip: String,
        port: u16,
        params: Vec<String>,
        allow: Option<String>,
        /// SNI name, then (verified, subject, fingerprint) of a client cert.
        peer: Option<Peer>,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
        /// The absolute URL trailer (`FLAG_URL`).
        url: Option<String>,
    }

    struct Reader<'a>(&'a [u8]);

    impl Reader<'_> {
        fn take(&mut self, n: usize) -> &[u8] {
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            head
        }
        fn u8(&mut self) -> u8 {
            self.take(1)[0]
        }
        fn u16(&mut self) -> u16 {
            u16::from_le_bytes(self.take(2).try_into().unwrap())
        }
        fn u32(&mut self) -> u32 {
            u32::from_le_bytes(self.take(4).try_into().unwrap())
        }
        fn bytes16(&mut self) -> Vec<u8> {
            let n = self.u16() as usize;
            self.take(n).to_vec()
        }
        fn bytes32(&mut self) -> Vec<u8> {
            let n = self.u32() as usize;
            self.take(n).to_vec()
        }
        fn str16(&mut self) -> String {
            String::from_utf8(self.bytes16()).unwrap()
        }
        fn str32(&mut self) -> String {
            String::from_utf8(self.bytes32()).unwrap()
        }
    }

    /// Reads one record from the front of `buf`; returns it and its length.
    fn decode(buf: &[u8], external: &[Bytes]) -> (Decoded, usize) {
        let mut r = Reader(buf);
        let len = r.u32() as usize;
        let id = r.u32();
        let route = Some(r.u32()).filter(|&n| n != NO_ROUTE);
        let version = r.u8();
        let flags = r.u8();
        let (nparams, nheaders) = (r.u16(), r.u16());
        let method = r.str16();
        let path = r.str32();
        let query = r.str32();
        let ip = r.str16();
        let port = r.u16();
        let params = (0..nparams).map(|_| r.str32()).collect();
        let allow = (flags & 2 != 0).then(|| r.str16());
        let peer = (flags & 4 != 0).then(|| {
            let sni = r.str16();
            let cert = match r.u8() {
                0 => None,
                v => Some((v == 1, r.str16(), r.str16())),
            };
            (sni, cert)
        });
        let headers = (0..nheaders).map(|_| (r.str16(), r.bytes32())).collect();
        let body_len = r.u32() as usize;
        let body = match r.u8() {
            0 => r.take(body_len).to_vec(),
            _ => external[r.u32() as usize].to_vec(),
        };
        let url = (flags & FLAG_URL != 0).then(|| {
            let rest = len - (buf.len() - r.0.len());
            let url = String::from_utf8(r.take(rest - 4).to_vec()).unwrap();
            assert_eq!(r.u32() as usize, url.len(), "the trailer's length");
            url
        });
        assert_eq!(
            buf.len() - r.0.len(),
            len,
            "the length field covers the record"
        );
        let d = Decoded {
            id,
            route,
            version,
            tls: flags & 1 != 0,
            method,
            path,
            query,
            ip,
            port,
            params,
            allow,
            peer,
            headers,
            body,
            url,
        };
        (d, len)
    }

    fn header_map(pairs: &[(String, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn version() -> impl Strategy<Value = Version> {
        prop_oneof![
            Just(Version::Http10),
            Just(Version::Http11),
            Just(Version::Http2),
            Just(Version::Http3)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn records_round_trip(
            route in proptest::option::of(0u32..1000),
            method in "[A-Z]{1,10}",
            path in "/[ -~]{0,60}",
            query in "[ -~]{0,40}",
            params in prop::collection::vec(".{0,20}", 0..4),
            allow in proptest::option::of(prop::collection::vec("[A-Z]{3,7}", 1..4)),
            headers in prop::collection::vec(("[a-z][a-z0-9-]{0,15}", "[!-~]([ -~]{0,30}[!-~])?"), 0..8),
            // Hosts the URL is built from, and ones it is not (a space, a
            // slash, `@`, a quote, a non-ASCII byte, or two `Host` fields).
            host in proptest::option::of(prop_oneof![
                "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
                "\\[[0-9a-f:]{2,20}\\](:[0-9]{1,5})?",
                "[!-~]{1,12}",
                "[a-z]{1,5}[ /@\"\u{e9}][a-z]{0,5}",
            ]),
            second_host in any::<bool>(),
            ip in any::<IpAddr>(),
            port in any::<u16>(),
            tls in any::<bool>(),
            peer in proptest::option::of(("[a-z.]{0,20}", proptest::option::of((any::<bool>(), "[ -~]{0,30}", "[0-9A-F:]{0,20}")))),
            version in version(),
            body_len in prop_oneof![0usize..64, Just(EXTERNAL_BODY_MIN - 1), Just(EXTERNAL_BODY_MIN)],
            second_body in 0usize..32,
            urls in any::<bool>(),
        ) {
            let (q, _, _) = queue();
            let (mut req, _rx) = incoming(&q, &path);
            req.route = route;
            req.method = Method::from_bytes(method.as_bytes()).unwrap();
            req.query = query.clone();
            req.params = params.clone();
            req.allow = allow.clone();
            req.headers = header_map(&headers);
            if let Some(h) = &host {
                req.headers.append(http::header::HOST, HeaderValue::from_str(h).unwrap());
                if second_host {
                    req.headers.append(http::header::HOST, HeaderValue::from_static("b.test"));
                }
            }
            req.remote = SocketAddr::new(ip, port);
            req.tls = tls;
            req.tls_peer = peer.clone().map(|(sni, cert)| {
                std::sync::Arc::new(crate::TlsPeer {
                    server_name: Some(sni).filter(|s| !s.is_empty()).map(String::into_boxed_str),
                    client_cert: cert.map(|(authorized, subject, fingerprint256)| crate::ClientCert {
                        subject,
                        fingerprint256,
                        authorized,
                    }),
                })
            });
            req.version = version;
            req.body = Bytes::from(vec![7u8; body_len]);
            let (mut other, _rx2) = incoming(&q, "/next");
            other.body = Bytes::from(vec![1u8; second_body]);

            let (mut out, mut external) = (Vec::new(), Vec::new());
            let put = if urls { encode } else { encode_without_url };
            put(&req, &mut out, &mut external);
            put(&other, &mut out, &mut external);

            let (first, used) = decode(&out, &external);
            let (second, rest) = decode(&out[used..], &external);
            prop_assert_eq!(used + rest, out.len());
            prop_assert_eq!(external.len(), usize::from(body_len >= EXTERNAL_BODY_MIN));
            prop_assert_eq!(&second.path, "/next");
            prop_assert_eq!(second.body.len(), second_body);
            let want = Decoded {
                id: req.id,
                route,
                version: version as u8,
                tls,
                method,
                path,
                query,
                ip: ip.to_string(),
                port,
                params,
                allow: allow.map(|a| a.join(", ")),
                peer,
                headers: req
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
                    .collect(),
                body: vec![7u8; body_len],
                url: expected_url(&req.headers, tls, &req.path, &req.query).filter(|_| urls),
            };
            prop_assert_eq!(first, want);
        }
    }

    /// The URL a reader expects, made as a fetch handler's fallback makes it
    /// (`ts/web-request.ts`): only from exactly one `Host` whose characters
    /// all match its pattern.
    fn expected_url(headers: &HeaderMap, tls: bool, path: &str, query: &str) -> Option<String> {
        let mut hosts = headers.get_all(http::header::HOST).iter();
        let host = hosts.next()?.to_str().ok()?;
        if hosts.next().is_some() || host.is_empty() {
            return None;
        }
        let allowed = "-._~%!$&'()*+,;=:[]";
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || allowed.contains(c))
        {
            return None;
        }
        let scheme = if tls { "https" } else { "http" };
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        Some(format!("{scheme}://{host}{path}{q}"))
    }

    /// A head read through [`HeadFields`], as the own HTTP/1.1 driver's is.
    struct Head(Vec<(&'static str, &'static [u8])>);

    impl crate::embedder::queue::HeadFields for Head {
        fn each_field(&self, f: &mut dyn FnMut(&str, &[u8])) {
            for (n, v) in &self.0 {
                f(n, v);
            }
        }
        fn len(&self) -> usize {
            64
        }
    }

    #[test]
    fn a_heads_host_makes_the_url_whatever_its_case() {
        let (q, _, _) = queue();
        let (mut req, _rx) = incoming(&q, "/users/42");
        req.query = "a=1".into();
        let encode_head_with = |head: &Head, tls: bool, url: bool| {
            let mut fields = req.fields();
            fields.headers = Source::Head(head);
            fields.tls = tls;
            let (mut out, mut external) = (Vec::new(), Vec::new());
            encode_fields(&fields, &mut out, &mut external, url);
            decode(&out, &external).0
        };
        let encode_head = |head: &Head, tls: bool| encode_head_with(head, tls, true);
        let head = Head(vec![
            ("Accept", b"*/*"),
            ("HOST", b"api.test:8080"),
            ("X-A", b"1"),
        ]);
        let got = encode_head(&head, false);
        assert_eq!(
            got.url.as_deref(),
            Some("http://api.test:8080/users/42?a=1")
        );
        assert_eq!(got.headers[1], ("host".into(), b"api.test:8080".to_vec()));
        let got = encode_head(&head, true);
        assert_eq!(
            got.url.as_deref(),
            Some("https://api.test:8080/users/42?a=1")
        );
        // Not asked for: the same record without it.
        let bare = encode_head_with(&head, true, false);
        assert_eq!(bare.url, None);
        assert_eq!(bare, Decoded { url: None, ..got });
        // Two, none, an empty one, or one with a space: no URL.
        for fields in [
            vec![("Host", &b"a.test"[..]), ("host", b"a.test")],
            vec![("X-Host", b"a.test"), ("Hos", b"a.test")],
            vec![("Host", b"")],
            vec![("Host", b"a test")],
        ] {
            let got = encode_head(&Head(fields), false);
            assert_eq!(got.url, None);
        }
    }

    #[test]
    fn ipv4_text_matches_display() {
        let mut buf = [0u8; 48];
        for a in [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [10, 99, 100, 9],
            [255, 255, 255, 255],
            [1, 20, 200, 109],
        ] {
            let n = ipv4_text(a, &mut buf);
            let want = std::net::Ipv4Addr::from(a).to_string();
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), want);
        }
    }

    /// Fuzz target: field contents made from the seed corpus
    /// (`tests/corpus/record/`) and its mutants, any bytes a field may hold,
    /// through encode and decode. Lengths near the u16 fields' limit are in
    /// the corpus.
    #[test]
    fn records_round_trip_any_field_bytes() {
        use crate::fuzz_targets::fuzz;
        let seeds: Vec<Vec<u8>> = fuzz::corpus("record").into_iter().map(|(_, s)| s).collect();
        let field = || fuzz::mutants(seeds.clone());
        let strategy = (field(), field(), field(), field(), field());
        fuzz::run_strategy("record", strategy, |(method, name, value, param, query)| {
            let token = |b: &[u8], or: &str| {
                let t: Vec<u8> = b
                    .iter()
                    .copied()
                    .filter(u8::is_ascii_alphanumeric)
                    .collect();
                if t.is_empty() {
                    or.as_bytes().to_vec()
                } else {
                    t
                }
            };
            // Longer methods are refused before a record is made (501).
            let mut method = token(&method, "GET");
            method.truncate(MAX_METHOD_LEN);
            let method = Method::from_bytes(&method).unwrap();
            let name = HeaderName::from_bytes(&token(&name, "x").to_ascii_lowercase())
                .unwrap_or(HeaderName::from_static("x"));
            let value: Vec<u8> = value
                .into_iter()
                .filter(|&b| b == b'\t' || b >= 0x20 && b != 0x7f)
                .collect();
            let value = HeaderValue::from_bytes(&value).unwrap();
            let param = String::from_utf8_lossy(&param).into_owned();
            let query = String::from_utf8_lossy(&query).into_owned();

            let (q, _, _) = queue();
            let (mut req, _rx) = incoming(&q, &format!("/{param}"));
            req.method = method.clone();
            req.query = query.clone();
            req.params = vec![param.clone(), String::new()];
            req.headers.append(name.clone(), value.clone());
            req.body = Bytes::from(value.as_bytes().to_vec());
            let (mut out, mut external) = (Vec::new(), Vec::new());
            encode(&req, &mut out, &mut external);
            let (got, used) = decode(&out, &external);
            prop_assert_eq!(used, out.len());
            prop_assert_eq!(got.method, method.as_str());
            prop_assert_eq!(got.path, format!("/{param}"));
            prop_assert_eq!(got.query, query);
            prop_assert_eq!(got.params, vec![param, String::new()]);
            prop_assert_eq!(
                got.headers,
                vec![(name.as_str().to_string(), value.as_bytes().to_vec())]
            );
            prop_assert_eq!(got.body, value.as_bytes());
            Ok(())
        });
    }
}
