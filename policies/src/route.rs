//! The compiled route table: which service a request is for, by host and then longest path prefix.
//!
//! # Matching rules
//!
//! Back-ends behind varco are heterogeneous (Tomcat, IIS, PHP, nginx), and a path that varco reads
//! one way and a back-end reads another is a policy bypass. So varco matches on the path a lenient
//! back-end would see, and refuses what has no single reading:
//!
//! * **Host**: the `Host` header (or the authority of an absolute-form target), compared without
//!   its port, case-insensitively, with one trailing dot removed. A host that is neither the
//!   portal's nor a service's gets the 404 page.
//! * **Case**: path comparison is ASCII case-insensitive (`/TARI/` is the `/tari/` service), because
//!   some back-ends are; two services whose prefixes differ only in case are a configuration error.
//! * **Segments**: a prefix matches whole segments: `/tari` and `/tari/` both match `/tari`,
//!   `/tari/` and `/tari/x` and never `/tarip`. The longest matching prefix wins; `/` matches all.
//! * **Duplicate slashes** are collapsed for matching (`//tari` is `/tari`).
//! * **Percent-encoding**: escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded for
//!   matching (`/%74ari` is `/tari`); other escapes stay as they are. A malformed escape, an encoded
//!   `/` or `\` (`%2F`, `%5C`) or an encoded control character is rejected with 400.
//! * **Dot segments**: `.` and `..`, also encoded (`%2e%2e`) or followed by parameters (`..;`), are
//!   rejected with 400: browsers never send them, and back-ends disagree on how to resolve them.
//! * **`;` parameters**: `/tari;jsessionid=1/x` matches as `/tari/x` (what Tomcat does).
//! * **Double encoding**: an escaped `%` followed by two hex digits (`%252e`, `%252f`) is
//!   rejected with 400: a back-end (or a framework in front of it) that decodes twice would read
//!   `%252f..%252ftari` as `/../tari`, a path varco never matched.
//! * **Backslash and control characters** in the raw path are rejected with 400.
//! * **Trailing dots and spaces**: a segment that ends in `.` or in an escaped space (`/tari./x`,
//!   `/tari%20/x`, also before `;` parameters) is rejected with 400: IIS and several frameworks
//!   strip them, and would serve `/tari/x` under the policy of whatever `/tari./` fell to.
//! * The query string never takes part in matching.
//!
//! Varco forwards the path and query exactly as received; the rules above only decide which
//! service (and so which policy) applies. `/.sso/…` belongs to varco on every known host, and on
//! the portal host `/`, `/catalog`, `/catalog.json`, `/catalog.jsonld` and `/assets/…` do too.
//!
//! Canonical paths (no `%`, `;`, `\`, `//` or dot segments), which is what browsers send, are
//! matched in place without allocating.

use std::collections::HashMap;
use std::fmt;

/// Index of a service in a [`crate::Snapshot`]: its comune, then its position there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceRef {
    /// Index into `Snapshot::comuni`.
    pub comune: u32,
    /// Index into that comune's `services`.
    pub service: u32,
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMatch {
    /// `/.sso/…` on a known host: varco's login endpoints.
    Sso,
    /// The portal's own pages (catalog, assets).
    Portal,
    /// A configured service.
    Service(ServiceRef),
    /// Unknown host, or no service claims the path.
    NotFound,
}

/// Why a request target is refused (answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectedTarget {
    /// The path does not start with `/`.
    NotOriginForm,
    /// A `%` not followed by two hex digits.
    BadPercentEncoding,
    /// `%2F` or `%5C`.
    EncodedSeparator,
    /// A `.` or `..` segment, in any spelling.
    DotSegment,
    /// `%25` followed by two hex digits: what a back-end that decodes twice reads differently.
    DoubleEncoding,
    /// A raw `\`.
    Backslash,
    /// A control character, raw or encoded.
    ControlCharacter,
    /// A segment ending in `.` or an (encoded) space: IIS and some frameworks strip those, so
    /// `/tari./x` would reach the `/tari/` back-end under another service's policy.
    TrailingDotOrSpace,
    /// The host is missing or malformed.
    BadHost,
}

impl fmt::Display for RejectedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectedTarget::NotOriginForm => "path does not start with /",
            RejectedTarget::BadPercentEncoding => "malformed percent-encoding",
            RejectedTarget::EncodedSeparator => "encoded / or \\ in path",
            RejectedTarget::DotSegment => "dot segment in path",
            RejectedTarget::DoubleEncoding => "double percent-encoding in path",
            RejectedTarget::Backslash => "backslash in path",
            RejectedTarget::ControlCharacter => "control character in path",
            RejectedTarget::TrailingDotOrSpace => "path segment ending in a dot or a space",
            RejectedTarget::BadHost => "missing or malformed host",
        })
    }
}

