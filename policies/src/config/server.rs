//! `[server]` and `[telemetry]`: listeners, the public URL, forwarding trust, upstream timeouts,
//! logging, OpenTelemetry export.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

use super::{duration, existing_file, socket_addr};
use crate::reader::{At, Sink, TableReader};

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
    /// Whether the common request shape (a GET or HEAD without a body, allowed to a service on a
    /// plain-HTTP back-end) takes varco's own HTTP/1.1 fast path (default `true`); `false` sends
    /// every request through pingora's proxy, as a kill switch.
    pub fast_path: bool,
    /// Log line format.
    pub log_format: LogFormat,
    /// varco's own TLS listener (`[server.tls]`), when it terminates HTTPS itself.
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]`: HTTPS terminated by varco, with a certificate per host name (SNI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The HTTPS listener.
    pub listen: SocketAddr,
    /// The certificate for names no entry of `certs` lists (and clients that send no SNI).
    pub default: CertFiles,
    /// Certificates by host name (`*.example` matches one label).
    pub certs: Vec<HostCert>,
    /// The `Strict-Transport-Security` value of every HTTPS answer (`None`: `hsts = "off"`).
    pub hsts: Option<String>,
    /// A plain HTTP listener that only redirects to HTTPS (and serves ACME challenges).
    pub http_redirect: Option<SocketAddr>,
    /// Where an ACME client (certbot --webroot) writes HTTP-01 challenges: served at
    /// `/.well-known/acme-challenge/` by the redirect listener.
    pub acme_challenge_dir: Option<PathBuf>,
}

/// A PEM certificate chain (leaf first) and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The chain.
    pub cert: PathBuf,
    /// The key.
    pub key: PathBuf,
}

/// One `[server.tls] certs` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCert {
    /// Host names it serves (lower case).
    pub hosts: Vec<String>,
    /// Its files.
    pub files: CertFiles,
}

impl TlsConfig {
    /// Every certificate and key file, for watching.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(&self.default)
            .chain(self.certs.iter().map(|c| &c.files))
            .flat_map(|f| [f.cert.as_path(), f.key.as_path()])
    }
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

impl PublicUrl {
    /// The portal's origin, `https://host[:port]` (the identity JWT's issuer, the base of every
    /// URL varco sends a browser to).
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }
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

pub(super) fn read_server(
    root: &mut TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    base: &Path,
) -> ServerConfig {
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
            fast_path: true,
            log_format: LogFormat::Text,
            tls: None,
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
    let fast_path = t.opt_bool(sink, "fast_path").is_none_or(|b| b.value);
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
    let tls = t
        .opt_table(sink, "tls", "[server.tls]")
        .and_then(|tls| read_tls(tls, sink, base));
    if let Some(tls) = &tls {
        let mut addrs = vec![listen, admin_listen, tls.listen];
        addrs.extend(tls.http_redirect);
        let mut unique = addrs.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != addrs.len() && addrs.iter().all(|a| a.port() != 0) {
            sink.error(
                t.span(),
                "[server.tls]: `listen` and `http_redirect` must differ from each other and from [server]'s `listen` and `admin_listen`",
            );
        }
        if !public_url.https {
            sink.error(
                t.span(),
                "[server.tls]: `public_url` must be https when varco terminates TLS (citizens' links, cookies)",
            );
        }
    }
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
        fast_path,
        log_format,
        tls,
    }
}

fn cert_files(t: &mut TableReader<'_, '_>, sink: &mut Sink<'_>, base: &Path) -> Option<CertFiles> {
    let cert = t
        .str(sink, "cert", "a PEM certificate chain, leaf first")
        .map(|c| existing_file(sink, base, "cert", c));
    let key = t
        .str(sink, "key", "the PEM private key of `cert`")
        .map(|k| existing_file(sink, base, "key", k));
    Some(CertFiles {
        cert: cert?,
        key: key?,
    })
}

fn read_tls(mut t: TableReader<'_, '_>, sink: &mut Sink<'_>, base: &Path) -> Option<TlsConfig> {
    let listen = socket_addr(&mut t, sink, "listen", "0.0.0.0:443");
    let default = t
        .table(sink, "default", "[server.tls] default")
        .and_then(|mut d| {
            let files = cert_files(&mut d, sink, base);
            d.finish(sink);
            files
        });
    let mut certs: Vec<HostCert> = Vec::new();
    for mut c in t.tables(sink, "certs", "[server.tls] certs") {
        let span = c.span().clone();
        let hosts = c
            .opt_str_array(sink, "hosts")
            .map(|l| l.value)
            .unwrap_or_default();
        let files = cert_files(&mut c, sink, base);
        c.finish(sink);
        if hosts.is_empty() {
            sink.error(
                &span,
                "[server.tls] certs: `hosts` must list the host names the certificate serves",
            );
        }
        let mut names = Vec::new();
        for At { value, span } in hosts {
            let name = value.trim_end_matches('.').to_ascii_lowercase();
            let labels = name.strip_prefix("*.").unwrap_or(&name);
            let valid = !labels.is_empty()
                && labels.split('.').all(crate::codes::is_dns_label)
                && labels.contains('.');
            if !valid {
                sink.error(
                    &span,
                    format!("[server.tls] certs: \"{value}\" is not a host name (or `*.` and one)"),
                );
            } else if certs.iter().flat_map(|c| &c.hosts).any(|h| *h == name) {
                sink.error(
                    &span,
                    format!("[server.tls] certs: \"{value}\" is listed twice"),
                );
            } else {
                names.push(name);
            }
        }
        if let Some(files) = files {
            certs.push(HostCert {
                hosts: names,
                files,
            });
        }
    }
    let hsts = match t.opt_str(sink, "hsts") {
        None => Some("max-age=31536000".to_string()),
        Some(At { value, .. }) if value == "off" => None,
        Some(At { value, span }) => {
            let max_age = value
                .split(';')
                .next()
                .and_then(|d| d.trim().strip_prefix("max-age="))
                .and_then(|n| n.parse::<u64>().ok());
            if max_age.is_none() || value.bytes().any(|b| b.is_ascii_control()) {
                sink.error(
                    &span,
                    format!("[server.tls]: `hsts` must be a Strict-Transport-Security value like \"max-age=31536000; includeSubDomains\", or \"off\"; found \"{value}\""),
                );
            }
            Some(value)
        }
    };
    let http_redirect = t
        .opt_str(sink, "http_redirect")
        .and_then(|At { value, span }| match value.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                sink.error(&span, format!("`http_redirect` must be an IP address and port like \"0.0.0.0:80\", found \"{value}\""));
                None
            }
        });
    let acme_challenge_dir =
        t.opt_str(sink, "acme_challenge_dir")
            .and_then(|At { value, span }| {
                let dir = base.join(value);
                if dir.is_dir() {
                    Some(dir)
                } else {
                    sink.error(
                        &span,
                        format!(
                            "[server.tls]: `acme_challenge_dir` \"{}\" is not a directory",
                            dir.display()
                        ),
                    );
                    None
                }
            });
    if acme_challenge_dir.is_some() && http_redirect.is_none() {
        sink.error(t.span(), "[server.tls]: `acme_challenge_dir` is served by the `http_redirect` listener: set it too");
    }
    t.finish(sink);
    Some(TlsConfig {
        listen,
        default: default?,
        certs,
        hsts,
        http_redirect,
        acme_challenge_dir,
    })
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

pub(super) fn read_telemetry(
    root: &mut TableReader<'_, '_>,
    sink: &mut Sink<'_>,
) -> TelemetryConfig {
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
