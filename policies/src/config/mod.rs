//! The main configuration file (CONTRACT.md "Configuration"): listeners, the SAML SP identity and
//! its registered attribute sets, trusted IdPs, sessions and where the policy files live.
//!
//! Paths in it are relative to the file's own directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

mod cns;
mod idp;
mod oidc;
mod server;
mod session;
mod sp;

use self::cns::read_cns;
pub use self::cns::{CnsConfig, CNS_PROVIDER};
use self::idp::{read_idp, read_idp_source};
pub use self::idp::{IdpConfig, IdpKind, IdpSourceConfig};
use self::oidc::{read_federation, read_oidc};
pub use self::oidc::{ClientAuth, FederationConfig, OidcConfig, TrustAnchor, DEFAULT_CLAIMS};
pub use self::server::{
    is_loopback_host, CertFiles, HostCert, LogFormat, PublicUrl, ServerConfig, TelemetryConfig,
    TlsConfig,
};
use self::server::{read_server, read_telemetry};
use self::session::read_session;
pub use self::session::{SessionConfig, SessionStore};
pub(crate) use self::sp::parse_attributes;
use self::sp::read_sp;
pub use self::sp::{
    Aggregator, AttributeSet, Contact, Organization, SpConfig, SpMode, AGGREGATED_PATH,
};
use crate::reader::{At, Sink, TableReader};

/// The validated main configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// Listeners, forwarding trust, upstream timeouts, logging.
    pub server: ServerConfig,
    /// OpenTelemetry export.
    pub telemetry: TelemetryConfig,
    /// The SAML Service Provider identity.
    pub sp: SpConfig,
    /// Trusted identity providers.
    pub idps: Vec<IdpConfig>,
    /// Registries of identity providers, fetched and refreshed.
    pub idp_sources: Vec<IdpSourceConfig>,
    /// OpenID Connect providers.
    pub oidc: Vec<OidcConfig>,
    /// varco in the SPID/CIE OpenID Connect Federation, when `[oidc_federation]` is there.
    pub oidc_federation: Option<FederationConfig>,
    /// Session store and lifetimes.
    pub session: SessionConfig,
    /// Directory with one policy file per comune.
    pub policies_dir: PathBuf,
    /// What every page links to (`[portal]`).
    pub portal: PortalConfig,
    /// Login with the CNS card, when `[cns]` is there.
    pub cns: Option<CnsConfig>,
}

/// `[portal]`: the links every citizen page carries in its footer, as AgID asks of PA sites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortalConfig {
    /// The accessibility statement (the one published on AgID's form.agid.gov.it).
    pub accessibility_url: Option<String>,
    /// The privacy notice (GDPR art. 13).
    pub privacy_url: Option<String>,
}

/// Reads `[server]` … `[policies]` from the main file. Missing or invalid values are reported and
/// replaced by defaults so that the policy files can still be checked against the rest; the flag
/// says whether `[sp]` was valid (attribute coverage of services is only checked then).
pub(crate) fn read_config(
    path: &Path,
    root: TableReader<'_, '_>,
    sink: &mut Sink<'_>,
) -> (Config, bool) {
    let mut root = root;
    let base = path.parent().unwrap_or(Path::new("."));
    let server = read_server(&mut root, sink, base);
    let telemetry = read_telemetry(&mut root, sink);
    let before = sink.diags.len();
    let sp = read_sp(&mut root, sink, base);
    let sp_ok = sink.diags.len() == before;
    let idps = root
        .tables(sink, "idp", "[[idp]]")
        .into_iter()
        .filter_map(|t| read_idp(t, sink, base))
        .collect();
    let mut idp_sources: Vec<IdpSourceConfig> = Vec::new();
    for (i, t) in root
        .tables(sink, "idp_source", "[[idp_source]]")
        .into_iter()
        .enumerate()
    {
        let span = t.span().clone();
        if let Some(s) = read_idp_source(t, sink, base, i) {
            if idp_sources.iter().any(|o| o.cache == s.cache) {
                sink.error(
                    &span,
                    format!(
                        "[[idp_source]]: `cache` \"{}\" is the cache of another source",
                        s.cache.display()
                    ),
                );
            } else if idp_sources.iter().any(|o| o.url == s.url) {
                sink.error(
                    &span,
                    format!("[[idp_source]]: `url` \"{}\" is configured twice", s.url),
                );
            } else {
                idp_sources.push(s);
            }
        }
    }
    let oidc_federation = root
        .opt_table(sink, "oidc_federation", "[oidc_federation]")
        .and_then(|t| read_federation(t, sink, base));
    let oidc = read_oidc_providers(
        &mut root,
        sink,
        base,
        oidc_federation.as_ref(),
        &server.public_url.origin(),
        sp.mode.aggregator().is_some(),
    );
    let session = read_session(&mut root, sink, base);
    let policies_dir = match root.opt_table(sink, "policies", "[policies]") {
        Some(mut t) => {
            let dir = t.opt_str(sink, "dir");
            t.finish(sink);
            dir.map_or_else(|| base.join("policies"), |d| base.join(d.value))
        }
        None => base.join("policies"),
    };
    let portal = match root.opt_table(sink, "portal", "[portal]") {
        Some(mut t) => {
            let mut link = |key: &'static str| opt_http_url(&mut t, sink, key, "[portal]");
            let accessibility_url = link("accessibility_url");
            let privacy_url = link("privacy_url");
            t.finish(sink);
            PortalConfig {
                accessibility_url,
                privacy_url,
            }
        }
        None => PortalConfig::default(),
    };
    let cns = root
        .opt_table(sink, "cns", "[cns]")
        .and_then(|t| {
            let span = t.span().clone();
            let cns = read_cns(t, sink, base)?;
            if server.tls.is_none() {
                // The card's certificate travels in varco's own TLS handshake: a load balancer
                // in front would end that handshake, and the certificate with it.
                sink.error(&span, "[cns]: a CNS login needs [server.tls] (varco asks for the card in its own TLS handshake)");
            }
            if cns.host == server.public_url.host {
                sink.error(&span, format!("[cns]: `host` \"{}\" must be a host of its own, not public_url's (only that host asks for a certificate)", cns.host));
            }
            Some(cns)
        });
    root.finish(sink);
    let config = Config {
        path: path.to_path_buf(),
        server,
        telemetry,
        sp,
        idps,
        idp_sources,
        oidc,
        oidc_federation,
        session,
        policies_dir,
        portal,
        cns,
    };
    (config, sp_ok)
}

