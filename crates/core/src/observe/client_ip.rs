//! The client's address behind trusted proxies, for the access log.
//!
//! The same rules as the JS side's `trustProxy` (`ts/proxy.ts`), which
//! resolves `req.remoteAddress` for handlers: proxy headers (`Forwarded`,
//! else `X-Forwarded-For`, else `X-Real-IP`) count only when the TCP peer is
//! trusted, and the chain is read from the right: a client can prepend
//! anything, so the first address that is not a trusted proxy is the client.
//! Directly answered requests (404, cache hits, static files) never reach
//! JS, so the log resolves the address here.

use http::HeaderMap;
use std::net::IpAddr;

/// Which peers may say who the client is.
///
/// ```
/// use httpy_core::TrustProxy;
/// let t = TrustProxy::nets(&["127.0.0.0/8", "::1/128"]).unwrap();
/// assert!(t.trusts("127.0.0.9".parse().unwrap(), 0));
/// assert!(!t.trusts("10.0.0.1".parse().unwrap(), 0));
/// ```
#[derive(Debug, Clone, Default)]
pub enum TrustProxy {
    /// No peer: the TCP peer is the client.
    #[default]
    None,
    /// Every peer is a proxy.
    All,
    /// The nearest `n` addresses are proxies.
    Hops(u32),
    /// Addresses in these networks are proxies.
    Nets(Vec<(IpAddr, u8)>),
}

impl TrustProxy {
    /// Parses `addr` or `addr/prefix` entries (named ranges are expanded by
    /// the caller). Errors name the bad entry.
    pub fn nets(entries: &[&str]) -> Result<Self, String> {
        let mut nets = Vec::with_capacity(entries.len());
        for e in entries {
            let (addr, bits) = match e.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (*e, None),
            };
            let ip: IpAddr = addr
                .trim()
                .parse()
                .map_err(|_| format!("{e:?} is not an address or CIDR"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match bits {
                None => max,
                Some(b) => b
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| format!("{e:?} has a bad prefix"))?,
            };
            nets.push((ip, prefix));
        }
        Ok(if nets.is_empty() {
            TrustProxy::None
        } else {
            TrustProxy::Nets(nets)
        })
    }

    /// Whether `addr`, seen `hop` addresses away (0 = the TCP peer), is a proxy.
    pub fn trusts(&self, addr: IpAddr, hop: u32) -> bool {
        match self {
            TrustProxy::None => false,
            TrustProxy::All => true,
            TrustProxy::Hops(n) => hop < *n,
            TrustProxy::Nets(nets) => nets.iter().any(|(net, p)| contains(*net, *p, addr)),
        }
    }

    pub(crate) fn is_none(&self) -> bool {
        matches!(self, TrustProxy::None)
    }
}

fn contains(net: IpAddr, prefix: u8, addr: IpAddr) -> bool {
    match (net, canonical(addr)) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// An address as proxies write it (`1.2.3.4:5`, `"[::1]:80"`, `::ffff:1.2.3.4`)
/// as an IP; `None` for `unknown`, obfuscated identifiers and garbage.
fn plain(raw: &str) -> Option<IpAddr> {
    let mut a = raw.trim();
    if a.len() >= 2 && a.starts_with('"') && a.ends_with('"') {
        a = &a[1..a.len() - 1];
    }
    if let Some(rest) = a.strip_prefix('[') {
        a = &rest[..rest.find(']')?];
    } else if let (Some(i), Some(j)) = (a.find(':'), a.rfind(':')) {
        if i == j && i > 0 {
            a = &a[..i];
        }
    }
    a.parse::<IpAddr>().ok().map(canonical)
}

/// The `for=` values of RFC 7239 `Forwarded`, left to right (quoted commas
/// and semicolons do not split).
fn forwarded_for(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur_for: Option<String> = None;
    let mut pair = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    let finish_pair = |pair: &mut String, cur_for: &mut Option<String>| {
        if let Some((k, v)) = pair.split_once('=') {
            if k.trim().eq_ignore_ascii_case("for") {
                *cur_for = Some(v.trim().to_string());
            }
        }
        pair.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    pair.push(n);
                }
            }
            '"' => {
                quoted = !quoted;
                pair.push(c);
            }
            ';' if !quoted => finish_pair(&mut pair, &mut cur_for),
            ',' if !quoted => {
                finish_pair(&mut pair, &mut cur_for);
                out.push(cur_for.take().unwrap_or_default());
            }
            _ => pair.push(c),
        }
    }
    finish_pair(&mut pair, &mut cur_for);
    out.push(cur_for.take().unwrap_or_default());
    out
}

