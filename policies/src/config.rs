//! The main configuration file (CONTRACT.md "Configuration"): listeners, the SAML SP identity and
//! its registered attribute sets, trusted IdPs, sessions and where the policy files live.
//!
//! Paths in it are relative to the file's own directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

use crate::codes::{check_ipa_code, check_istat_code, is_dns_label};
use crate::identity::{Attribute, AttributeMask};
use crate::reader::{nearest, At, Sink, TableReader};

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
    /// Session store and lifetimes.
    pub session: SessionConfig,
    /// Directory with one policy file per comune.
    pub policies_dir: PathBuf,
    /// What every page links to (`[portal]`).
    pub portal: PortalConfig,
}

/// `[portal]`: the links every citizen page carries in its footer, as AgID asks of PA sites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortalConfig {
    /// The accessibility statement (the one published on AgID's form.agid.gov.it).
    pub accessibility_url: Option<String>,
    /// The privacy notice (GDPR art. 13).
    pub privacy_url: Option<String>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Public listener (citizens, `/.sso/*`, catalog, proxied services).
    pub listen: SocketAddr,
    /// Admin listener: `/metrics`, `/healthz`, `/readyz` only.
    pub admin_listen: SocketAddr,
    /// Base URL of the portal; its host is the portal host.
    pub public_url: PublicUrl,
    /// Peers whose `Forwarded`/`X-Forwarded-*` headers are believed (a load balancer). Empty by
    /// default: every client's copy is removed.
    pub trusted_proxies: Vec<IpNet>,
    /// Ports besides the portal's and the scheme's default on which citizens reach service hosts
    /// (a port mapping, a second TLS front): `return_to` URLs and login redirects on them are
    /// accepted.
    pub public_ports: Vec<u16>,
    /// Hosts on which services of several comuni may live, declared on purpose (lower case).
    /// Every other host belongs to the one comune whose policy file first routes it.
    pub shared_hosts: Vec<String>,
    /// Requests per second each client may make to varco's login endpoints (`/.sso/login`,
    /// `acs`, `slo`, `logout`, `handoff`), refilled continuously (default 20).
    pub sso_rate: u32,
    /// How many such requests a client may make at once before the rate applies (default 100).
    pub sso_burst: u32,
    /// Worker threads of the proxy (default: the number of CPUs).
    pub threads: usize,
    /// Time allowed to open a connection to a back-end before answering 502.
    pub upstream_connect_timeout: Duration,
    /// Time allowed between two reads from a back-end before answering 504.
    pub upstream_read_timeout: Duration,
    /// Whether each request writes an access-log line.
    pub access_log: bool,
    /// Log line format.
    pub log_format: LogFormat,
}

impl ServerConfig {
    /// Whether citizens may be sent to `port` (`None`: the scheme's default) on a host varco
    /// serves: the portal's port, the scheme's default port, or one of `public_ports`.
    pub fn is_public_port(&self, port: Option<u16>) -> bool {
        let default = if self.public_url.https { 443 } else { 80 };
        let port = port.unwrap_or(default);
        port == default
            || Some(port) == self.public_url.url.port_or_known_default()
            || self.public_ports.contains(&port)
    }
}

/// The portal's public base URL.
#[derive(Debug, Clone)]
pub struct PublicUrl {
    /// As configured.
    pub url: Url,
    /// Lower-case host name, without port.
    pub host: String,
    /// Whether the portal is served over https (cookies get `Secure` then).
    pub https: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[telemetry]`.
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP endpoint for traces (e.g. `http://127.0.0.1:4318/v1/traces`); none: no export.
    pub otlp_endpoint: Option<Url>,
}

/// `[sp]`: the SAML Service Provider.
#[derive(Debug, Clone)]
pub struct SpConfig {
    /// entityID.
    pub entity_id: String,
    /// PEM private key file.
    pub key: PathBuf,
    /// PEM certificate file.
    pub cert: PathBuf,
    /// Metadata `Organization`.
    pub organization: Organization,
    /// Metadata `ContactPerson`.
    pub contact: Contact,
    /// The registered AttributeConsumingService entries, by index.
    pub attribute_sets: Vec<AttributeSet>,
    /// The append-only, hash-chained record of every AuthnRequest and Response (SPID requires
    /// SPs to keep them). Default `audit/saml-audit.log` next to the configuration.
    pub audit_log: PathBuf,
    /// The key of the audit trail's MACs (a file of at least 32 random bytes), so that whoever
    /// can write the trail cannot rewrite it.
    pub audit_key: PathBuf,
    /// Rotate the audit file past this size (`audit_rotate_mib`, default 64 MiB).
    pub audit_rotate_bytes: u64,
    /// Delete rotated audit files older than this (`audit_retention`, default 730 days: SPID
    /// asks for 24 months).
    pub audit_retention: Duration,
}

