//! Per-comune policy files: the comune (a tenant) and the services it offers through varco, each
//! with its route, upstream, required level, released attributes and extra header names.

use std::ops::Range;
use std::time::Duration;

use url::Url;

use crate::category::Category;
use crate::codes::{check_ipa_code, check_istat_code, is_dns_label};
use crate::config::{duration, parse_attributes, SpConfig};
use crate::identity::{Access, Attribute, AttributeMask, Level};
use crate::reader::{nearest, At, Sink, TableReader};
use crate::route::normalize_prefix;

/// A comune's IPA code (`c_b648`): lower-case letters, digits and `_`. `Deserialize` is for
/// what varco's own stores kept (a session's [`crate::Audience`]), never for outside input.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct IpaCode(pub(crate) String);

impl IpaCode {
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A comune's 6-digit ISTAT code (`046007`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IstatCode(String);

impl IstatCode {
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A service id, unique within its comune: `[a-z0-9][a-z0-9_-]*`, at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub(crate) String);

impl ServiceId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One comune and its services, from one policy file.
#[derive(Debug, Clone)]
pub struct Comune {
    /// "Comune di Capannori".
    pub name: String,
    /// IPA code.
    pub ipa_code: IpaCode,
    /// ISTAT code.
    pub istat_code: IstatCode,
    /// Province name (e.g. "Lucca"), for the catalog; optional.
    pub province: Option<String>,
    /// The comune's accessibility statement, on the pages of its hosts (default: `[portal]`'s).
    pub accessibility_url: Option<String>,
    /// The comune's privacy notice, on the pages of its hosts (default: `[portal]`'s).
    pub privacy_url: Option<String>,
    /// The services, in file order.
    pub services: Vec<Service>,
}

/// One on-line service of a comune.
#[derive(Debug, Clone)]
pub struct Service {
    /// Id, unique in the comune.
    pub id: ServiceId,
    /// Name shown to citizens.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Official category.
    pub category: Category,
    /// Where it is served.
    pub route: Route,
    /// The back-end requests go to.
    pub upstream: Upstream,
    /// Who may reach it.
    pub access: Access,
    /// Attributes released to the back-end.
    pub attributes: Vec<Attribute>,
    /// Extra header names (as written, validated) and the attribute each carries.
    pub headers: Vec<(String, Attribute)>,
    /// Overrides `server.upstream_connect_timeout`.
    pub connect_timeout: Option<Duration>,
    /// Overrides `server.upstream_read_timeout`.
    pub read_timeout: Option<Duration>,
    /// Catalog: extra search words (synonyms citizens use, e.g. "rifiuti" for TARI).
    pub keywords: Vec<String>,
    /// Catalog: where citizens get help with this service (https URL or `mailto:`).
    pub help_url: Option<String>,
    /// Catalog: kept out of the public catalog (still routed and protected as usual).
    pub unlisted: bool,
    /// How varco talks TLS to an `https://` upstream (default: the system's CAs, the upstream's
    /// host as SNI and verified name, no client certificate).
    pub upstream_tls: UpstreamTls,
    /// The `Host` header sent to the back-end instead of the citizen's (`upstream_host`).
    pub upstream_host: Option<String>,
}

/// `upstream_ca`, `upstream_client_cert` + `upstream_client_key`, `upstream_sni`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The only CAs the upstream's certificate may chain to (PEM, one or more).
    pub ca: Option<std::path::PathBuf>,
    /// The client certificate chain and key varco presents (mTLS).
    pub client: Option<crate::config::CertFiles>,
    /// The name sent as SNI and verified in the upstream's certificate.
    pub sni: Option<String>,
}

impl Service {
    /// The attributes it needs, as a set.
    pub fn attribute_mask(&self) -> AttributeMask {
        self.attributes.iter().copied().collect()
    }
}

/// Host and path prefix of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Lower-case host name, no port.
    pub host: String,
    /// As written in the policy file.
    pub path_prefix: String,
    /// Normalised for matching: lower case, no trailing slash, `""` for the root.
    pub match_prefix: String,
}

