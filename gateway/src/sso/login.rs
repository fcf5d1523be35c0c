//! `GET /.sso/login`: the start of a login. Without `idp`, the page to pick an identity provider
//! (or, when the session already suffices, straight on); with one, the signed request that
//! takes the browser there, through the login door ([`idp_bridge::login::start`]).

use bytes::Bytes;
use catalog::{ErrorPage, IdpChoice};
use http::header::{HeaderValue, SET_COOKIE};
use idp_bridge::{BindingDigest, BrowserBinding, LoginStart, Outgoing, Provider, StartError};
use pingora::http::RequestHeader;
use policies::{Access, AttributeMask, IdpKind, Level};

use super::handoff::go_to_target;
use super::return_to::{return_target, ReturnTarget};
use super::{param, query};
use crate::cookies::{binding_cookie, current_session, presented_binding, Cookie};
use crate::reply::Reply;
use crate::runtime::Runtime;
use crate::state::Shared;
use crate::store::{StateStore as _, StoreResult};

/// Login starts one browser may make within [`idp_bridge::LOGIN_TTL`] (tabs, retries, step-ups).
pub const MAX_LOGINS_PER_BROWSER: u64 = 30;

/// The CSP of the choice page: IdP logos come from their metadata (https URLs or `data:`).
const CHOICE_CSP: &str = "default-src 'none'; style-src 'self'; font-src 'self' data:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `'sha256-…'` of the POST-binding page's inline script, for its CSP.
pub(crate) fn script_hash() -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(catalog::POST_BINDING_SCRIPT.as_bytes());
    format!(
        "sha256-{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, digest)
    )
}

pub(super) fn shuffled<T>(mut v: Vec<T>) -> Vec<T> {
    // Fisher-Yates with the CSPRNG: AgID asks for the IdPs in random order.
    for i in (1..v.len()).rev() {
        let r = u64::from_str_radix(&idp_bridge::random_token(8, false), 16).unwrap_or(0);
        v.swap(i, (r % (i as u64 + 1)) as usize);
    }
    v
}

