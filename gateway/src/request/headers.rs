//! Header hygiene, in exactly one place: what varco removes from every inbound request before
//! anything reads it, and the forwarding headers it sets on the way to a back-end.
//!
//! Removed, on every route, whatever the spelling (HTTP names are case-insensitive, and many
//! back-ends read `X_Varco_Level` as `X-Varco-Level`, so `_` counts as `-`):
//! * every `X-Varco-*` header: varco's own namespace;
//! * `X-Original-URL` and `X-Rewrite-URL`, path overrides some back-ends obey;
//! * on a service's route, every header name an attribute is mapped to (`headers = { "X-CF" =
//!   ... }`) by a service on the same host or behind the same upstream, since that back-end may
//!   trust it ([`strip_mapped`], once the route is known);
//! * from peers that are not trusted proxies, `Forwarded`, `X-Forwarded-*`, `X-Real-IP` and the
//!   other client-address and original-host headers that frameworks and CDNs read
//!   ([`CLIENT_ADDRESS`]): a back-end that logs, limits or allows by address must not learn a
//!   forged one;
//! * every header that `Connection:` nominates (RFC 9110 §7.6.1), so that a client cannot ask a
//!   hop to drop a header varco adds; only `close`, `keep-alive` and `upgrade` stay nominated.
//!
//! Identity and forwarding headers are then set in `upstream_request_filter`, after pingora's own
//! hop-by-hop processing, so that nothing can remove them on the way.

use std::collections::HashSet;
use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue, CONNECTION};
use ipnet::IpNet;
use pingora::http::RequestHeader;

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The prefix of every header varco owns.
pub const VARCO_PREFIX: &str = "x-varco-";

/// The header names a service's back-end may trust beyond varco's prefix: those mapped by the
/// services on its host or behind its upstream (canonical form: lower case, `-`). Only those go,
/// so that one comune mapping a name does not take it from every other comune's requests.
#[derive(Debug, Clone, Default)]
pub struct StripSet {
    names: HashSet<Box<str>>,
}

impl StripSet {
    /// Builds the set from configured header names.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            names: names
                .into_iter()
                .map(|n| policies::canonical_header_name(n).into_boxed_str())
                .collect(),
        }
    }

    /// Whether the set holds no name.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn contains(&self, name: &str) -> bool {
        if name.contains('_') {
            return self
                .names
                .contains(policies::canonical_header_name(name).as_str());
        }
        self.names.contains(name)
    }
}

/// Path overrides that IIS (URL Rewrite), Symfony and Zend read instead of the request line: a
/// back-end honouring them would serve another path than the one varco routed and decided on.
const PATH_OVERRIDES: &[&str] = &["x-original-url", "x-rewrite-url"];

/// Headers besides `Forwarded`/`X-Forwarded-*` that back-ends read as the client's address or
/// the original host (Akamai, Cloudflare, Fastly, Rackspace, ASP.NET, ipware, Spring): only a
/// trusted proxy may send them.
pub const CLIENT_ADDRESS: &[&str] = &[
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-original-forwarded-for",
    "x-original-host",
    "x-host",
];

/// Whether an inbound header of this (lower-case) name goes on every route.
fn owned_everywhere(name: &str, peer_trusted: bool) -> bool {
    if name.contains('_') {
        return owned_canonical(&policies::canonical_header_name(name), peer_trusted);
    }
    owned_canonical(name, peer_trusted)
}

fn owned_canonical(name: &str, peer_trusted: bool) -> bool {
    name.starts_with(VARCO_PREFIX)
        || PATH_OVERRIDES.contains(&name)
        || (!peer_trusted
            && (name == "forwarded"
                || name.starts_with("x-forwarded-")
                || CLIENT_ADDRESS.contains(&name)))
}