/// Every `[[oidc]]`; an issuer given twice is reported at its second table.
fn read_oidc_providers(
    root: &mut TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    base: &Path,
    federation: Option<&FederationConfig>,
    entity_id: &str,
    aggregator: bool,
) -> Vec<OidcConfig> {
    let mut out: Vec<OidcConfig> = Vec::new();
    for t in root.tables(sink, "oidc", "[[oidc]]") {
        let span = t.span().clone();
        if aggregator {
            // An OpenID Connect login would be made for the Region's client, not for a comune:
            // in aggregator mode it could serve no comune's service.
            sink.error(
                &span,
                "[[oidc]]: OpenID Connect providers are not supported with sp.mode = \"aggregator\" (each comune is a SAML SP of its own)",
            );
        }
        if let Some(c) = read_oidc(t, sink, base, federation, entity_id) {
            if out.iter().any(|o| o.issuer == c.issuer) {
                sink.error(
                    &span,
                    format!("[[oidc]]: issuer \"{}\" is configured twice", c.issuer),
                );
            } else {
                out.push(c);
            }
        }
    }
    out
}

/// An optional http(s) URL: a link every page carries, so nothing else (`javascript:`...).
pub(crate) fn opt_http_url(
    t: &mut TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    key: &'static str,
    table: &str,
) -> Option<String> {
    let v = t.opt_str(sink, key)?;
    match Url::parse(&v.value) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Some(v.value),
        _ => {
            sink.error(
                &v.span,
                format!(
                    "{table}: `{key}` must be an http(s) URL, found \"{}\"",
                    v.value
                ),
            );
            None
        }
    }
}

pub(super) fn socket_addr(
    t: &mut TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    key: &'static str,
    default: &str,
) -> SocketAddr {
    let fallback = default
        .parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
    match t.opt_str(sink, key) {
        Some(At { value, span }) => value.parse().unwrap_or_else(|_| {
            sink.error(&span, format!("`{key}` must be an IP address and port like \"127.0.0.1:8080\", found \"{value}\""));
            fallback
        }),
        None => fallback,
    }
}

pub(crate) fn duration(
    t: &mut TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    key: &'static str,
) -> Option<Duration> {
    let At { value, span } = t.opt_str(sink, key)?;
    match humantime::parse_duration(&value) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            sink.error(&span, format!("`{key}` must be longer than zero"));
            None
        }
        Err(_) => {
            sink.error(
                &span,
                format!(
                    "`{key}` must be a duration like \"30s\", \"5m\" or \"8h\", found \"{value}\""
                ),
            );
            None
        }
    }
}

pub(super) fn existing_file(
    sink: &mut Sink<'_>,
    base: &Path,
    key: &str,
    at: At<String>,
) -> PathBuf {
    let path = base.join(&at.value);
    if !path.is_file() {
        sink.error(
            &at.span,
            format!(
                "`{key}`: file \"{}\" does not exist or is not readable",
                path.display()
            ),
        );
    }
    path
}
