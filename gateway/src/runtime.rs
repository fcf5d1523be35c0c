//! What the proxy serves from: a policy [`Snapshot`] compiled into ready-to-use values (resolved
//! upstream peers, rendered pages, metric attributes, the strip set). One `Runtime` per snapshot,
//! swapped atomically on reload; a request keeps the one it started with.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use catalog::ErrorPage;
use opentelemetry::KeyValue;
use pingora::upstreams::peer::HttpPeer;
use policies::{Access, Comune, Service, ServiceRef, Snapshot};

use crate::error::{Error, Result};
use crate::ops::telemetry::route_attributes;
use crate::request::headers::StripSet;

/// How long an idle upstream connection stays in the pool.
const UPSTREAM_IDLE: Duration = Duration::from_secs(60);

/// A whole-catalog document as served: as rendered, and gzip-compressed (the whole catalog is
/// megabytes of repetitive JSON for a region, 5.8 MB for Tuscany: compressed once per snapshot,
/// not per request), each with its ETag ready.
#[derive(Debug)]
pub struct Served {
    /// The body.
    pub plain: Bytes,
    /// Its ETag.
    pub etag: Arc<str>,
    /// The body, gzip-compressed (empty if compression failed).
    pub gzip: Bytes,
    /// The compressed representation's ETag.
    pub etag_gzip: Arc<str>,
}

impl Served {
    fn of(doc: &catalog::Rendered) -> Self {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let gzip = gz
            .write_all(&doc.body)
            .and_then(|()| gz.finish())
            .unwrap_or_default();
        Self {
            plain: doc.body.clone(),
            etag: Arc::from(doc.etag.as_str()),
            gzip: Bytes::from(gzip),
            etag_gzip: Arc::from(format!("{}-gz\"", doc.etag.trim_end_matches('"'))),
        }
    }
}

/// One service, ready to proxy.
#[derive(Debug)]
pub struct ServiceRuntime {
    /// The peer prototype: address, TLS, timeouts.
    pub peer: HttpPeer,
    /// `c_b648/tari`, for logs.
    pub label: Arc<str>,
    /// `[comune, service]` metric attributes.
    pub metric: [KeyValue; 2],
    /// Identity headers for allowed, logged-in requests.
    pub identity: crate::request::identity::IdentityHeaders,
    /// Whether the service needs a login (identity headers are sent only then).
    pub needs_login: bool,
    /// Inbound names to remove on its route: those mapped by any service on its host or behind
    /// its upstream.
    pub strip: StripSet,
    /// Its host (lower case, no port).
    pub host: Box<str>,
    /// The SP entity whose sessions serve it: the SP, or (aggregator mode) its comune.
    pub audience: policies::Audience,
    /// The `Host` the back-end gets instead of the citizen's, if set.
    pub upstream_host: Option<http::HeaderValue>,
}

/// Pre-rendered pages.
#[derive(Debug)]
pub struct Pages {
    /// The portal's home page.
    pub home: Bytes,
    /// 400.
    pub bad_request: Bytes,
    /// 404.
    pub not_found: Bytes,
    /// 502.
    pub bad_gateway: Bytes,
    /// 504.
    pub gateway_timeout: Bytes,
    /// 500.
    pub internal: Bytes,
    /// 503.
    pub unavailable: Bytes,
    /// 429.
    pub too_many_requests: Bytes,
}

impl Pages {
    /// Every error page of `site`, and `home`.
    fn render(site: &catalog::Site, home: Bytes) -> Self {
        let page = |p| Bytes::from(catalog::error_page(site, p));
        Self {
            home,
            bad_request: page(ErrorPage::BadRequest),
            not_found: page(ErrorPage::NotFound),
            bad_gateway: page(ErrorPage::BadGateway),
            gateway_timeout: page(ErrorPage::GatewayTimeout),
            internal: page(ErrorPage::Internal),
            unavailable: page(ErrorPage::Unavailable),
            too_many_requests: page(ErrorPage::TooManyRequests),
        }
    }

    /// The page for an error.
    pub fn error(&self, page: ErrorPage) -> &Bytes {
        match page {
            ErrorPage::BadRequest => &self.bad_request,
            ErrorPage::NotFound => &self.not_found,
            ErrorPage::BadGateway => &self.bad_gateway,
            ErrorPage::GatewayTimeout => &self.gateway_timeout,
            ErrorPage::Internal => &self.internal,
            ErrorPage::Unavailable => &self.unavailable,
            ErrorPage::TooManyRequests => &self.too_many_requests,
        }
    }
}