/// Removes every inbound header that varco owns on every route (see the module docs) and every
/// header nominated by `Connection`. Returns how many distinct names were removed, for the
/// metric.
pub fn strip_inbound(req: &mut RequestHeader, peer_trusted: bool) -> usize {
    let removed = remove_where(req, |name| owned_everywhere(name, peer_trusted));
    sanitize_connection(req);
    removed
}

/// Removes the names of `set` (a service's mapped identity headers), in any spelling. Returns
/// how many distinct names were removed.
pub fn strip_mapped(req: &mut RequestHeader, set: &StripSet) -> usize {
    if set.is_empty() {
        return 0;
    }
    remove_where(req, |name| set.contains(name))
}

fn remove_where(req: &mut RequestHeader, doomed_name: impl Fn(&str) -> bool) -> usize {
    let doomed: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|n| doomed_name(n.as_str()))
        .cloned()
        .collect();
    for name in &doomed {
        req.remove_header(name);
    }
    doomed.len()
}

/// Drops the headers `Connection` nominates and keeps only `close`, `keep-alive` and `upgrade` in it.
fn sanitize_connection(req: &mut RequestHeader) {
    if !req.headers.contains_key(CONNECTION) {
        return;
    }
    let mut keep: Vec<&'static str> = Vec::new();
    let mut nominated: Vec<HeaderName> = Vec::new();
    for value in req.headers.get_all(CONNECTION) {
        for token in value.as_bytes().split(|b| *b == b',') {
            let token = token.trim_ascii();
            if token.is_empty() {
                continue;
            }
            let known = [
                ("close", "close"),
                ("keep-alive", "keep-alive"),
                ("upgrade", "Upgrade"),
            ]
            .into_iter()
            .find(|(t, _)| token.eq_ignore_ascii_case(t.as_bytes()));
            match known {
                Some((_, canonical)) => {
                    if !keep.contains(&canonical) {
                        keep.push(canonical);
                    }
                }
                None => {
                    if let Ok(name) = HeaderName::from_bytes(token) {
                        nominated.push(name);
                    }
                }
            }
        }
    }
    for name in nominated {
        req.remove_header(&name);
    }
    req.remove_header(&CONNECTION);
    if !keep.is_empty() {
        let joined = keep.join(", ");
        if let Ok(v) = HeaderValue::from_str(&joined) {
            let _ = req.insert_header(CONNECTION, v);
        }
    }
}

/// Whether `ip` is one of the configured trusted proxies.
pub fn is_trusted(ip: Option<IpAddr>, trusted: &[IpNet]) -> bool {
    match ip {
        Some(ip) => trusted.iter().any(|net| net.contains(&ip)),
        None => false,
    }
}

/// Sets `X-Forwarded-For/-Proto/-Host` on the upstream request. From a trusted proxy its values
/// are kept and the peer is appended to `X-Forwarded-For`; otherwise (they were removed) they are
/// set from this connection.
pub fn set_forwarded(
    up: &mut RequestHeader,
    client_ip: Option<IpAddr>,
    proto: &'static str,
    host: Option<&HeaderValue>,
) -> pingora::Result<()> {
    if let Some(ip) = client_ip {
        let mut value = String::new();
        for v in up.headers.get_all(&X_FORWARDED_FOR) {
            if let Ok(s) = v.to_str() {
                if !value.is_empty() {
                    value.push_str(", ");
                }
                value.push_str(s.trim());
            }
        }
        if !value.is_empty() {
            value.push_str(", ");
        }
        // Written in place: no string of its own per request.
        let _ = std::fmt::Write::write_fmt(&mut value, format_args!("{ip}"));
        up.insert_header(X_FORWARDED_FOR, value)?;
    }
    if !up.headers.contains_key(&X_FORWARDED_PROTO) {
        up.insert_header(X_FORWARDED_PROTO, proto)?;
    }
    if !up.headers.contains_key(&X_FORWARDED_HOST) {
        if let Some(h) = host {
            up.insert_header(X_FORWARDED_HOST, h.clone())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