pub(super) async fn login(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
) -> StoreResult<Reply> {
    let snapshot = &rt.snapshot;
    let q = query(req);
    let target = match param(&q, "return_to") {
        None => ReturnTarget {
            url: format!("{}/", snapshot.config.server.public_url.origin()),
            service: None,
        },
        Some(raw) => match return_target(snapshot, raw) {
            Some(t) => t,
            None => return Ok(Reply::error(rt, ErrorPage::BadRequest)),
        },
    };
    let service = target.service.and_then(|r| snapshot.service(r));
    let asked = match param(&q, "level").map(str::parse::<Level>) {
        None => None,
        Some(Ok(l)) => Some(l),
        Some(Err(())) => return Ok(Reply::error(rt, ErrorPage::BadRequest)),
    };
    let needed = match service.map(|(_, s)| s.access) {
        Some(Access::Login(l)) => Some(l),
        _ => None,
    };
    let level = asked.max(needed).unwrap_or(Level::SpidL1);
    let handoff_binding = match param(&q, "hb").map(BindingDigest::from_param) {
        None => None,
        Some(Some(d)) => Some(d),
        Some(None) => return Ok(Reply::error(rt, ErrorPage::BadRequest)),
    };

    // The SP entity the login is for: the SP, or (aggregator mode) the service's comune.
    let audience = service.map_or(policies::Audience::Sp, |(c, _)| {
        snapshot.config.audience_for(c)
    });

    // One login for every service (of the comune, in aggregator mode): a session that is good
    // enough needs no IdP.
    let current = current_session(rt, shared, req).await?;
    let service_needs = service.map_or(AttributeMask::EMPTY, |(_, s)| s.attribute_mask());
    let held = current.as_ref().and_then(|(_, s)| s.held_for(&audience));
    if let (Some((id, _)), Some(held)) = (&current, held) {
        if held.allows(Access::Login(level), service_needs) {
            return go_to_target(rt, shared, id, &target.url, handoff_binding).await;
        }
    }
    // A step-up for attributes keeps what the session already had: ask for both when a declared
    // set covers them (a session of another comune's gives nothing to keep).
    let wanted_all = held.map_or(service_needs, |h| h.attributes.union(service_needs));
    let cie_possible = service_needs.iter().all(|a| a.in_cie());

    let Some(idp_id) = param(&q, "idp") else {
        return Ok(choice_page(
            rt,
            shared,
            &target,
            level,
            service_needs,
            handoff_binding,
        ));
    };
    let door = rt.identity.sp(snapshot);
    let Some(provider) = door.provider(idp_id) else {
        return Ok(Reply::error(rt, ErrorPage::BadRequest));
    };
    let offered = match provider {
        Provider::Saml(idp) => idp.kind == IdpKind::Spid || cie_possible,
        Provider::Oidc(p) => releases(p, service_needs),
        Provider::Cns(t) => cns_offered(t, level, service_needs),
    };
    if !offered {
        return Ok(Reply::error(rt, ErrorPage::BadRequest));
    }
    let sp = &snapshot.config.sp;
    let attribute_set = match provider {
        Provider::Saml(idp) => sp
            .set_for(wanted_all, idp.kind)
            .or_else(|| sp.set_for(service_needs, idp.kind))
            .map_or(0, |s| s.index),
        Provider::Oidc(_) | Provider::Cns(_) => 0,
    };
    // Before anything is signed: one browser keeps a bounded number of logins in flight.
    let https = snapshot.config.server.public_url.https;
    let binding = presented_binding(req, Cookie::Login, https).unwrap_or_else(BrowserBinding::new);
    if shared.store.count_login_start(&binding.digest()).await? > MAX_LOGINS_PER_BROWSER {
        shared.metrics.event("rate_limited");
        tracing::warn!("too many login starts from one browser");
        return Ok(Reply::error_page(rt, ErrorPage::TooManyRequests)
            .with(http::header::RETRY_AFTER, HeaderValue::from_static("60")));
    }
    let start = LoginStart {
        provider,
        level,
        attribute_set,
        wanted: wanted_all,
        binding: &binding,
        return_to: target.url,
        replaces: current.as_ref().map(|(id, _)| id.key()),
        handoff_binding,
        prefer_post: param(&q, "binding") == Some("post"),
        audience,
    };
    let started = match idp_bridge::login::start(door, start, &shared.audit).await {
        Ok(s) => s,
        Err(StartError::Audit(e)) => return Ok(Reply::audit_unavailable(rt, &shared.metrics, &e)),
        Err(e @ StartError::Build(_)) => {
            tracing::error!(error = %e, "cannot start the login");
            return Ok(Reply::error(rt, ErrorPage::Internal));
        }
        Err(StartError::Provider(e)) => {
            tracing::error!(idp = %provider.id(), error = %e, "cannot start the login");
            return Ok(Reply::login_failed(&rt.site, e.failure(), e.status()).no_store());
        }
    };
    let post = matches!(started.outgoing, Outgoing::AutoPost { .. });
    shared.store.put_login(started.pending).await?;
    tracing::info!(idp = %provider.id(), level = %level, attribute_set, post, "login started");
    let mut r = match started.outgoing {
        Outgoing::Redirect(url) => Reply::redirect_to(&url),
        Outgoing::AutoPost { action, fields } => auto_post(rt, &action, &fields),
    }
    .no_store();
    // Set again even when the browser has it: a retry after a long stay at the IdP must still
    // find its binding (the pending login's own lifetime counts from this start).
    if let Some(v) = binding_cookie(Cookie::Login, &binding, https, true) {
        r.headers.push((SET_COOKIE, v));
    }
    Ok(r)
}