/// What the SAML side needs from a snapshot: keys, trusted IdPs, the signed metadata.
#[derive(Debug)]
pub struct Identity {
    /// The SP key pair.
    pub keys: idp_bridge::SpKeys,
    /// Trusted IdPs.
    pub idps: idp_bridge::IdpRegistry,
    /// OpenID providers (what discovery and their keys said carries over reloads).
    pub oidc: idp_bridge::OidcRegistry,
    /// The CNS cards' CAs and revocation lists (`[cns]`), read at every load.
    pub cns: Option<idp_bridge::CnsTrust>,
    /// Signed SP metadata, SPID profile.
    pub metadata_spid: Bytes,
    /// Signed SP metadata, CIE profile.
    pub metadata_cie: Bytes,
    /// Identity JWT keys.
    pub jwt: crate::request::jwt::JwtKeys,
    /// The audit trail's MAC key (read at every load so that `varco check` checks it; the
    /// trail itself keeps the key it was opened with).
    pub audit_key: idp_bridge::AuditKey,
    /// IdP metadata files refused at this reload whose previous, still valid version keeps
    /// serving (for the log and the metric).
    pub kept_metadata: Vec<idp_bridge::Error>,
}

impl Identity {
    /// The SP as the login door needs it, for `snapshot`'s configuration.
    pub fn sp<'a>(&'a self, snapshot: &'a Snapshot) -> idp_bridge::Sp<'a> {
        idp_bridge::Sp {
            config: &snapshot.config,
            keys: &self.keys,
            idps: &self.idps,
            oidc: &self.oidc,
            cns: self.cns.as_ref(),
        }
    }

    /// Loads keys and IdP metadata and signs the SP metadata; every problem is returned.
    pub fn build(snapshot: &Snapshot) -> Result<Self> {
        Self::rebuild(snapshot, None, &[])
    }

    /// As [`Identity::build`], at a reload: a metadata file that is now refused keeps its IdP
    /// from `previous` while that version is valid ([`idp_bridge::IdpRegistry::reload`]), and
    /// what the OpenID providers said carries over. The IdPs of the registries' `sets` come
    /// after the configured ones.
    pub fn rebuild(
        snapshot: &Snapshot,
        previous: Option<&Identity>,
        sets: &[Arc<idp_bridge::IdpSet>],
    ) -> Result<Self> {
        let config = &snapshot.config;
        let mut errors = Vec::new();
        let keys = idp_bridge::SpKeys::load(&config.sp.key, &config.sp.cert)
            .and_then(|k| k.with_next(config.sp.next_cert.as_deref()))
            .map_err(|e| errors.push(e))
            .ok();
        let empty = idp_bridge::IdpRegistry::default();
        let (idps, kept_metadata) = match idp_bridge::IdpRegistry::reload(
            &config.idps,
            previous.map_or(&empty, |p| &p.idps),
        ) {
            Ok((idps, kept)) => (Some(idps.with_sets(sets)), kept),
            Err(e) => {
                errors.extend(e);
                (None, Vec::new())
            }
        };
        let oidc = idp_bridge::OidcRegistry::load(config, previous.map(|p| &p.oidc))
            .map_err(|e| errors.extend(e))
            .ok();
        let cns = match &config.cns {
            Some(c) => idp_bridge::CnsTrust::load(c)
                .map(Some)
                .map_err(|e| errors.push(e))
                .ok(),
            None => Some(None),
        };
        let jwt = crate::request::jwt::JwtKeys::load(&config.session.jwt_keys)
            .map_err(|e| errors.push(e))
            .ok();
        let audit_key = idp_bridge::AuditKey::load(&config.sp.audit_key)
            .map_err(|e| {
                errors.push(idp_bridge::Error::AuditKey {
                    path: config.sp.audit_key.clone(),
                    reason: match e {
                        idp_bridge::AuditError::Key { reason, .. } => reason,
                        other => other.to_string(),
                    },
                })
            })
            .ok();
        let (Some(keys), Some(idps), Some(oidc), Some(cns), Some(jwt), Some(audit_key)) =
            (keys, idps, oidc, cns, jwt, audit_key)
        else {
            return Err(Error::Identity(errors));
        };
        // One name, one provider: `/.sso/login?idp=` must not be able to mean two.
        if let Some(p) = oidc.iter().find(|p| idps.get(&p.config.issuer).is_some()) {
            return Err(Error::Identity(vec![idp_bridge::Error::Oidc(format!(
                "[[oidc]] issuer {:?} is also the entityID of a SAML IdP",
                p.config.issuer
            ))]));
        }
        let sign = |p| {
            idp_bridge::signed_metadata(config, &keys, p, idp_bridge::MetadataOf::Sp)
                .map(|m| Bytes::from(m.unwrap_or_default()))
        };
        let (spid, cie) = match (
            sign(idp_bridge::Profile::Spid),
            sign(idp_bridge::Profile::Cie),
        ) {
            (Ok(s), Ok(c)) => (s, c),
            (Err(e), _) | (_, Err(e)) => return Err(Error::Identity(vec![e])),
        };
        Ok(Self {
            keys,
            idps,
            oidc,
            cns,
            metadata_spid: spid,
            metadata_cie: cie,
            jwt,
            audit_key,
            kept_metadata,
        })
    }
}