/// Paths the portal answers itself (segment prefixes, without trailing slash). `/` is exact.
pub(crate) const PORTAL_PREFIXES: &[&str] = &[
    "/catalog",
    "/catalog.json",
    "/catalog.jsonld",
    "/assets",
    "/.well-known/openid-federation",
];
/// varco's login endpoints, on every known host.
pub(crate) const SSO_PREFIX: &str = "/.sso";

#[derive(Debug, Clone)]
struct Prefix {
    /// Lower case, no trailing slash, `""` for the root.
    path: Box<str>,
    target: ServiceRef,
}

/// Host → prefixes (longest first). Immutable once built.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    portal_host: Box<str>,
    hosts: HashMap<Box<str>, Box<[Prefix]>>,
}

impl RouteTable {
    /// Builds the table. The loader has already rejected duplicate and reserved prefixes.
    pub(crate) fn new(
        portal_host: &str,
        routes: impl IntoIterator<Item = (String, String, ServiceRef)>,
    ) -> Self {
        let mut hosts: HashMap<Box<str>, Vec<Prefix>> = HashMap::new();
        for (host, prefix, target) in routes {
            hosts.entry(host.into()).or_default().push(Prefix {
                path: prefix.into(),
                target,
            });
        }
        hosts.entry(portal_host.into()).or_default();
        let hosts = hosts
            .into_iter()
            .map(|(h, mut v)| {
                v.sort_by(|a, b| {
                    b.path
                        .len()
                        .cmp(&a.path.len())
                        .then_with(|| a.path.cmp(&b.path))
                });
                (h, v.into_boxed_slice())
            })
            .collect();
        Self {
            portal_host: portal_host.into(),
            hosts,
        }
    }

    /// The portal's host name.
    pub fn portal_host(&self) -> &str {
        &self.portal_host
    }

    /// Every host varco answers for.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.keys().map(|h| &**h)
    }

    /// Resolves a request. `host` is the raw `Host` value (port allowed), `path` the raw path
    /// without query.
    pub fn resolve(&self, host: &str, path: &str) -> Result<RouteMatch, RejectedTarget> {
        let host = normalize_host(host)?;
        let owned;
        let path: &[u8] = if is_canonical(path.as_bytes()) {
            path.as_bytes()
        } else {
            owned = normalize_path(path)?;
            &owned
        };
        let Some(prefixes) = self.hosts.get(&*host) else {
            return Ok(RouteMatch::NotFound);
        };
        if segment_prefix(path, SSO_PREFIX.as_bytes()) {
            return Ok(RouteMatch::Sso);
        }
        if *host == *self.portal_host
            && (path == b"/"
                || PORTAL_PREFIXES
                    .iter()
                    .any(|p| segment_prefix(path, p.as_bytes())))
        {
            return Ok(RouteMatch::Portal);
        }
        Ok(prefixes
            .iter()
            .find(|p| segment_prefix(path, p.path.as_bytes()))
            .map_or(RouteMatch::NotFound, |p| RouteMatch::Service(p.target)))
    }
}

/// Whether `path` lies under `prefix` at a segment boundary (case-insensitive).
/// `prefix` has no trailing slash; `""` matches every path.
pub(crate) fn segment_prefix(path: &[u8], prefix: &[u8]) -> bool {
    path.len() >= prefix.len()
        && path[..prefix.len()].eq_ignore_ascii_case(prefix)
        && (path.len() == prefix.len() || path[prefix.len()] == b'/' || prefix.is_empty())
}