fn comma_list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The client's address: `peer` unless it, and each hop behind it, is trusted.
pub(crate) fn resolve(trust: &TrustProxy, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let peer = canonical(peer);
    if !trust.trusts(peer, 0) {
        return peer;
    }
    let hops: Vec<String> = match headers.get("forwarded").and_then(|v| v.to_str().ok()) {
        Some(f) => forwarded_for(f),
        None => {
            let xff = comma_list(headers, "x-forwarded-for");
            if xff.is_empty() {
                headers
                    .get("x-real-ip")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| vec![v.to_string()])
                    .unwrap_or_default()
            } else {
                xff
            }
        }
    };
    let mut ip = peer;
    let mut used = 0;
    for hop in hops.iter().rev() {
        let Some(addr) = plain(hop) else { break };
        ip = addr;
        used += 1;
        if !trust.trusts(addr, used) {
            break;
        }
    }
    ip
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().unwrap());
        }
        m
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let t = TrustProxy::nets(&["10.0.0.0/8"]).unwrap();
        let hs = h(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(resolve(&t, ip("192.0.2.1"), &hs), ip("192.0.2.1"));
        assert_eq!(
            resolve(&TrustProxy::None, ip("10.0.0.1"), &hs),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn chain_is_read_from_the_right_up_to_the_first_untrusted_hop() {
        let t = TrustProxy::nets(&["127.0.0.0/8", "10.0.0.0/8"]).unwrap();
        // The client prepended a fake address; 10.1.1.1 is a trusted proxy.
        let hs = h(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.1.1")]);
        assert_eq!(resolve(&t, ip("127.0.0.1"), &hs), ip("203.0.113.7"));
        assert_eq!(
            resolve(&TrustProxy::Hops(1), ip("127.0.0.1"), &hs),
            ip("10.1.1.1")
        );
        assert_eq!(
            resolve(&TrustProxy::All, ip("127.0.0.1"), &hs),
            ip("6.6.6.6")
        );
    }

    #[test]
    fn forwarded_wins_and_accepts_quoted_v6_with_ports() {
        let t = TrustProxy::All;
        let hs = h(&[
            (
                "forwarded",
                "for=\"[2001:db8::1]:4711\";proto=https, for=unknown",
            ),
            ("x-forwarded-for", "9.9.9.9"),
        ]);
        // `unknown` cannot be checked: the chain ends at the last proxy.
        assert_eq!(resolve(&t, ip("::1"), &hs), ip("::1"));
        let hs = h(&[(
            "forwarded",
            "for=\"[2001:db8::1]:4711\";proto=https, for=192.0.2.60:80",
        )]);
        assert_eq!(
            resolve(&TrustProxy::Hops(2), ip("::1"), &hs),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn x_real_ip_and_mapped_addresses() {
        let t = TrustProxy::nets(&["::1/128", "127.0.0.1"]).unwrap();
        let hs = h(&[("x-real-ip", "198.51.100.4")]);
        assert_eq!(resolve(&t, ip("::ffff:127.0.0.1"), &hs), ip("198.51.100.4"));
    }

    #[test]
    fn bad_entries_are_named() {
        assert!(TrustProxy::nets(&["10.0.0.0/33"])
            .unwrap_err()
            .contains("10.0.0.0/33"));
        assert!(TrustProxy::nets(&["nope"]).unwrap_err().contains("nope"));
        assert!(matches!(TrustProxy::nets(&[]).unwrap(), TrustProxy::None));
    }
}