/// A back-end origin: scheme, host and port, nothing else (paths reach it unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `https://`.
    pub tls: bool,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port (default 80/443).
    pub port: u16,
}

impl Upstream {
    /// `host:port`, IPv6 in brackets, for resolution and logs.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Spans kept for cross-file checks (duplicate routes and codes).
#[derive(Debug)]
pub(crate) struct ServiceSpans {
    pub(crate) route: Range<usize>,
}

/// What a policy file yields, with the spans the loader needs for cross-file checks.
#[derive(Debug)]
pub(crate) struct ReadComune {
    pub(crate) comune: Comune,
    pub(crate) ipa_span: Range<usize>,
    pub(crate) istat_span: Range<usize>,
    pub(crate) spans: Vec<ServiceSpans>,
}

fn check_host(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    if lower.parse::<std::net::IpAddr>().is_ok() {
        return Ok(lower);
    }
    if lower.len() <= 253 && lower.split('.').all(is_dns_label) {
        Ok(lower)
    } else {
        Err(format!("must be a host name like \"servizi.capannori.example\" (no scheme, port or path), found \"{s}\""))
    }
}

fn check_service_id(s: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be 1-64 lower-case letters, digits, `-` or `_`, found \"{s}\""
        ))
    }
}

/// A help link must be one a citizen can follow safely: https (or http) with a host, or mailto.
fn check_help_url(s: &str) -> Result<(), String> {
    let url = Url::parse(s).map_err(|e| format!("is not a valid URL ({e}): \"{s}\""))?;
    match url.scheme() {
        "https" | "http" if url.host_str().is_some() && url.username().is_empty() => Ok(()),
        "mailto" if url.path().contains('@') => Ok(()),
        _ => Err(format!(
            "must be an https:// page or a mailto: address, found \"{s}\""
        )),
    }
}

fn parse_upstream(s: &str) -> Result<Upstream, String> {
    let url = Url::parse(s).map_err(|e| format!("is not a valid URL ({e}): \"{s}\""))?;
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(format!(
                "must be an http:// or https:// URL, found scheme \"{other}\""
            ))
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("has no host: \"{s}\""))?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "must be an origin like \"http://10.0.0.5:8080\": paths reach the back-end unchanged, so a path here would be ignored (found \"{s}\")"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    Ok(Upstream { tls, host, port })
}

/// Header names a service may not claim: varco's own, framing and hop-by-hop, forwarding and
/// credentials. Compared lower-case with `_` read as `-`.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "cookie",
    "set-cookie",
    "authorization",
    "proxy-authorization",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-type",
    "expect",
    "forwarded",
    "via",
    "x-real-ip",
    "proxy-connection",
    // Request semantics a browser sets, which back-ends read for CSRF checks, content
    // negotiation and partial responses.
    "origin",
    "referer",
    "accept",
    "accept-encoding",
    "range",
    "if-range",
    // Path overrides some frameworks (IIS, Symfony, Zend) honour: see the proxy's strip list.
    "x-original-url",
    "x-rewrite-url",
];

/// The canonical form used to compare header names: lower case, `_` as `-`.
pub fn canonical_header_name(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b == b'_' {
                '-'
            } else {
                b.to_ascii_lowercase() as char
            }
        })
        .collect()
}

fn check_header_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(format!(
            "header name \"{name}\" must be 1-64 letters, digits or `-`"
        ));
    }
    let canon = canonical_header_name(name);
    if canon.starts_with("x-varco-") {
        return Err(format!("header name \"{name}\" uses the reserved `X-Varco-` prefix; the defaults are always sent"));
    }
    if canon.starts_with("x-forwarded-")
        || canon.starts_with("sec-")
        || FORBIDDEN_HEADERS.contains(&canon.as_str())
    {
        return Err(format!(
            "header name \"{name}\" is reserved for HTTP itself and cannot carry identity"
        ));
    }
    Ok(())
}