/// Lower-case host without port or trailing dot; borrowed when nothing had to change.
pub fn normalize_host(raw: &str) -> Result<std::borrow::Cow<'_, str>, RejectedTarget> {
    let host = if let Some(rest) = raw.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or(RejectedTarget::BadHost)?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return Err(RejectedTarget::BadHost);
        }
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(RejectedTarget::BadHost);
        }
        inner
    } else {
        let h = match raw.rsplit_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return Err(RejectedTarget::BadHost),
            None => raw,
        };
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(RejectedTarget::BadHost);
        }
        h
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(RejectedTarget::BadHost);
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(std::borrow::Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Ok(std::borrow::Cow::Borrowed(host))
    }
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// True when the path can be matched as it is: starts with `/`, and has no `%`, `;`, `\`,
/// control character, empty segment, dot segment or segment ending in a dot.
pub(crate) fn is_canonical(path: &[u8]) -> bool {
    if path.first() != Some(&b'/') {
        return false;
    }
    if path
        .iter()
        .any(|&b| matches!(b, b'%' | b';' | b'\\') || b < 0x20 || b == 0x7f)
    {
        return false;
    }
    // Skip the leading '/'; a trailing '/' gives one final empty segment, which is fine.
    let segments = path[1..].split(|&b| b == b'/');
    let count = path[1..].split(|&b| b == b'/').count();
    for (i, seg) in segments.enumerate() {
        let last = i + 1 == count;
        if (seg.is_empty() && !last) || seg.last() == Some(&b'.') {
            return false;
        }
    }
    true
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Normalises a raw path for matching (see the module docs): `/seg/seg`, with unreserved escapes
/// decoded, parameters and empty segments dropped. The root is `/`.
pub(crate) fn normalize_path(raw: &str) -> Result<Vec<u8>, RejectedTarget> {
    let raw = raw.as_bytes();
    if raw.first() != Some(&b'/') {
        return Err(RejectedTarget::NotOriginForm);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut seg = Vec::new();
    for raw_seg in raw[1..].split(|&b| b == b'/') {
        seg.clear();
        let mut i = 0;
        while i < raw_seg.len() {
            let b = raw_seg[i];
            match b {
                b'%' => {
                    let (Some(h), Some(l)) = (
                        raw_seg.get(i + 1).copied().and_then(hex),
                        raw_seg.get(i + 2).copied().and_then(hex),
                    ) else {
                        return Err(RejectedTarget::BadPercentEncoding);
                    };
                    let v = h << 4 | l;
                    if is_unreserved(v) {
                        seg.push(v);
                    } else if v == b'/' || v == b'\\' {
                        return Err(RejectedTarget::EncodedSeparator);
                    } else if v < 0x20 || v == 0x7f {
                        return Err(RejectedTarget::ControlCharacter);
                    } else if v == b'%'
                        && raw_seg.get(i + 3).copied().and_then(hex).is_some()
                        && raw_seg.get(i + 4).copied().and_then(hex).is_some()
                    {
                        return Err(RejectedTarget::DoubleEncoding);
                    } else {
                        seg.push(b'%');
                        seg.extend_from_slice(format!("{v:02X}").as_bytes());
                    }
                    i += 3;
                    continue;
                }
                b'\\' => return Err(RejectedTarget::Backslash),
                _ if b < 0x20 || b == 0x7f => return Err(RejectedTarget::ControlCharacter),
                _ => seg.push(b),
            }
            i += 1;
        }
        let main = seg.split(|&b| b == b';').next().unwrap_or(&[]);
        if main == b"." || main == b".." {
            return Err(RejectedTarget::DotSegment);
        }
        if main.last() == Some(&b'.') || main.ends_with(b"%20") {
            return Err(RejectedTarget::TrailingDotOrSpace);
        }
        if main.is_empty() {
            continue;
        }
        out.push(b'/');
        out.extend_from_slice(main);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

/// Validates and normalises a configured `path_prefix`: lower case, no trailing slash, `""` for
/// `/`. Configured prefixes must already be canonical.
pub(crate) fn normalize_prefix(raw: &str) -> Result<String, String> {
    if !raw.starts_with('/') {
        return Err(format!("must start with `/`, found \"{raw}\""));
    }
    if raw
        .bytes()
        .any(|b| matches!(b, b'%' | b';' | b'\\' | b'?' | b'#') || !b.is_ascii_graphic())
    {
        return Err(format!("must be a plain path (no `%`, `;`, `\\`, `?`, `#`, spaces or non-ASCII), found \"{raw}\""));
    }
    let trimmed = raw.strip_suffix('/').unwrap_or(raw);
    if !is_canonical(raw.as_bytes()) {
        return Err(format!(
            "must not contain `//`, `.` or `..` segments, found \"{raw}\""
        ));
    }
    if segment_prefix(trimmed.as_bytes(), SSO_PREFIX.as_bytes()) {
        return Err("must not be under `/.sso/`, which varco answers on every host".into());
    }
    Ok(trimmed.to_ascii_lowercase())
}

/// Whether a service prefix on the portal host would shadow a portal path.
pub(crate) fn shadows_portal(prefix: &str) -> bool {
    prefix.is_empty()
        || PORTAL_PREFIXES.iter().any(|p| {
            segment_prefix(p.as_bytes(), prefix.as_bytes())
                || segment_prefix(prefix.as_bytes(), p.as_bytes())
        })
}

#[cfg(test)]
mod tests;