/// A compiled snapshot.
#[derive(Debug)]
pub struct Runtime {
    /// 1 for the snapshot loaded at start, then +1 per successful reload.
    pub generation: u64,
    /// The validated policy.
    pub snapshot: Arc<Snapshot>,
    services: Vec<ServiceRuntime>,
    /// First flat index of each comune's services.
    offsets: Vec<u32>,
    /// SP keys, IdPs, metadata.
    pub identity: Identity,
    /// Rendered pages.
    pub pages: Pages,
    /// The service catalog (JSON and JSON-LD rendered, search text folded).
    pub catalog: catalog::Catalog,
    /// The whole JSON catalog, as served.
    pub catalog_json: Served,
    /// The whole JSON-LD catalog, as served.
    pub catalog_jsonld: Served,
    /// The first page of `/catalog` for an anonymous citizen.
    pub catalog_page: Bytes,
    /// What every page carries (owner, links): the portal's.
    pub site: catalog::Site,
    /// Each comune's, for the pages of its hosts (same order as the snapshot's comuni).
    comune_sites: Vec<catalog::Site>,
    /// Host → comune, for the hosts that belong to one comune (`shared_hosts` do not).
    host_comune: std::collections::HashMap<Box<str>, usize>,
    /// Each comune's error pages, rendered at first use.
    comune_pages: Vec<std::sync::OnceLock<Pages>>,
    /// IPA code → comune, for the aggregated entities' endpoints (aggregator mode only).
    aggregated: HashMap<Box<str>, usize>,
    /// Each aggregated comune's signed SPID and CIE metadata, signed at first use (a region's
    /// hundreds of comuni would cost a second of signing at every reload).
    comune_metadata: Vec<[std::sync::OnceLock<Bytes>; 2]>,
    /// Metric attributes for requests that reach no service.
    pub metric_portal: [KeyValue; 2],
    /// For `/.sso/*`.
    pub metric_sso: [KeyValue; 2],
    /// For 404s and 400s.
    pub metric_none: [KeyValue; 2],
}

impl Runtime {
    /// Compiles a snapshot: resolves every upstream (blocking DNS: call off the async runtime),
    /// renders pages.
    pub fn build(snapshot: Snapshot, generation: u64) -> Result<Self> {
        Self::rebuild(snapshot, generation, None, &[])
    }