/// Reads one policy file. `sp` is `None` when the main configuration's `[sp]` is itself invalid,
/// so that attribute coverage is not reported twice.
pub(crate) fn read_comune(
    root: TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    sp: Option<&SpConfig>,
) -> Option<ReadComune> {
    let mut root = root;
    let head = root.table(sink, "comune", "[comune]");
    let services_t = root.tables(sink, "service", "[[service]]");
    root.finish(sink);

    // Without `[comune]` the services are still checked, so that every problem shows at once.
    let (name, ipa, istat, province, links) = match head {
        Some(mut head) => {
            let name = head.str(sink, "name", "e.g. \"Comune di Capannori\"");
            let ipa = head.str(sink, "ipa_code", "e.g. \"c_b648\"");
            let istat = head.str(sink, "istat_code", "6 digits, e.g. \"046007\"");
            let province = head.opt_str(sink, "province");
            let links = (
                crate::config::opt_http_url(&mut head, sink, "accessibility_url", "[comune]"),
                crate::config::opt_http_url(&mut head, sink, "privacy_url", "[comune]"),
            );
            head.finish(sink);
            if let Some(p) = &province {
                if !(1..=64).contains(&p.value.chars().count())
                    || p.value.chars().any(char::is_control)
                {
                    sink.error(
                        &p.span,
                        "[comune]: `province` must be a name like \"Lucca\" (1-64 characters)",
                    );
                }
            }
            (name, ipa, istat, province.map(|p| p.value), links)
        }
        None => (None, None, None, None, (None, None)),
    };
    if let Some(i) = &ipa {
        if let Err(m) = check_ipa_code(&i.value) {
            sink.error(&i.span, format!("[comune]: `ipa_code` {m}"));
        }
    }
    if let Some(i) = &istat {
        if let Err(m) = check_istat_code(&i.value) {
            sink.error(&i.span, format!("[comune]: `istat_code` {m}"));
        }
    }

    let mut services = Vec::new();
    let mut spans = Vec::new();
    let mut ids: Vec<(String, usize)> = Vec::new();
    for t in services_t {
        if let Some((service, s)) = read_service(t, sink, sp, &mut ids) {
            services.push(service);
            spans.push(s);
        }
    }
    let (name, ipa, istat) = (name?, ipa?, istat?);
    Some(ReadComune {
        comune: Comune {
            name: name.value,
            ipa_code: IpaCode(ipa.value),
            istat_code: IstatCode(istat.value),
            province,
            accessibility_url: links.0,
            privacy_url: links.1,
            services,
        },
        ipa_span: ipa.span,
        istat_span: istat.span,
        spans,
    })
}