/// `sp.organization`.
#[derive(Debug, Clone)]
pub struct Organization {
    /// Full legal name.
    pub name: String,
    /// Short name shown by IdPs.
    pub display_name: String,
    /// Web site.
    pub url: String,
}

/// `sp.contact`.
#[derive(Debug, Clone)]
pub struct Contact {
    /// IPA code of the SP (public SPs).
    pub ipa_code: String,
    /// Institutional e-mail address.
    pub email: String,
    /// Public administration (`spid:Public`) or private.
    pub public: bool,
    /// ISTAT code of the seat (CIE metadata).
    pub municipality: String,
}

/// One `[[sp.attribute_set]]`: an AttributeConsumingService registered with AgID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeSet {
    /// `AttributeConsumingServiceIndex`.
    pub index: u16,
    /// Italian ServiceName.
    pub name: String,
    /// Requested attributes.
    pub attributes: Vec<Attribute>,
}

impl AttributeSet {
    /// Whether this set asks for every attribute in `wanted`.
    pub fn covers(&self, wanted: &[Attribute]) -> bool {
        wanted.iter().all(|a| self.attributes.contains(a))
    }

    /// What a login with this set gets from an IdP of `kind`: CIE releases only its own four
    /// attributes.
    pub fn asked_of(&self, kind: IdpKind) -> AttributeMask {
        self.attributes
            .iter()
            .copied()
            .filter(|a| kind == IdpKind::Spid || a.in_cie())
            .collect()
    }
}

impl SpConfig {
    /// What a login with `AttributeConsumingServiceIndex` `index` asks an IdP of `kind` for (CIE
    /// releases only its own); nothing for an index that was never declared.
    pub fn asked_by(&self, index: u16, kind: IdpKind) -> AttributeMask {
        self.attribute_sets
            .iter()
            .find(|s| s.index == index)
            .map(|s| s.asked_of(kind))
            .unwrap_or_default()
    }

    /// The smallest declared set covering `wanted` (ties: lowest index).
    pub fn smallest_set_covering(&self, wanted: &[Attribute]) -> Option<&AttributeSet> {
        self.set_for(wanted.iter().copied().collect(), IdpKind::Spid)
    }

    /// The set a login at an IdP of `kind` asks for to obtain `wanted`: the smallest declared set
    /// covering what that IdP can release of it (ties: lowest index); for CIE, only sets that ask
    /// for something CIE releases.
    pub fn set_for(&self, wanted: AttributeMask, kind: IdpKind) -> Option<&AttributeSet> {
        let wanted: Vec<Attribute> = wanted
            .iter()
            .filter(|a| kind == IdpKind::Spid || a.in_cie())
            .collect();
        self.attribute_sets
            .iter()
            .filter(|s| s.covers(&wanted) && !s.asked_of(kind).is_empty())
            .min_by_key(|s| (s.attributes.len(), s.index))
    }
}

/// One `[[idp]]`.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// Metadata file.
    pub metadata: PathBuf,
    /// SPID or CIE rules.
    pub kind: IdpKind,
    /// Certificate that must have signed the metadata, if set.
    pub federation_cert: Option<PathBuf>,
}

/// Which federation rules an IdP follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdpKind {
    /// SPID.
    Spid,
    /// CIE (ForceAuthn always, CIE attributes only).
    Cie,
}

/// `[session]`.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Where sessions live.
    pub store: SessionStore,
    /// Domain the portal's session cookie is shared with, e.g. `.comuni.example`.
    pub cookie_domain: Option<String>,
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after login, used or not.
    pub absolute_timeout: Duration,
    /// Ed25519 PEM private keys for the identity JWT: the first signs, all are published at
    /// `/.sso/jwks.json` (keep the previous key listed for a minute after a rotation).
    pub jwt_keys: Vec<PathBuf>,
}