    /// As [`Runtime::build`], at a reload of `previous` (whose last good IdP metadata may keep
    /// serving).
    pub fn rebuild(
        snapshot: Snapshot,
        generation: u64,
        previous: Option<&Runtime>,
        sets: &[Arc<idp_bridge::IdpSet>],
    ) -> Result<Self> {
        let identity = Identity::rebuild(&snapshot, previous.map(|p| &p.identity), sets)?;
        // The names a back-end may trust: mapped by a service on the same host, or by one behind
        // the same upstream (one application may serve several prefixes).
        let mut by_host: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut by_upstream: HashMap<String, Vec<&str>> = HashMap::new();
        for (_, _, s) in snapshot.services() {
            let names = s.headers.iter().map(|(n, _)| n.as_str());
            by_host
                .entry(&s.route.host)
                .or_default()
                .extend(names.clone());
            by_upstream
                .entry(s.upstream.authority())
                .or_default()
                .extend(names);
        }
        let mut services = Vec::new();
        let mut offsets = Vec::with_capacity(snapshot.comuni.len());
        for comune in &snapshot.comuni {
            offsets.push(services.len() as u32);
            for service in &comune.services {
                let mut compiled = compile_service(&snapshot, comune, service)?;
                let host = by_host
                    .get(service.route.host.as_str())
                    .into_iter()
                    .flatten();
                let upstream = by_upstream
                    .get(&service.upstream.authority())
                    .into_iter()
                    .flatten();
                compiled.strip = StripSet::new(host.chain(upstream).copied());
                services.push(compiled);
            }
        }
        let site = catalog::Site::of(&snapshot);
        let catalog = catalog::Catalog::build(&snapshot);
        let pages = Pages::render(&site, Bytes::from(catalog::home(&site, &catalog, None)));
        let comune_sites: Vec<catalog::Site> = snapshot
            .comuni
            .iter()
            .map(|c| catalog::Site::for_comune(&snapshot, c))
            .collect();
        let mut host_comune = std::collections::HashMap::new();
        let shared = &snapshot.config.server.shared_hosts;
        for (ci, c) in snapshot.comuni.iter().enumerate() {
            for s in &c.services {
                let host = s.route.host.as_str();
                if !shared.iter().any(|h| h == host) {
                    host_comune.entry(Box::from(host)).or_insert(ci);
                }
            }
        }
        let comune_pages = (0..snapshot.comuni.len())
            .map(|_| std::sync::OnceLock::new())
            .collect();
        let aggregated = match snapshot.config.sp.mode {
            policies::SpMode::Single => HashMap::new(),
            policies::SpMode::Aggregator(_) => snapshot
                .comuni
                .iter()
                .enumerate()
                .map(|(i, c)| (Box::from(c.ipa_code.as_str()), i))
                .collect(),
        };
        let comune_metadata = (0..aggregated.len()).map(|_| Default::default()).collect();
        Ok(Self {
            generation,
            snapshot: Arc::new(snapshot),
            services,
            offsets,
            identity,
            pages,
            catalog_json: Served::of(catalog.json()),
            catalog_jsonld: Served::of(catalog.jsonld()),
            catalog_page: Bytes::from(catalog::results(
                &site,
                &catalog,
                &catalog::Query::default(),
                &[],
                None,
            )),
            catalog,
            site,
            comune_sites,
            host_comune,
            comune_pages,
            aggregated,
            comune_metadata,
            metric_portal: route_attributes("-", "portal"),
            metric_sso: route_attributes("-", "sso"),
            metric_none: route_attributes("-", "none"),
        })
    }

    /// The aggregated comune whose IPA code is `ipa` (aggregator mode; `None` otherwise), with
    /// its audience.
    pub fn aggregated(&self, ipa: &str) -> Option<(usize, policies::Audience)> {
        let i = *self.aggregated.get(ipa)?;
        let comune = self.snapshot.comuni.get(i)?;
        Some((i, policies::Audience::Comune(comune.ipa_code.clone())))
    }

    /// The signed metadata of the aggregated comune at `index` for `profile`, signed once.
    pub fn comune_metadata(
        &self,
        index: usize,
        profile: idp_bridge::Profile,
    ) -> std::result::Result<Bytes, idp_bridge::Error> {
        let not_aggregated = || idp_bridge::Error::Sign {
            what: "aggregated SP metadata",
            reason: "not in aggregator mode".into(),
        };
        let cell = self
            .comune_metadata
            .get(index)
            .map(|c| &c[usize::from(profile == idp_bridge::Profile::Cie)])
            .ok_or_else(not_aggregated)?;
        if let Some(b) = cell.get() {
            return Ok(b.clone());
        }
        let comune = self.snapshot.comuni.get(index).ok_or_else(not_aggregated)?;
        let xml = idp_bridge::signed_metadata(
            &self.snapshot.config,
            &self.identity.keys,
            profile,
            idp_bridge::MetadataOf::Comune(comune),
        )?
        .ok_or_else(not_aggregated)?;
        Ok(cell.get_or_init(|| Bytes::from(xml)).clone())
    }

    /// Whether `host` (lower case, no port) is one varco answers: the portal's, a service's.
    pub fn serves_host(&self, host: &str) -> bool {
        let server = &self.snapshot.config.server;
        host == server.public_url.host
            || self.host_comune.contains_key(host)
            || server.shared_hosts.iter().any(|h| h == host)
    }

    /// The comune whose host `req` is for, if one comune owns it.
    fn comune_of(&self, req: &pingora::http::RequestHeader) -> Option<usize> {
        let host = crate::request::target::request_host(req)?;
        self.host_comune.get(host.as_str()).copied()
    }