fn read_service(
    mut t: TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    sp: Option<&SpConfig>,
    ids: &mut Vec<(String, usize)>,
) -> Option<(Service, ServiceSpans)> {
    let id = t.str(sink, "id", "unique in the comune, e.g. \"tari\"");
    let name = t.str(sink, "name", "shown to citizens");
    let description = t.str(sink, "description", "what the service is for");
    let category = t.str(sink, "category", "one of the 15 official categories");
    let route_t = t.table(sink, "route", "service.route");
    let upstream = t.str(
        sink,
        "upstream",
        "the back-end origin, e.g. \"http://10.0.0.5:8080\"",
    );
    let level = t.str(
        sink,
        "level",
        "\"public\", \"SpidL1\", \"SpidL2\" or \"SpidL3\"",
    );
    let attributes = t.opt_str_array(sink, "attributes");
    let headers = t.opt_str_map(sink, "headers");
    let connect_timeout = duration(&mut t, sink, "connect_timeout");
    let read_timeout = duration(&mut t, sink, "read_timeout");
    let keywords = t.opt_str_array(sink, "keywords");
    let help_url = t.opt_str(sink, "help_url");
    let unlisted = t.opt_bool(sink, "unlisted").is_some_and(|b| b.value);
    // Paths are the policy file's own neighbours (`../keys/ca.pem` from `policies/`).
    let base = sink
        .file
        .path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let file = |t: &mut TableReader<'_, '_>, sink: &mut Sink<'_>, key: &'static str| {
        t.opt_str(sink, key).map(|At { value, span }| {
            let p = base.join(&value);
            if !p.is_file() {
                sink.error(
                    &span,
                    format!(
                        "[[service]]: `{key}`: file \"{}\" does not exist or is not readable",
                        p.display()
                    ),
                );
            }
            (p, span)
        })
    };
    let ca = file(&mut t, sink, "upstream_ca");
    let client_cert = file(&mut t, sink, "upstream_client_cert");
    let client_key = file(&mut t, sink, "upstream_client_key");
    let sni = t.opt_str(sink, "upstream_sni");
    let upstream_host = t.opt_str(sink, "upstream_host");
    t.finish(sink);
    let name_ok = |v: &str| {
        let v = v.strip_suffix('.').unwrap_or(v);
        !v.is_empty() && v.len() <= 253 && v.split('.').all(is_dns_label)
    };
    let sni = sni.and_then(|At { value, span }| {
        if name_ok(&value.to_ascii_lowercase()) {
            Some(value.to_ascii_lowercase())
        } else {
            sink.error(
                &span,
                format!("[[service]]: `upstream_sni` must be a host name, found \"{value}\""),
            );
            None
        }
    });
    let upstream_host = upstream_host.and_then(|At { value, span }| {
        let (name, port) = match value.rsplit_once(':') {
            Some((n, p)) if p.parse::<u16>().is_ok() => (n, Some(p)),
            _ => (value.as_str(), None),
        };
        if name_ok(&name.to_ascii_lowercase()) || (name.parse::<std::net::IpAddr>().is_ok() && port.is_some()) {
            Some(value)
        } else {
            sink.error(&span, format!("[[service]]: `upstream_host` must be a host name (with an optional port), found \"{value}\""));
            None
        }
    });
    let client = match (client_cert, client_key) {
        (Some((cert, _)), Some((key, _))) => Some(crate::config::CertFiles { cert, key }),
        (Some((_, span)), None) | (None, Some((_, span))) => {
            sink.error(
                &span,
                "[[service]]: `upstream_client_cert` and `upstream_client_key` go together",
            );
            None
        }
        (None, None) => None,
    };
    let upstream_tls = UpstreamTls {
        ca: ca.map(|(p, _)| p),
        client,
        sni,
    };
    let keywords = match keywords {
        None => Vec::new(),
        Some(At { value, span }) => {
            if value.len() > 32 {
                sink.error(
                    &span,
                    "[[service]]: `keywords` may list at most 32 words or phrases",
                );
            }
            for k in &value {
                let v = &k.value;
                if v.trim().is_empty() || v.chars().count() > 64 || v.chars().any(char::is_control)
                {
                    sink.error(
                        &k.span,
                        "[[service]]: a keyword must be 1-64 characters, no control characters",
                    );
                }
            }
            value.into_iter().map(|k| k.value).collect()
        }
    };
    let help_url = help_url.and_then(|At { value, span }| match check_help_url(&value) {
        Ok(()) => Some(value),
        Err(m) => {
            sink.error(&span, format!("[[service]]: `help_url` {m}"));
            None
        }
    });

    if let Some(id) = &id {
        if let Err(m) = check_service_id(&id.value) {
            sink.error(&id.span, format!("[[service]]: `id` {m}"));
        } else if let Some((_, first)) = ids.iter().find(|(v, _)| *v == id.value) {
            let (line, _) = sink.file.locate(*first);
            sink.error(
                &id.span,
                format!(
                    "[[service]]: duplicate service id \"{}\" (first declared on line {line})",
                    id.value
                ),
            );
        } else {
            ids.push((id.value.clone(), id.span.start));
        }
    }
    let category = category.and_then(|At { value, span }| match Category::from_slug(&value) {
        Some(c) => Some(c),
        None => {
            let hint = nearest(&value, Category::ALL.iter().map(|c| c.slug()))
                .map(|s| format!("; did you mean \"{s}\"?"))
                .unwrap_or_else(|| "; see CATALOG.md for the 15 official categories".into());
            sink.error(
                &span,
                format!("[[service]]: `category` \"{value}\" is not an official category{hint}"),
            );
            None
        }
    });
    let route = route_t.and_then(|mut r| {
        let host = r.str(sink, "host", "e.g. \"servizi.capannori.example\"");
        let prefix = r.opt_str(sink, "path_prefix");
        let span = r.span().clone();
        r.finish(sink);
        let host = host.and_then(|At { value, span }| match check_host(&value) {
            Ok(h) => Some(h),
            Err(m) => {
                sink.error(&span, format!("service.route: `host` {m}"));
                None
            }
        })?;
        let (path_prefix, match_prefix) = match prefix {
            None => ("/".to_string(), String::new()),
            Some(At { value, span }) => match normalize_prefix(&value) {
                Ok(m) => (value, m),
                Err(msg) => {
                    sink.error(&span, format!("service.route: `path_prefix` {msg}"));
                    return None;
                }
            },
        };
        Some((
            Route {
                host,
                path_prefix,
                match_prefix,
            },
            span,
        ))
    });
    let upstream = upstream.and_then(|At { value, span }| match parse_upstream(&value) {
        Ok(u) if !u.tls && upstream_tls != UpstreamTls::default() => {
            sink.error(&span, "[[service]]: `upstream_ca`, `upstream_client_cert`, `upstream_client_key` and `upstream_sni` need an https:// `upstream`");
            Some(u)
        }
        Ok(u) => Some(u),
        Err(m) => {
            sink.error(&span, format!("[[service]]: `upstream` {m}"));
            None
        }
    });
    let access = level.and_then(|At { value, span }| {
        if value == "public" {
            return Some(Access::Public);
        }
        match value.parse::<Level>() {
            Ok(l) => Some(Access::Login(l)),
            Err(()) => {
                let hint = nearest(&value, ["public", "SpidL1", "SpidL2", "SpidL3"].into_iter())
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                sink.error(&span, format!("[[service]]: `level` must be \"public\", \"SpidL1\", \"SpidL2\" or \"SpidL3\", found \"{value}\"{hint}"));
                None
            }
        }
    });
    let attrs = match &attributes {
        Some(list) => parse_attributes(sink, &list.value, "[[service]]"),
        None => Vec::new(),
    };
    if let (Some(Access::Public), Some(list)) = (access, &attributes) {
        if !list.value.is_empty() {
            sink.error(&list.span, "[[service]]: a public service receives no identity, so it cannot list `attributes`; set a `level` or remove them");
        }
    }
    if let (Some(sp), Some(list)) = (sp, &attributes) {
        if !attrs.is_empty() && sp.smallest_set_covering(&attrs).is_none() {
            sink.error(&list.span, format!(
                "[[service]]: no [[sp.attribute_set]] asks for all of [{}]; add them to a declared set (and register it with AgID) or release fewer attributes",
                attrs.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let mut header_list: Vec<(String, Attribute)> = Vec::new();
    for (name, value) in headers.unwrap_or_default() {
        if let Err(m) = check_header_name(&name.value) {
            sink.error(&name.span, format!("[[service]]: `headers`: {m}"));
            continue;
        }
        let canon = canonical_header_name(&name.value);
        if header_list
            .iter()
            .any(|(n, _)| canonical_header_name(n) == canon)
        {
            sink.error(&name.span, format!("[[service]]: `headers`: \"{}\" is declared twice (names are compared case-insensitively, `_` as `-`)", name.value));
            continue;
        }
        match value.value.parse::<Attribute>() {
            Ok(a) if attrs.contains(&a) => header_list.push((name.value, a)),
            Ok(a) => sink.error(&value.span, format!("[[service]]: `headers`: \"{}\" carries `{a}`, which is not in this service's `attributes`", name.value)),
            Err(()) => {
                let hint = nearest(&value.value, Attribute::ALL.iter().map(|a| a.as_str()))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                sink.error(&value.span, format!("[[service]]: `headers`: unknown SPID attribute `{}`{hint}", value.value));
            }
        }
    }
    let (route, route_span) = route?;
    Some((
        Service {
            id: ServiceId(id?.value),
            name: name?.value,
            description: description?.value,
            category: category?,
            route,
            upstream: upstream?,
            access: access?,
            attributes: attrs,
            headers: header_list,
            connect_timeout,
            read_timeout,
            keywords,
            help_url,
            unlisted,
            upstream_tls,
            upstream_host,
        },
        ServiceSpans { route: route_span },
    ))
}