/// The page that posts a request to an IdP by itself.
fn auto_post(rt: &Runtime, action: &str, fields: &[(&'static str, String)]) -> Reply {
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut r = Reply::page(200, catalog::post_binding_page(&rt.site, action, &fields));
    // The IdP's endpoint, and wherever it redirects the POST to (its own login pages, often on
    // another host: browsers check each redirect against form-action).
    let origin = url::Url::parse(action)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    r.csp = Some(format!(
        "default-src 'none'; style-src 'self'; font-src 'self' data:; img-src 'self' data:; script-src '{}'; form-action {origin} https:; frame-ancestors 'none'; base-uri 'none'",
        script_hash()
    ));
    r
}

/// Whether an OpenID provider's claims carry every attribute in `needs`, and the CIE kind only
/// what CIE releases.
fn releases(p: &idp_bridge::OidcProvider, needs: AttributeMask) -> bool {
    needs
        .iter()
        .all(|a| p.config.claim_for(a).is_some() && (p.config.kind != IdpKind::Cie || a.in_cie()))
}

/// Whether a CNS login serves a login at `level` for a service that needs `needs`: the card
/// counts as the configured level and gives the fiscal code and the names only.
fn cns_offered(trust: &idp_bridge::CnsTrust, level: Level, needs: AttributeMask) -> bool {
    level <= trust.config.level && idp_bridge::cns::releases(needs)
}

/// The page to pick an identity provider: SPID's in random order, CIE when the service's
/// attributes allow it (and a note saying why not, when they do not).
fn choice_page(
    rt: &Runtime,
    shared: &Shared,
    target: &ReturnTarget,
    level: Level,
    service_needs: AttributeMask,
    handoff_binding: Option<BindingDigest>,
) -> Reply {
    let cie_possible = service_needs.iter().all(|a| a.in_cie());
    let cie_configured = rt.identity.idps.iter().any(|i| i.kind == IdpKind::Cie);
    let cie_withheld: Vec<policies::Attribute> = if cie_configured {
        service_needs.iter().filter(|a| !a.in_cie()).collect()
    } else {
        Vec::new()
    };
    let href = |id: &str| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("idp", id)
            .append_pair("level", level.as_str())
            .append_pair("return_to", &target.url);
        if let Some(hb) = &handoff_binding {
            q.append_pair("hb", &hb.to_param());
        }
        format!("/.sso/login?{}", q.finish())
    };
    let mut choices = shuffled(
        rt.identity
            .idps
            .iter()
            // CIE cannot release what the service needs (e.g. e-mail): only SPID is offered.
            .filter(|i| i.kind == IdpKind::Spid || cie_possible)
            .map(|i| IdpChoice {
                name: i.display_name.clone(),
                href: href(&i.entity_id),
                kind: i.kind,
                logo: i.logo.as_deref().and_then(|l| shared.logos.local_url(l)),
            })
            .collect(),
    );
    // OpenID providers in configuration order, each where its `kind` puts it, when its claims
    // carry what the service needs.
    choices.extend(
        rt.identity
            .oidc
            .iter()
            .filter(|p| releases(p, service_needs))
            .map(|p| IdpChoice {
                name: p.config.display_name.clone(),
                href: href(&p.config.issuer),
                kind: p.config.kind,
                logo: None,
            }),
    );
    // The CNS card last, on a button of its own.
    if let Some(trust) = rt.identity.cns.as_ref() {
        if cns_offered(trust, level, service_needs) {
            choices.push(IdpChoice {
                name: trust.config.display_name.clone(),
                href: href(policies::CNS_PROVIDER),
                kind: IdpKind::Other,
                logo: None,
            });
        }
    }
    let service = target.service.and_then(|r| rt.snapshot.service(r));
    let mut r = Reply::page(
        200,
        Bytes::from(catalog::login_choice_page(
            // The service's comune asks for the login: its name heads the page.
            target
                .service
                .and_then(|r| rt.comune_site(r.comune as usize))
                .unwrap_or(&rt.site),
            &choices,
            service.map(|(_, s)| s.name.as_str()),
            level,
            &cie_withheld,
            // Aggregator mode: the login is made for the service's comune only.
            service
                .filter(|_| rt.snapshot.config.sp.mode.aggregator().is_some())
                .map(|(c, _)| c.name.as_str()),
        )),
    )
    .no_store();
    r.csp = Some(CHOICE_CSP.into());
    r
}