    /// What the pages answering `req` carry: its host's comune's name and links, or the
    /// portal's.
    pub fn site_for(&self, req: &pingora::http::RequestHeader) -> &catalog::Site {
        self.comune_of(req)
            .and_then(|c| self.comune_sites.get(c))
            .unwrap_or(&self.site)
    }

    /// The site of the comune at `index` of the snapshot.
    pub fn comune_site(&self, index: usize) -> Option<&catalog::Site> {
        self.comune_sites.get(index)
    }

    /// The error page answering `req`, in its host's comune's name.
    pub fn error_for(&self, page: ErrorPage, req: &pingora::http::RequestHeader) -> Bytes {
        let Some((site, cell)) = self
            .comune_of(req)
            .and_then(|c| Some((self.comune_sites.get(c)?, self.comune_pages.get(c)?)))
        else {
            return self.pages.error(page).clone();
        };
        cell.get_or_init(|| Pages::render(site, Bytes::new()))
            .error(page)
            .clone()
    }

    /// The flat index of a service.
    pub fn index(&self, r: ServiceRef) -> Option<usize> {
        let base = *self.offsets.get(r.comune as usize)? as usize;
        let i = base + r.service as usize;
        (i < self.services.len()).then_some(i)
    }

    /// A compiled service by flat index.
    pub fn service(&self, index: usize) -> Option<&ServiceRuntime> {
        self.services.get(index)
    }
}

fn compile_service(
    snapshot: &Snapshot,
    comune: &Comune,
    service: &Service,
) -> Result<ServiceRuntime> {
    let label = format!("{}/{}", comune.ipa_code.as_str(), service.id.as_str());
    let authority = service.upstream.authority();
    let addr: SocketAddr = authority
        .to_socket_addrs()
        .map_err(|e| Error::Resolve {
            service: label.clone(),
            authority: authority.clone(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| Error::Resolve {
            service: label.clone(),
            authority: authority.clone(),
            reason: "no address".into(),
        })?;
    let sni = if service.upstream.tls {
        service
            .upstream_tls
            .sni
            .clone()
            .unwrap_or_else(|| service.upstream.host.clone())
    } else {
        String::new()
    };
    let mut peer = HttpPeer::new(addr, service.upstream.tls, sni);
    // pingora verifies the chain (the system's CAs unless `upstream_ca`) and that the
    // certificate names the SNI.
    let tls = &service.upstream_tls;
    if let Some(ca) = &tls.ca {
        let bad = |reason: String| Error::Tls {
            path: ca.clone(),
            reason: format!("service {label}: upstream_ca: {reason}"),
        };
        let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
        let certs = openssl::x509::X509::stack_from_pem(&pem).map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no certificate in it".into()));
        }
        peer.options.ca = Some(Arc::new(certs.into_boxed_slice()));
        // pingora's pool does not tell CAs apart: a connection verified against another
        // service's CA must not be reused for this one.
        peer.group_key = {
            use std::hash::{Hash as _, Hasher as _};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            pem.hash(&mut h);
            h.finish()
        };
    }
    if let Some(files) = &tls.client {
        let keyed = crate::tls::load_pair(files)?;
        peer.client_cert_key = Some(Arc::new(pingora::utils::tls::CertKey::new(
            keyed.0, keyed.1,
        )));
    }
    let server = &snapshot.config.server;
    peer.options.connection_timeout = Some(
        service
            .connect_timeout
            .unwrap_or(server.upstream_connect_timeout),
    );
    peer.options.total_connection_timeout = Some(
        service
            .connect_timeout
            .unwrap_or(server.upstream_connect_timeout),
    );
    let read = service.read_timeout.unwrap_or(server.upstream_read_timeout);
    peer.options.read_timeout = Some(read);
    peer.options.write_timeout = Some(read);
    peer.options.idle_timeout = Some(UPSTREAM_IDLE);
    Ok(ServiceRuntime {
        peer,
        metric: route_attributes(comune.ipa_code.as_str(), service.id.as_str()),
        label: label.into(),
        identity: crate::request::identity::IdentityHeaders::compile(comune, service),
        needs_login: service.access != Access::Public,
        strip: StripSet::default(),
        host: service.route.host.as_str().into(),
        audience: snapshot.config.audience_for(comune),
        upstream_host: service
            .upstream_host
            .as_deref()
            .and_then(|h| http::HeaderValue::from_str(h).ok()),
    })
}