/// Session store selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStore {
    /// In this process (one instance).
    Memory,
    /// Redis at this URL (several instances).
    Redis(String),
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
    let server = read_server(&mut root, sink);
    let telemetry = read_telemetry(&mut root, sink);
    let before = sink.diags.len();
    let sp = read_sp(&mut root, sink, base);
    let sp_ok = sink.diags.len() == before;
    let idps = root
        .tables(sink, "idp", "[[idp]]")
        .into_iter()
        .filter_map(|t| read_idp(t, sink, base))
        .collect();
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
    root.finish(sink);
    let config = Config {
        path: path.to_path_buf(),
        server,
        telemetry,
        sp,
        idps,
        session,
        policies_dir,
        portal,
    };
    (config, sp_ok)
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

fn socket_addr(
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

fn read_server(root: &mut TableReader<'_, '_>, sink: &mut Sink<'_>) -> ServerConfig {
    let fallback_url = PublicUrl {
        url: Url::parse("http://127.0.0.1:8080/").unwrap_or_else(|_| unreachable_url()),
        host: "127.0.0.1".into(),
        https: false,
    };
    let threads_default = std::thread::available_parallelism().map_or(2, |n| n.get());
    let Some(mut t) = root.table(sink, "server", "[server]") else {
        return ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            public_url: fallback_url,
            trusted_proxies: Vec::new(),
            public_ports: Vec::new(),
            shared_hosts: Vec::new(),
            sso_rate: 20,
            sso_burst: 100,
            threads: threads_default,
            upstream_connect_timeout: Duration::from_secs(3),
            upstream_read_timeout: Duration::from_secs(30),
            access_log: true,
            log_format: LogFormat::Text,
        };
    };
    let listen = socket_addr(&mut t, sink, "listen", "127.0.0.1:8080");
    let admin_listen = socket_addr(&mut t, sink, "admin_listen", "127.0.0.1:9090");
    if listen == admin_listen && listen.port() != 0 {
        sink.error(t.span(), "[server]: `admin_listen` must differ from `listen`: metrics and health are never served on the public listener");
    }
    let public_url = match t.str(
        sink,
        "public_url",
        "the portal's base URL, e.g. \"https://accesso.provincia.lucca.it\"",
    ) {
        Some(At { value, span }) => parse_public_url(&value).unwrap_or_else(|msg| {
            sink.error(&span, format!("`public_url` {msg}"));
            fallback_url.clone()
        }),
        None => fallback_url,
    };
    let mut trusted_proxies = Vec::new();
    if let Some(list) = t.opt_str_array(sink, "trusted_proxies") {
        for At { value, span } in list.value {
            let parsed = value
                .parse::<IpNet>()
                .or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => trusted_proxies.push(net),
                Err(_) => sink.error(
                    &span,
                    format!("`trusted_proxies`: \"{value}\" is not an IP address or CIDR range"),
                ),
            }
        }
    }
    let mut public_ports = Vec::new();
    if let Some(list) = t.opt_int_array(sink, "public_ports") {
        for At { value, span } in list.value {
            match u16::try_from(value) {
                Ok(p) if p > 0 => public_ports.push(p),
                _ => sink.error(
                    &span,
                    format!("`public_ports`: {value} is not a TCP port (1 to 65535)"),
                ),
            }
        }
    }
    let shared_hosts = t
        .opt_str_array(sink, "shared_hosts")
        .map(|list| {
            list.value
                .into_iter()
                .map(|At { value, .. }| value.trim_end_matches('.').to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let mut limit = |key: &'static str, default: u32| match t.opt_int(sink, key) {
        None => default,
        Some(At { value, span }) => match u32::try_from(value) {
            Ok(n) if (1..=1_000_000).contains(&n) => n,
            _ => {
                sink.error(&span, format!("`{key}` must be between 1 and 1000000"));
                default
            }
        },
    };
    let sso_rate = limit("sso_rate", 20);
    let sso_burst = limit("sso_burst", 100);
    let threads = match t.opt_int(sink, "threads") {
        Some(At { value, span }) => match usize::try_from(value) {
            Ok(n) if (1..=256).contains(&n) => n,
            _ => {
                sink.error(&span, "`threads` must be between 1 and 256");
                threads_default
            }
        },
        None => threads_default,
    };
    let upstream_connect_timeout =
        duration(&mut t, sink, "upstream_connect_timeout").unwrap_or(Duration::from_secs(3));
    let upstream_read_timeout =
        duration(&mut t, sink, "upstream_read_timeout").unwrap_or(Duration::from_secs(30));
    let access_log = t.opt_bool(sink, "access_log").is_none_or(|b| b.value);
    let log_format = match t.opt_str(sink, "log_format") {
        None => LogFormat::Text,
        Some(At { value, .. }) if value == "text" => LogFormat::Text,
        Some(At { value, .. }) if value == "json" => LogFormat::Json,
        Some(At { value, span }) => {
            sink.error(
                &span,
                format!("`log_format` must be \"text\" or \"json\", found \"{value}\""),
            );
            LogFormat::Text
        }
    };
    t.finish(sink);
    ServerConfig {
        listen,
        admin_listen,
        public_url,
        trusted_proxies,
        public_ports,
        shared_hosts,
        sso_rate,
        sso_burst,
        threads,
        upstream_connect_timeout,
        upstream_read_timeout,
        access_log,
        log_format,
    }
}

fn unreachable_url() -> Url {
    // Parsing a constant URL cannot fail; keep a total function anyway.
    Url::parse("http://localhost/").unwrap_or_else(|_| unreachable_url())
}

fn parse_public_url(value: &str) -> Result<PublicUrl, String> {
    let url = Url::parse(value).map_err(|e| format!("is not a valid URL ({e}): \"{value}\""))?;
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => return Err(format!("must be http or https, found \"{other}\"")),
    };
    let host = url
        .host_str()
        .ok_or_else(|| format!("has no host: \"{value}\""))?
        .trim_matches(|c| c == '[' || c == ']')
        .to_ascii_lowercase();
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "must be a bare origin like \"https://accesso.example.it\" (no path, query or fragment), found \"{value}\""
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if !https && !is_loopback_host(&host) {
        return Err(format!(
            "must be https off loopback (session cookies would travel in clear): \"{value}\"; plain http is for localhost, *.localhost, 127.0.0.0/8 and ::1 only"
        ));
    }
    Ok(PublicUrl { url, host, https })
}

