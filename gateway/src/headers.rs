//! Header hygiene, in exactly one place: what varco removes from every inbound request before
//! anything reads it, and the forwarding headers it sets on the way to a back-end.
//!
//! Removed, on every route, whatever the spelling (HTTP names are case-insensitive, and many
//! back-ends read `X_Varco_Level` as `X-Varco-Level`, so `_` counts as `-`):
//! * every `X-Varco-*` header: varco's own namespace;
//! * every header name a service maps an attribute to (`headers = { "X-CF" = ... }`), for every
//!   service, since a back-end may trust it;
//! * from peers that are not trusted proxies, `Forwarded`, `X-Forwarded-*` and `X-Real-IP`;
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

/// The header names varco owns beyond its prefix, in canonical form (lower case, `-`).
#[derive(Debug, Clone, Default)]
pub struct StripSet {
    names: HashSet<Box<str>>,
}

impl StripSet {
    /// Builds the set from every service's configured header names.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            names: names
                .into_iter()
                .map(|n| policies::canonical_header_name(n).into_boxed_str())
                .collect(),
        }
    }

    /// Whether an inbound header of this (lower-case) name must go.
    fn owns(&self, name: &str, peer_trusted: bool) -> bool {
        if name.contains('_') {
            let canon = policies::canonical_header_name(name);
            return self.owns_canonical(&canon, peer_trusted);
        }
        self.owns_canonical(name, peer_trusted)
    }

    fn owns_canonical(&self, name: &str, peer_trusted: bool) -> bool {
        name.starts_with(VARCO_PREFIX)
            || self.names.contains(name)
            || (!peer_trusted
                && (name == "forwarded" || name == "x-real-ip" || name.starts_with("x-forwarded-")))
    }
}

/// Removes every inbound header that varco owns (see the module docs) and every header nominated
/// by `Connection`. Returns how many distinct names were removed, for the metric.
pub fn strip_inbound(req: &mut RequestHeader, set: &StripSet, peer_trusted: bool) -> usize {
    let mut doomed: Vec<HeaderName> = Vec::new();
    for name in req.headers.keys() {
        if set.owns(name.as_str(), peer_trusted) {
            doomed.push(name.clone());
        }
    }
    let removed = doomed.len();
    for name in doomed.drain(..) {
        req.remove_header(&name);
    }
    sanitize_connection(req);
    removed
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
        value.push_str(&ip.to_string());
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