/// `localhost`, `*.localhost`, 127.0.0.0/8 and `::1`: names that never leave the machine.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn read_telemetry(root: &mut TableReader<'_, '_>, sink: &mut Sink<'_>) -> TelemetryConfig {
    let Some(mut t) = root.opt_table(sink, "telemetry", "[telemetry]") else {
        return TelemetryConfig::default();
    };
    let otlp_endpoint = t
        .opt_str(sink, "otlp_endpoint")
        .and_then(|At { value, span }| match Url::parse(&value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            _ => {
                sink.error(
                    &span,
                    format!("`otlp_endpoint` must be an http(s) URL, found \"{value}\""),
                );
                None
            }
        });
    t.finish(sink);
    TelemetryConfig { otlp_endpoint }
}

fn existing_file(sink: &mut Sink<'_>, base: &Path, key: &str, at: At<String>) -> PathBuf {
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

fn read_sp(root: &mut TableReader<'_, '_>, sink: &mut Sink<'_>, base: &Path) -> SpConfig {
    let mut sp = SpConfig {
        entity_id: String::new(),
        key: PathBuf::new(),
        cert: PathBuf::new(),
        organization: Organization {
            name: String::new(),
            display_name: String::new(),
            url: String::new(),
        },
        contact: Contact {
            ipa_code: String::new(),
            email: String::new(),
            public: true,
            municipality: String::new(),
        },
        attribute_sets: Vec::new(),
        audit_log: base.join("audit/saml-audit.log"),
        audit_key: PathBuf::new(),
        audit_rotate_bytes: 64 * 1024 * 1024,
        audit_retention: Duration::from_secs(730 * 24 * 3600),
    };
    let Some(mut t) = root.table(sink, "sp", "[sp]") else {
        return sp;
    };
    if let Some(e) = t.str(sink, "entity_id", "the SP entityID, an URL") {
        if Url::parse(&e.value).is_err() || e.value.len() > 1024 {
            sink.error(
                &e.span,
                format!(
                    "`entity_id` must be an absolute URL of at most 1024 characters, found \"{}\"",
                    e.value
                ),
            );
        }
        sp.entity_id = e.value;
    }
    if let Some(a) = t.opt_str(sink, "audit_log") {
        if a.value.trim().is_empty() {
            sink.error(&a.span, "[sp]: `audit_log` must be a file path");
        }
        sp.audit_log = base.join(a.value);
    }
    if let Some(k) = t.str(
        sink,
        "audit_key",
        "a file of at least 32 random bytes for the audit trail's MACs (`openssl rand -out keys/audit.key 32`)",
    ) {
        sp.audit_key = existing_file(sink, base, "audit_key", k);
    }
    if let Some(At { value, span }) = t.opt_int(sink, "audit_rotate_mib") {
        match u64::try_from(value) {
            Ok(n) if (1..=4096).contains(&n) => sp.audit_rotate_bytes = n * 1024 * 1024,
            _ => sink.error(&span, "`audit_rotate_mib` must be between 1 and 4096"),
        }
    }
    if let Some(d) = duration(&mut t, sink, "audit_retention") {
        sp.audit_retention = d;
    }
    if let Some(k) = t.str(sink, "key", "PEM private key file") {
        sp.key = existing_file(sink, base, "key", k);
    }
    if let Some(c) = t.str(sink, "cert", "PEM certificate file") {
        sp.cert = existing_file(sink, base, "cert", c);
    }
    if let Some(mut o) = t.table(sink, "organization", "sp.organization") {
        sp.organization.name = o
            .str(sink, "name", "full legal name")
            .map(|a| a.value)
            .unwrap_or_default();
        sp.organization.display_name = o
            .str(sink, "display_name", "short name")
            .map(|a| a.value)
            .unwrap_or_default();
        sp.organization.url = o
            .str(sink, "url", "web site")
            .map(|a| a.value)
            .unwrap_or_default();
        o.finish(sink);
    }
    if let Some(mut c) = t.table(sink, "contact", "sp.contact") {
        if let Some(ipa) = c.str(sink, "ipa_code", "IPA code of the SP") {
            if let Err(m) = check_ipa_code(&ipa.value) {
                sink.error(&ipa.span, format!("sp.contact: `ipa_code` {m}"));
            }
            sp.contact.ipa_code = ipa.value;
        }
        if let Some(email) = c.str(sink, "email", "institutional e-mail") {
            if !looks_like_email(&email.value) {
                sink.error(
                    &email.span,
                    format!(
                        "sp.contact: `email` is not an e-mail address: \"{}\"",
                        email.value
                    ),
                );
            }
            sp.contact.email = email.value;
        }
        sp.contact.public = c.opt_bool(sink, "public").is_none_or(|b| b.value);
        if let Some(m) = c.str(sink, "municipality", "ISTAT code of the SP's seat") {
            if let Err(msg) = check_istat_code(&m.value) {
                sink.error(&m.span, format!("sp.contact: `municipality` {msg}"));
            }
            sp.contact.municipality = m.value;
        }
        c.finish(sink);
    }
    let mut seen: Vec<(u16, std::ops::Range<usize>)> = Vec::new();
    for mut s in t.tables(sink, "attribute_set", "[[sp.attribute_set]]") {
        let index = s.opt_int(sink, "index");
        let name = s.str(sink, "name", "Italian ServiceName");
        let attrs = s.opt_str_array(sink, "attributes");
        let span = s.span().clone();
        s.finish(sink);
        let index = match index {
            Some(At { value, span }) => match u16::try_from(value) {
                Ok(i) => {
                    if let Some((_, first)) = seen.iter().find(|(j, _)| *j == i) {
                        let (line, _) = sink.file.locate(first.start);
                        sink.error(&span, format!("[[sp.attribute_set]]: duplicate index {i} (first declared on line {line})"));
                    }
                    seen.push((i, span));
                    Some(i)
                }
                Err(_) => {
                    sink.error(
                        &span,
                        "[[sp.attribute_set]]: `index` must be between 0 and 65535",
                    );
                    None
                }
            },
            None => {
                sink.error(&span, "[[sp.attribute_set]]: missing required field `index` (stable AttributeConsumingServiceIndex)");
                None
            }
        };
        let attributes = match attrs {
            Some(list) => {
                if list.value.is_empty() {
                    sink.error(
                        &list.span,
                        "[[sp.attribute_set]]: `attributes` must not be empty",
                    );
                }
                parse_attributes(sink, &list.value, "[[sp.attribute_set]]")
            }
            None => {
                sink.error(
                    &span,
                    "[[sp.attribute_set]]: missing required field `attributes`",
                );
                Vec::new()
            }
        };
        if let (Some(index), Some(name)) = (index, name) {
            sp.attribute_sets.push(AttributeSet {
                index,
                name: name.value,
                attributes,
            });
        }
    }
    if sp.attribute_sets.is_empty() {
        sink.error(t.span(), "[sp]: declare at least one [[sp.attribute_set]] (the AttributeConsumingService registered with AgID)");
    }
    sp.attribute_sets.sort_by_key(|s| s.index);
    t.finish(sink);
    sp
}

/// Parses attribute names, reporting unknown ones with the nearest SPID name and duplicates.
pub(crate) fn parse_attributes(
    sink: &mut Sink<'_>,
    list: &[At<String>],
    ctx: &str,
) -> Vec<Attribute> {
    let mut out: Vec<Attribute> = Vec::with_capacity(list.len());
    for At { value, span } in list {
        match value.parse::<Attribute>() {
            Ok(a) if out.contains(&a) => {
                sink.error(span, format!("{ctx}: attribute `{value}` is listed twice"))
            }
            Ok(a) => out.push(a),
            Err(()) => {
                let hint = nearest(value, Attribute::ALL.iter().map(|a| a.as_str()))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                sink.error(
                    span,
                    format!("{ctx}: unknown SPID attribute `{value}`{hint}"),
                );
            }
        }
    }
    out
}

fn looks_like_email(s: &str) -> bool {
    let mut parts = s.split('@');
    matches!((parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None) if !local.is_empty() && domain.contains('.') && !s.contains(char::is_whitespace))
}

fn read_idp(mut t: TableReader<'_, '_>, sink: &mut Sink<'_>, base: &Path) -> Option<IdpConfig> {
    let metadata = t
        .str(sink, "metadata", "IdP metadata file")
        .map(|m| existing_file(sink, base, "metadata", m));
    let kind = match t.opt_str(sink, "kind") {
        None => Some(IdpKind::Spid),
        Some(At { value, .. }) if value == "spid" => Some(IdpKind::Spid),
        Some(At { value, .. }) if value == "cie" => Some(IdpKind::Cie),
        Some(At { value, span }) => {
            sink.error(
                &span,
                format!("[[idp]]: `kind` must be \"spid\" or \"cie\", found \"{value}\""),
            );
            None
        }
    };
    let federation_cert = t
        .opt_str(sink, "federation_cert")
        .map(|c| existing_file(sink, base, "federation_cert", c));
    t.finish(sink);
    Some(IdpConfig {
        metadata: metadata?,
        kind: kind?,
        federation_cert,
    })
}

fn read_session(root: &mut TableReader<'_, '_>, sink: &mut Sink<'_>, base: &Path) -> SessionConfig {
    let mut s = SessionConfig {
        store: SessionStore::Memory,
        cookie_domain: None,
        idle_timeout: Duration::from_secs(30 * 60),
        absolute_timeout: Duration::from_secs(8 * 3600),
        jwt_keys: vec![base.join("keys/jwt.pem")],
    };
    let Some(mut t) = root.opt_table(sink, "session", "[session]") else {
        return s;
    };
    if let Some(list) = t.opt_str_array(sink, "jwt_keys") {
        if list.value.is_empty() {
            sink.error(
                &list.span,
                "[session]: `jwt_keys` needs at least one key (the first signs)",
            );
        }
        s.jwt_keys = list
            .value
            .into_iter()
            .map(|k| existing_file(sink, base, "jwt_keys", k))
            .collect();
    }
    if let Some(At { value, span }) = t.opt_str(sink, "store") {
        if value == "memory" {
            s.store = SessionStore::Memory;
        } else if value.starts_with("redis://") || value.starts_with("rediss://") {
            if Url::parse(&value).is_err() {
                sink.error(&span, "[session]: `store` is not a valid redis:// URL");
            }
            s.store = SessionStore::Redis(value);
        } else {
            sink.error(&span, format!("[session]: `store` must be \"memory\" or a redis://host:port URL, found \"{value}\""));
        }
    }
    if let Some(At { value, span }) = t.opt_str(sink, "cookie_domain") {
        let bare = value.trim_start_matches('.');
        if bare.is_empty() || !bare.split('.').all(is_dns_label) || !bare.contains('.') {
            sink.error(&span, format!("[session]: `cookie_domain` must be a domain like \".comuni.example\", found \"{value}\""));
        }
        s.cookie_domain = Some(value.to_ascii_lowercase());
    }
    if let Some(d) = duration(&mut t, sink, "idle_timeout") {
        s.idle_timeout = d;
    }
    if let Some(d) = duration(&mut t, sink, "absolute_timeout") {
        s.absolute_timeout = d;
    }
    if s.idle_timeout > s.absolute_timeout {
        sink.error(
            t.span(),
            "[session]: `idle_timeout` must not be longer than `absolute_timeout`",
        );
    }
    t.finish(sink);
    s
}
