//! varco's own endpoints under `/.sso/`: SP metadata, the start of a login, the ACS and the
//! current session. Pure request → [`Reply`] functions; `proxy` reads bodies and writes replies.

use std::sync::Arc;

use bytes::Bytes;
use catalog::{ErrorPage, IdpChoice, LoginFailure};
use http::header::{HeaderName, HeaderValue, CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::Method;
use idp_bridge::{BrowserBinding, LoginRequest, PendingLogin};
use pingora::http::RequestHeader;
use policies::{Access, AttributeMask, IdpKind, Level, RouteMatch, ServiceRef, Snapshot};

use crate::runtime::Runtime;
use crate::session::{Session, SessionId, SESSION_COOKIE};
use crate::state::Shared;
use crate::store::{Handoff, StateStore as _, StoreError, StoreResult};

/// Cookie that binds pending logins to the browser (over http; `__Secure-` prefixed over https).
pub const LOGIN_COOKIE: &str = "varco_login";
/// Login starts one browser may make within [`idp_bridge::LOGIN_TTL`] (tabs, retries, step-ups).
pub const MAX_LOGINS_PER_BROWSER: u64 = 30;

/// Cookie that a service host sets when it sends a browser to log in, so that the one-time code
/// bringing the session back can be redeemed by that browser only (`__Secure-` over https).
pub const HANDOFF_COOKIE: &str = "varco_handoff";

/// A response varco produces itself.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: Bytes,
    /// Further headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// A Content-Security-Policy other than the default for pages.
    pub csp: Option<String>,
}

const HTML: &str = "text/html; charset=utf-8";

impl Reply {
    fn page(status: u16, body: Bytes) -> Self {
        Self {
            status,
            content_type: HTML,
            body,
            headers: Vec::new(),
            csp: None,
        }
    }

    fn error(rt: &Runtime, page: ErrorPage) -> Self {
        Self::page(page.status(), rt.pages.error(page).clone())
    }
}

/// The page for a store that cannot be reached (503), logged once here.
pub fn unavailable(rt: &Runtime, e: &StoreError) -> Reply {
    tracing::error!(error = %e, "session store unavailable");
    let mut r = Reply::error(rt, ErrorPage::Unavailable);
    r.headers
        .push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
    r
}

/// The page for a login that cannot be recorded (a full disk, say): 503, not cached; the
/// catalog and public services keep working.
fn audit_unavailable(rt: &Runtime) -> Reply {
    let mut r = Reply::error(rt, ErrorPage::Unavailable);
    r.headers
        .push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
    r
}

/// Answers a request under `/.sso/` (the ACS, which needs the body, is [`acs`]).
pub async fn handle(rt: &Runtime, shared: &Shared, req: &RequestHeader) -> Reply {
    route(rt, shared, req)
        .await
        .unwrap_or_else(|e| unavailable(rt, &e))
}

async fn route(rt: &Runtime, shared: &Shared, req: &RequestHeader) -> StoreResult<Reply> {
    let get = matches!(req.method, Method::GET | Method::HEAD);
    Ok(match req.uri.path() {
        "/.sso/logout" if !get => method_not_allowed(rt, "GET, HEAD, POST"),
        "/.sso/metadata" | "/.sso/metadata/cie" | "/.sso/login" | "/.sso/session" | "/.sso/slo"
            if !get =>
        {
            method_not_allowed(rt, "GET, HEAD")
        }
        "/.sso/metadata" => xml(&rt.identity.metadata_spid),
        "/.sso/metadata/cie" => xml(&rt.identity.metadata_cie),
        "/.sso/login" => login(rt, shared, req).await?,
        "/.sso/session" => session_json(rt, shared, req).await?,
        "/.sso/acs" => method_not_allowed(rt, "POST"),
        "/.sso/logout" => match logout_origin(rt, req) {
            // A link or an automatic navigation from another site asks first.
            Initiator::SameOrigin => logout(rt, shared, req).await?,
            Initiator::CrossSite | Initiator::Unknown => {
                let mut r = Reply::page(
                    200,
                    Bytes::from(catalog::logout_confirm_page(rt.site_for(req))),
                );
                r.headers
                    .push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
                r
            }
        },
        "/.sso/jwks.json" => {
            let mut r = Reply {
                status: 200,
                content_type: "application/json",
                body: rt.identity.jwt.jwks().clone(),
                headers: Vec::new(),
                csp: None,
            };
            r.headers.push((
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            ));
            r
        }
        "/.sso/handoff" => handoff(rt, shared, req).await?,
        "/.sso/slo" => slo(rt, shared, req, None).await?,
        p if p.starts_with("/.sso/assets/") && get => asset(rt, p),
        p if p.starts_with("/.sso/logos/") && get => logo(rt, shared, p),
        _ => Reply::error(rt, ErrorPage::NotFound),
    })
}

/// An IdP's logo from the local cache (`/.sso/logos/{id}`). An SVG opened on its own runs in a
/// sandbox with no script: it comes from an IdP's host, not from varco.
fn logo(rt: &Runtime, shared: &Shared, path: &str) -> Reply {
    let id = path.strip_prefix("/.sso/logos/").unwrap_or("");
    let Some(l) = shared.logos.get(id) else {
        return Reply::error(rt, ErrorPage::NotFound);
    };
    let mut r = Reply {
        status: 200,
        content_type: l.content_type,
        body: l.bytes,
        headers: Vec::new(),
        csp: Some("default-src 'none'; style-src 'unsafe-inline'; sandbox".into()),
    };
    r.headers.push((
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    ));
    r
}

/// A file of varco's pages (`/.sso/assets/…`), on every host: the pages of a comune's host use
/// them as much as the portal's. Cacheable for a week; the pages name them with a version.
pub fn asset(rt: &Runtime, path: &str) -> Reply {
    let name = path.strip_prefix("/.sso/assets/").unwrap_or("");
    let Some(a) = catalog::assets::asset(name) else {
        return Reply::error(rt, ErrorPage::NotFound);
    };
    let mut r = Reply {
        status: 200,
        content_type: a.content_type,
        body: Bytes::from_static(a.bytes),
        headers: Vec::new(),
        csp: None,
    };
    r.headers.push((
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=604800"),
    ));
    r
}

/// Whether this request is a POST whose form body the proxy must read first (ACS, SLO, the
/// confirmed logout).
pub fn needs_body(req: &RequestHeader) -> bool {
    req.method == Method::POST
        && matches!(req.uri.path(), "/.sso/acs" | "/.sso/slo" | "/.sso/logout")
}

/// Answers a POST that [`needs_body`], with its body.
pub async fn with_body(rt: &Runtime, shared: &Shared, req: &RequestHeader, body: &[u8]) -> Reply {
    let reply = match req.uri.path() {
        "/.sso/slo" => slo(rt, shared, req, Some(body)).await,
        // The confirmation form posts from varco's own page: a POST from anywhere else is a
        // forgery (SameSite cookies alone do not stop a same-site one).
        "/.sso/logout" => match logout_origin(rt, req) {
            Initiator::SameOrigin => logout(rt, shared, req).await,
            Initiator::CrossSite | Initiator::Unknown => {
                tracing::warn!("logout POST from another origin refused");
                Ok(Reply::error(rt, ErrorPage::BadRequest))
            }
        },
        _ => acs(rt, shared, req, body).await,
    };
    reply.map_or_else(|e| unavailable(rt, &e), |r| onward(rt, r))
}

/// A form POST's answer never redirects: browsers check every redirect after a POST against the
/// posting page's `form-action`, which the IdP's page (for the ACS and SLO) or varco's own
/// confirmation page (for the logout) cannot widen to every host a login goes on to. The 302
/// becomes a page that goes on by `Refresh`, a new navigation that no `form-action` governs;
/// its cookies and other headers stay.
fn onward(rt: &Runtime, mut reply: Reply) -> Reply {
    if reply.status != 302 {
        return reply;
    }
    let Some(at) = reply.headers.iter().position(|(n, _)| n == LOCATION) else {
        return reply;
    };
    let (_, to) = reply.headers.remove(at);
    let to = to.to_str().unwrap_or("/").to_string();
    reply.status = 200;
    reply.content_type = HTML;
    reply.body = Bytes::from(catalog::continue_page(&rt.site, &to));
    if let Ok(v) = HeaderValue::from_str(&format!("0; url={to}")) {
        reply.headers.push((HeaderName::from_static("refresh"), v));
    }
    reply
}

fn clear_session_cookie(rt: &Runtime) -> HeaderValue {
    let https = rt.snapshot.config.server.public_url.https;
    let domain = rt.snapshot.config.session.cookie_domain.as_deref();
    let secure = if https { "; Secure" } else { "" };
    let domain_attr = domain
        .map(|d| format!("; Domain={}", d.trim_start_matches('.')))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}{domain_attr}",
        session_cookie_name(https, domain.is_some())
    ))
    .unwrap_or(HeaderValue::from_static(
        "varco_session=; Path=/; Max-Age=0",
    ))
}

/// `'sha256-…'` of the POST-binding page's inline script, for its CSP.
pub(crate) fn script_hash() -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(catalog::POST_BINDING_SCRIPT.as_bytes());
    format!(
        "sha256-{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, digest)
    )
}

impl Reply {
    /// The error page `page`, not cached.
    pub fn error_page(rt: &Runtime, page: ErrorPage) -> Self {
        let mut r = Reply::error(rt, page);
        r.headers
            .push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
        r
    }

    /// A 302 to `to`, not cached.
    pub fn redirect_to(to: &str) -> Self {
        redirect(to)
    }
}

fn redirect(to: &str) -> Reply {
    let mut r = Reply::page(302, Bytes::new());
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers.push((LOCATION, v));
    }
    r.headers
        .push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
    r
}

/// Where a request that changes state comes from, as the browser tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Initiator {
    /// This very origin, or the citizen typed the address (`Sec-Fetch-Site: none`).
    SameOrigin,
    /// Another origin, even of the same site.
    CrossSite,
    /// The client says nothing (an old browser, a script): treated like another site.
    Unknown,
}

/// Decides by `Sec-Fetch-Site`, else by `Origin` compared with this request's own origin.
fn logout_origin(rt: &Runtime, req: &RequestHeader) -> Initiator {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    match header("sec-fetch-site") {
        Some("same-origin" | "none") => return Initiator::SameOrigin,
        Some(_) => return Initiator::CrossSite,
        None => {}
    }
    let Some(origin) = header("origin") else {
        return Initiator::Unknown;
    };
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let own = format!(
        "{}://{host}",
        rt.snapshot.config.server.public_url.url.scheme()
    );
    if origin.eq_ignore_ascii_case(&own) {
        Initiator::SameOrigin
    } else {
        Initiator::CrossSite
    }
}

/// `GET /.sso/logout`: ends the session here at once, then asks its IdP to end its own (SAML
/// SLO); without a session (or an IdP without SLO) straight to the "logged out" page.
async fn logout(rt: &Runtime, shared: &Shared, req: &RequestHeader) -> StoreResult<Reply> {
    let mut reply = match current_session(rt, shared, req).await? {
        Some((id, session)) => {
            shared.store.remove_session(&id.key()).await?;
            let p = &session.principal;
            let slo = rt.identity.idps.get(p.idp()).and_then(|idp| {
                idp_bridge::logout_request(
                    &rt.snapshot.config.sp.entity_id,
                    &rt.identity.keys,
                    idp,
                    p.name_id(),
                    p.session_index(),
                )
                .map_err(|e| tracing::warn!(error = %e, "no SAML logout with the IdP"))
                .ok()
            });
            tracing::info!(idp = %p.idp(), "logout");
            match slo {
                Some((request_id, url)) => {
                    shared.store.put_logout(&request_id).await?;
                    redirect(&url)
                }
                None => Reply::page(200, Bytes::from(catalog::logged_out_page(rt.site_for(req)))),
            }
        }
        None => Reply::page(200, Bytes::from(catalog::logged_out_page(rt.site_for(req)))),
    };
    reply.headers.push((SET_COOKIE, clear_session_cookie(rt)));
    reply
        .headers
        .push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
    Ok(reply)
}

/// `/.sso/slo`: the IdP's LogoutResponse to our request, or its own LogoutRequest (HTTP-Redirect
/// with `body == None`, HTTP-POST with the form body). Only signed messages are believed.
async fn slo(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
    body: Option<&[u8]>,
) -> StoreResult<Reply> {
    let slo_url = idp_bridge::SpEndpoints::of(&rt.snapshot.config).slo;
    let verified = match body {
        None => {
            idp_bridge::verify_redirect(req.uri.query().unwrap_or(""), &rt.identity.idps, &slo_url)
        }
        Some(body) => {
            let form: Vec<(String, String)> = url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .take(8)
                .collect();
            match param(&form, "SAMLRequest").or_else(|| param(&form, "SAMLResponse")) {
                Some(m) => idp_bridge::verify_post(m, &rt.identity.idps, &slo_url),
                None => Err(idp_bridge::SloError::Malformed(
                    "no SAMLRequest or SAMLResponse",
                )),
            }
        }
    };
    let refused = |status| {
        Reply::page(
            status,
            Bytes::from(catalog::login_failed_page(&rt.site, LoginFailure::Rejected)),
        )
    };
    Ok(match verified {
        Ok(idp_bridge::LogoutMessage::Request {
            idp, id, name_id, ..
        }) => {
            let replay_window = idp_bridge::MAX_LOGOUT_REQUEST_AGE * 2;
            let seen = format!("slo\0{idp}\0{id}");
            if !shared.store.first_use(&seen, replay_window).await? {
                tracing::warn!(%idp, "LogoutRequest replayed");
                return Ok(refused(403));
            }
            let ended = match shared.store.remove_subject(&idp, &name_id).await {
                Ok(n) => n,
                Err(e) => {
                    // The IdP may retry this request: it must not be refused as a replay.
                    let _ = shared.store.forget_use(&seen).await;
                    return Err(e);
                }
            };
            tracing::info!(%idp, ended, "logout requested by the IdP");
            let answer = rt.identity.idps.get(&idp).map(|i| {
                idp_bridge::logout_response(
                    &rt.snapshot.config.sp.entity_id,
                    &rt.identity.keys,
                    i,
                    &id,
                )
            });
            match answer {
                Some(Ok(url)) => {
                    let mut r = redirect(&url);
                    r.headers.push((SET_COOKIE, clear_session_cookie(rt)));
                    r
                }
                _ => Reply::error(rt, ErrorPage::Internal),
            }
        }
        Ok(idp_bridge::LogoutMessage::Response {
            in_response_to,
            success,
            ..
        }) => {
            if !shared.store.take_logout(&in_response_to).await? {
                tracing::warn!("LogoutResponse to no LogoutRequest of ours");
                return Ok(refused(403));
            }
            if !success {
                tracing::warn!("the IdP did not confirm the logout");
            }
            Reply::page(200, Bytes::from(catalog::logged_out_page(&rt.site)))
        }
        Err(e) => {
            tracing::warn!(error = %e, "SLO message refused");
            let status = match e {
                idp_bridge::SloError::Malformed(_) => 400,
                idp_bridge::SloError::Untrusted(_) => 403,
            };
            refused(status)
        }
    })
}

/// Largest ACS form body read (a base64 response form-encoded grows by a few percent).
pub const MAX_ACS_BODY: usize = idp_bridge::MAX_RESPONSE + 16 * 1024;

/// The session cookie varco sets on the portal: host-only (`__Host-` over https), or for the
/// whole `cookie_domain` when one is configured (`__Secure-` over https, as `__Host-` forbids a
/// Domain).
fn session_cookie_name(https: bool, domain: bool) -> &'static str {
    match (https, domain) {
        (false, _) => SESSION_COOKIE,
        (true, false) => "__Host-varco_session",
        (true, true) => "__Secure-varco_session",
    }
}

fn session_cookie(rt: &Runtime, id: &SessionId, host_only: bool) -> Option<HeaderValue> {
    let https = rt.snapshot.config.server.public_url.https;
    let domain = if host_only {
        None
    } else {
        rt.snapshot.config.session.cookie_domain.as_deref()
    };
    let secure = if https { "; Secure" } else { "" };
    let domain_attr = domain
        .map(|d| format!("; Domain={}", d.trim_start_matches('.')))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{}={}; Path=/; HttpOnly; SameSite=Lax{secure}{domain_attr}",
        session_cookie_name(https, domain.is_some()),
        id.secret()
    ))
    .ok()
}

/// Whether the portal's session cookie reaches `host`.
pub fn cookie_reaches(rt: &Runtime, host: &str) -> bool {
    let config = &rt.snapshot.config;
    host == config.server.public_url.host
        || config.session.cookie_domain.as_deref().is_some_and(|d| {
            let d = d.trim_start_matches('.');
            host == d || host.ends_with(&format!(".{d}"))
        })
}

/// After a login (or with a portal session already good enough): to the target directly, or
/// through `/.sso/handoff` on the target's host when the portal's cookie does not reach it.
async fn finish_login(
    rt: &Runtime,
    shared: &Shared,
    id: &SessionId,
    target: &str,
    handoff_binding: Option<[u8; 32]>,
) -> StoreResult<Reply> {
    let Ok(uri) = target.parse::<http::Uri>() else {
        return Ok(redirect("/"));
    };
    let Some(authority) = uri.authority() else {
        return Ok(redirect(target));
    };
    let host = authority
        .host()
        .trim_matches(|c| c == '[' || c == ']')
        .to_ascii_lowercase();
    if cookie_reaches(rt, &host) {
        return Ok(redirect(target));
    }
    // A code is only made for the browser the service host sent here (it holds the binding
    // cookie there). A login started elsewhere goes to the target without a code: the service
    // host sends the browser back with its binding, and the portal's session then suffices.
    let Some(binding) = handoff_binding else {
        return Ok(redirect(target));
    };
    let code = idp_bridge::random_token(32, true);
    shared
        .store
        .put_handoff(
            &code,
            Handoff {
                host,
                session: id.secret().to_string(),
                target: target.to_string(),
                binding,
            },
        )
        .await?;
    let scheme = uri.scheme_str().unwrap_or("http");
    Ok(redirect(&format!(
        "{scheme}://{authority}/.sso/handoff?code={code}"
    )))
}

/// Whether two sessions are one citizen's: by fiscal number when both have one (SPID NameIDs are
/// transient, new at every login), else by IdP and NameID (the same login).
fn same_person(a: &idp_bridge::Principal, b: &idp_bridge::Principal) -> bool {
    match (a.attribute("fiscalNumber"), b.attribute("fiscalNumber")) {
        (Some(x), Some(y)) => x == y,
        _ => a.idp() == b.idp() && a.name_id() == b.name_id(),
    }
}

/// The request's host, normalised (lower case, no port), from the absolute-form target or `Host`.
pub(crate) fn request_host(req: &RequestHeader) -> Option<String> {
    req.uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            req.headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
        })
        .and_then(|h| policies::normalize_host(h).ok().map(|h| h.into_owned()))
}

/// `GET /.sso/handoff?code=…` on a service host: redeems a one-time code for this host's session
/// cookie. A code works once, within a minute, and only on the host it was made for.
async fn handoff(rt: &Runtime, shared: &Shared, req: &RequestHeader) -> StoreResult<Reply> {
    let q = query(req);
    let expired = || {
        Reply::page(
            403,
            Bytes::from(catalog::login_failed_page(
                rt.site_for(req),
                LoginFailure::Expired,
            )),
        )
    };
    let Some(code) = param(&q, "code").filter(|c| c.len() <= 64) else {
        return Ok(expired());
    };
    // Only the browser the service host sent to log in holds the binding cookie the code was
    // made for: a code minted for somebody's own session and handed to a victim (login CSRF)
    // finds nothing, and burns nothing.
    let https = rt.snapshot.config.server.public_url.https;
    let Some(presented) = presented_cookie_binding(req, handoff_cookie_name(https)) else {
        tracing::warn!("handoff without this host's binding cookie");
        return Ok(expired());
    };
    let Some(h) = shared.store.take_handoff(code, &presented.digest()).await? else {
        return Ok(expired());
    };
    let host = request_host(req);
    if host.as_deref() != Some(h.host.as_str()) {
        tracing::warn!("handoff code presented on another host");
        return Ok(expired());
    }
    let Some(session) = SessionId::from_untrusted(&h.session) else {
        return Ok(expired());
    };
    if let Some((current_id, current)) = current_session(rt, shared, req).await? {
        // Only a host that already has a session needs to know whose the incoming one is.
        let Some(incoming) = shared.store.session(&session).await? else {
            return Ok(expired());
        };
        if !same_person(&current.principal, &incoming.principal) {
            // Never silently swap the person this site works for.
            tracing::warn!("handoff refused: this host has another subject's session");
            let mut r = Reply::page(
                409,
                Bytes::from(catalog::login_failed_page(
                    &rt.site,
                    LoginFailure::OtherPerson,
                )),
            );
            r.headers
                .push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
            return Ok(r);
        }
        if current_id.key() != session.key() {
            // The same citizen after a step-up elsewhere: one session per browser.
            shared.store.remove_session(&current_id.key()).await?;
        }
    }
    let mut r = redirect(&h.target);
    if let Some(c) = session_cookie(rt, &session, true) {
        r.headers.push((SET_COOKIE, c));
    }
    Ok(r)
}

fn cookie_value<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The session the request's cookie names, if live.
pub async fn current_session(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
) -> StoreResult<Option<(SessionId, Arc<Session>)>> {
    let https = rt.snapshot.config.server.public_url.https;
    for name in [
        session_cookie_name(https, false),
        session_cookie_name(https, true),
    ] {
        let Some(id) = cookie_value(req, name).and_then(SessionId::from_untrusted) else {
            continue;
        };
        if let Some(s) = shared.store.session(&id).await? {
            return Ok(Some((id, s)));
        }
    }
    Ok(None)
}

/// `POST /.sso/acs`: validates the IdP's answer; on success a new session and a redirect to
/// where the citizen was going, otherwise the page for what went wrong (4xx, never 404).
pub async fn acs(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
    body: &[u8],
) -> StoreResult<Reply> {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .take(8)
        .collect();
    let https = rt.snapshot.config.server.public_url.https;
    let binding = presented_binding(req, https);
    let endpoints = idp_bridge::SpEndpoints::of(&rt.snapshot.config);
    let result = match param(&form, "SAMLResponse").map(|r| (r, idp_bridge::receive(r))) {
        None => Err(idp_bridge::AcsError::Malformed("no SAMLResponse field")),
        Some((_, Err(e))) => Err(e),
        Some((response, Ok(received))) => {
            // Taken once, whichever instance started the login, and only by the browser that
            // started it (a forged POST from another browser burns nothing).
            let pending = match &binding {
                Some(b) => {
                    shared
                        .store
                        .take_login(received.in_response_to(), &b.digest())
                        .await?
                }
                None => None,
            };
            idp_bridge::verify_response(
                &idp_bridge::AcsContext {
                    entity_id: &rt.snapshot.config.sp.entity_id,
                    acs_url: &endpoints.acs,
                    idps: &rt.identity.idps,
                },
                &received,
                pending,
                &idp_bridge::AcsRequest {
                    saml_response: response,
                    relay_state: param(&form, "RelayState"),
                    binding: binding.as_ref(),
                },
            )
        }
    };
    // SPID requires the SP to keep every response: the message as received, with the outcome.
    let message = param(&form, "SAMLResponse")
        .and_then(|r| {
            base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                r.split_ascii_whitespace().collect::<String>(),
            )
            .ok()
        })
        .unwrap_or_else(|| body.to_vec());
    let (idp, outcome) = match &result {
        Ok(a) => (a.principal.idp().to_string(), "accepted".to_string()),
        Err(e) => ("-".to_string(), format!("refused: {e}")),
    };
    let kind = idp_bridge::AuditKind::Response;
    // A post that answers no login of this browser was never verified: junk must not be able to
    // fill the disk, so only its head and digest are kept.
    let unverified = matches!(
        &result,
        Err(idp_bridge::AcsError::Malformed(_)
            | idp_bridge::AcsError::Dangerous(_)
            | idp_bridge::AcsError::NoPendingLogin
            | idp_bridge::AcsError::WrongBrowser)
    );
    let record = if unverified {
        idp_bridge::AuditRecord::bounded(kind, &idp, "-", &outcome, &message)
    } else {
        idp_bridge::AuditRecord::new(kind, &idp, "-", &outcome, &message)
    };
    let recorded = shared.audit.record(record).await;
    if let Err(e) = &recorded {
        shared.metrics.event("audit_unavailable");
        tracing::error!(error = %e, "cannot write the SAML audit trail");
    }
    Ok(match result {
        Ok(_) if recorded.is_err() => audit_unavailable(rt),
        Ok(accepted) => {
            // A new login (or step-up) replaces the browser's session: one session, and never a
            // presented ID promoted. The session the login started from was recorded then: the
            // IdP's cross-site POST does not carry the SameSite=Lax session cookie.
            if let Some(old) = accepted.replaces {
                shared.store.remove_session(&old).await?;
            }
            if let Some((old, _)) = current_session(rt, shared, req).await? {
                shared.store.remove_session(&old.key()).await?;
            }
            let id = SessionId::new();
            tracing::info!(idp = %accepted.principal.idp(), level = %accepted.principal.level(), "login completed");
            let asked = asked_attributes(&rt.snapshot, accepted.kind, accepted.attribute_set);
            let return_to = accepted.return_to.clone();
            shared
                .store
                .put_session(&id, Session::open(accepted.principal, asked))
                .await?;
            let mut r = finish_login(rt, shared, &id, &return_to, accepted.handoff_binding).await?;
            if let Some(c) = session_cookie(rt, &id, false) {
                r.headers.push((SET_COOKIE, c));
            }
            r
        }
        Err(e) => {
            tracing::warn!(error = %e, "SAML response refused");
            let failure = match e.page() {
                idp_bridge::RefusalPage::Spid(c) => LoginFailure::Spid(c),
                idp_bridge::RefusalPage::LoginExpired => LoginFailure::Expired,
                idp_bridge::RefusalPage::Rejected => LoginFailure::Rejected,
            };
            let mut r = Reply::page(
                e.status(),
                Bytes::from(catalog::login_failed_page(&rt.site, failure)),
            );
            r.headers
                .push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
            r
        }
    })
}

/// The attributes a login asked for: the declared set's (CIE releases only its own).
fn asked_attributes(snapshot: &Snapshot, kind: IdpKind, index: u16) -> AttributeMask {
    snapshot
        .config
        .sp
        .attribute_sets
        .iter()
        .find(|s| s.index == index)
        .map(|s| s.asked_of(kind))
        .unwrap_or_default()
}

/// `GET /.sso/session`: the current identity as JSON (no session ID, no tokens), or 401.
async fn session_json(rt: &Runtime, shared: &Shared, req: &RequestHeader) -> StoreResult<Reply> {
    let (status, value) = match current_session(rt, shared, req).await? {
        Some((_, s)) => {
            let p = &s.principal;
            // A script on a service host reads only what that host's back-ends may receive,
            // never what the session got for another comune's service.
            let host = request_host(req);
            let visible: Option<AttributeMask> = (host.as_deref()
                != Some(rt.snapshot.config.server.public_url.host.as_str()))
            .then(|| {
                rt.snapshot
                    .services()
                    .filter(|(_, _, svc)| Some(svc.route.host.as_str()) == host.as_deref())
                    .fold(AttributeMask::EMPTY, |m, (_, _, svc)| {
                        m.union(svc.attribute_mask())
                    })
            });
            let attributes: serde_json::Map<String, serde_json::Value> = p
                .attributes()
                .iter()
                .filter(|(k, _)| {
                    visible.is_none_or(|mask| {
                        policies::Attribute::ALL
                            .iter()
                            .any(|a| a.as_str() == k && mask.contains(*a))
                    })
                })
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            (
                200,
                serde_json::json!({
                    "idp": p.idp(),
                    "level": p.level().as_str(),
                    "authn_instant": p.authn_instant().map(|t| t.to_rfc3339()),
                    "attributes": attributes,
                }),
            )
        }
        None => (401, serde_json::json!({ "error": "no session" })),
    };
    let mut r = Reply {
        status,
        content_type: "application/json",
        body: Bytes::from(value.to_string()),
        headers: Vec::new(),
        csp: None,
    };
    r.headers
        .push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
    Ok(r)
}

fn xml(body: &Bytes) -> Reply {
    Reply {
        status: 200,
        content_type: "application/samlmetadata+xml",
        body: body.clone(),
        headers: Vec::new(),
        csp: None,
    }
}

fn method_not_allowed(rt: &Runtime, allow: &'static str) -> Reply {
    let mut r = Reply::page(405, rt.pages.error(ErrorPage::BadRequest).clone());
    r.headers
        .push((http::header::ALLOW, HeaderValue::from_static(allow)));
    r
}

/// The validated place a login returns to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnTarget {
    /// Absolute URL on the public origin.
    pub url: String,
    /// The service there, if any.
    pub service: Option<ServiceRef>,
}

/// Accepts only URLs that varco itself serves, on the portal's scheme and port: the portal's
/// pages or a configured service. Anything else (other hosts, `//evil`, `/\evil`, `https:evil`,
/// credentials, control characters, `/.sso/` itself) is refused: no open redirect.
pub fn return_target(snapshot: &Snapshot, raw: &str) -> Option<ReturnTarget> {
    // The ports allowed are the portal's, the scheme's default and `[server] public_ports`
    // (cookies do not tell ports apart, so the host is the boundary; the list keeps a crafted
    // link from sending a citizen, and a handoff code, to some other server on that host).
    if raw.is_empty()
        || raw.len() > 2048
        || raw.bytes().any(|b| b < 0x21 || b == 0x7f || b == b'\\')
    {
        return None;
    }
    let public = &snapshot.config.server.public_url;
    let origin = public.url.origin().ascii_serialization();
    let absolute = if raw.starts_with('/') {
        if raw.starts_with("//") {
            return None;
        }
        format!("{origin}{raw}")
    } else {
        raw.to_string()
    };
    let uri: http::Uri = absolute.parse().ok()?;
    let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
    if authority.as_str().contains('@') || scheme != public.url.scheme() {
        return None;
    }
    if !snapshot.config.server.is_public_port(authority.port_u16()) {
        return None;
    }
    let service = match snapshot.routes.resolve(authority.as_str(), uri.path()) {
        Ok(RouteMatch::Portal) => None,
        Ok(RouteMatch::Service(r)) => Some(r),
        _ => return None,
    };
    Some(ReturnTarget {
        url: absolute,
        service,
    })
}

/// The origin the browser used for this request, which varco sends it back to after a login:
/// the portal's scheme, and the host and port the browser asked for (the request's authority).
/// Behind a trusted proxy, and only then, `X-Forwarded-Host` and `X-Forwarded-Port` say it
/// instead: a TLS front that rewrites `Host` (nginx's `$host` drops the port) still sends the
/// citizen back where they were. `None` for an authority with no single reading.
pub fn browser_origin(rt: &Runtime, req: &RequestHeader, trusted: bool) -> Option<String> {
    let public = &rt.snapshot.config.server.public_url;
    let forwarded = |name: &str| {
        if !trusted {
            return None;
        }
        let v = req.headers.get(name)?.to_str().ok()?;
        v.split(',').next().map(str::trim).filter(|v| !v.is_empty())
    };
    let raw = forwarded("x-forwarded-host").or_else(|| {
        req.uri.authority().map(|a| a.as_str()).or_else(|| {
            req.headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        })
    })?;
    let authority: http::uri::Authority = raw.parse().ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = policies::normalize_host(authority.host()).ok()?;
    let port = match authority.port_u16() {
        Some(p) => Some(p),
        None => match forwarded("x-forwarded-port") {
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0)?),
            None => None,
        },
    };
    let default = if public.https { 443 } else { 80 };
    let scheme = public.url.scheme();
    Some(match port {
        Some(p) if p != default => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

fn query(req: &RequestHeader) -> Vec<(String, String)> {
    let q = req.uri.query().unwrap_or("");
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .take(16)
        .collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The browser-binding cookie's name for this portal.
fn cookie_name(https: bool) -> &'static str {
    if https {
        "__Secure-varco_login"
    } else {
        LOGIN_COOKIE
    }
}

/// The handoff-binding cookie's name for this portal.
pub fn handoff_cookie_name(https: bool) -> &'static str {
    if https {
        "__Secure-varco_handoff"
    } else {
        HANDOFF_COOKIE
    }
}

/// The binding token the browser already has, if well formed.
pub fn presented_binding(req: &RequestHeader, https: bool) -> Option<BrowserBinding> {
    presented_cookie_binding(req, cookie_name(https))
}

/// A binding cookie (`name`) the browser sent, if well formed.
pub fn presented_cookie_binding(req: &RequestHeader, name: &str) -> Option<BrowserBinding> {
    cookie_value(req, name)
        .filter(|v| {
            v.len() == 43
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(BrowserBinding::from_untrusted)
}

/// A binding cookie: `Path=/.sso/`, HttpOnly, for [`idp_bridge::LOGIN_TTL`] (set again, so
/// refreshed, at every login start), `SameSite=None; Secure` over https when the IdP's cross-site
/// POST must carry it, `Lax` otherwise.
pub fn binding_cookie(
    name: &str,
    binding: &BrowserBinding,
    https: bool,
    cross_site: bool,
) -> Option<HeaderValue> {
    let attrs = match (https, cross_site) {
        (true, true) => "; Secure; SameSite=None",
        (true, false) => "; Secure; SameSite=Lax",
        (false, _) => "; SameSite=Lax",
    };
    HeaderValue::from_str(&format!(
        "{name}={}; Path=/.sso/; HttpOnly; Max-Age={}{attrs}",
        binding.secret(),
        idp_bridge::LOGIN_TTL.as_secs()
    ))
    .ok()
}

/// A digest as it travels in a URL (`hb=`): unpadded base64url.
pub fn digest_param(d: &[u8; 32]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, d)
}

fn parse_digest_param(v: &str) -> Option<[u8; 32]> {
    if v.len() != 43 {
        return None;
    }
    base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v)
        .ok()?
        .try_into()
        .ok()
}

fn shuffled<T>(mut v: Vec<T>) -> Vec<T> {
    // Fisher-Yates with the CSPRNG: AgID asks for the IdPs in random order.
    for i in (1..v.len()).rev() {
        let r = u64::from_str_radix(&idp_bridge::random_token(8, false), 16).unwrap_or(0);
        v.swap(i, (r % (i as u64 + 1)) as usize);
    }
    v
}

async fn login(rt: &Runtime, shared: &Shared, req: &RequestHeader) -> StoreResult<Reply> {
    let audit = &shared.audit;
    let snapshot = &rt.snapshot;
    let q = query(req);
    let target = match param(&q, "return_to") {
        None => ReturnTarget {
            url: format!(
                "{}/",
                snapshot
                    .config
                    .server
                    .public_url
                    .url
                    .origin()
                    .ascii_serialization()
            ),
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
    let handoff_binding = match param(&q, "hb").map(parse_digest_param) {
        None => None,
        Some(Some(d)) => Some(d),
        Some(None) => return Ok(Reply::error(rt, ErrorPage::BadRequest)),
    };

    // One login for every service: a portal session that is good enough needs no IdP.
    let current = current_session(rt, shared, req).await?;
    let service_needs = service.map_or(AttributeMask::EMPTY, |(_, s)| s.attribute_mask());
    if let Some((id, s)) = &current {
        if s.held().allows(Access::Login(level), service_needs) {
            return finish_login(rt, shared, id, &target.url, handoff_binding).await;
        }
    }
    // A step-up for attributes keeps what the session already had: ask for both when a declared
    // set covers them.
    let wanted_all = current
        .as_ref()
        .map_or(service_needs, |(_, s)| s.asked.union(service_needs));
    let cie_possible = service_needs.iter().all(|a| a.in_cie());

    let Some(idp_id) = param(&q, "idp") else {
        // What keeps CIE off the page, when a CIE provider is configured: the citizen is told.
        let cie_configured = rt.identity.idps.iter().any(|i| i.kind == IdpKind::Cie);
        let cie_withheld: Vec<policies::Attribute> = if cie_configured {
            service_needs.iter().filter(|a| !a.in_cie()).collect()
        } else {
            Vec::new()
        };
        let choices = shuffled(
            rt.identity
                .idps
                .iter()
                // CIE cannot release what the service needs (e.g. e-mail): only SPID is offered.
                .filter(|i| i.kind == IdpKind::Spid || cie_possible)
                .map(|i| IdpChoice {
                    name: i.display_name.clone(),
                    href: {
                        let mut q = url::form_urlencoded::Serializer::new(String::new());
                        q.append_pair("idp", &i.entity_id)
                            .append_pair("level", level.as_str())
                            .append_pair("return_to", &target.url);
                        if let Some(hb) = &handoff_binding {
                            q.append_pair("hb", &digest_param(hb));
                        }
                        format!("/.sso/login?{}", q.finish())
                    },
                    cie: i.kind == IdpKind::Cie,
                    logo: i.logo.as_deref().and_then(|l| shared.logos.local_url(l)),
                })
                .collect(),
        );
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
            )),
        );
        r.headers
            .push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
        // IdP logos come from their metadata: https URLs or data: URIs.
        r.csp = Some(
            "default-src 'none'; style-src 'self'; font-src 'self' data:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
                .into(),
        );
        return Ok(r);
    };
    let Some(idp) = rt.identity.idps.get(idp_id) else {
        return Ok(Reply::error(rt, ErrorPage::BadRequest));
    };
    if idp.kind == IdpKind::Cie && !cie_possible {
        return Ok(Reply::error(rt, ErrorPage::BadRequest));
    }
    let sp = &snapshot.config.sp;
    let attribute_set = sp
        .set_for(wanted_all, idp.kind)
        .or_else(|| sp.set_for(service_needs, idp.kind))
        .map_or(0, |s| s.index);
    // Before anything is signed: one browser keeps a bounded number of logins in flight.
    let https = snapshot.config.server.public_url.https;
    let binding = presented_binding(req, https).unwrap_or_else(BrowserBinding::new);
    if shared.store.count_login_start(&binding.digest()).await? > MAX_LOGINS_PER_BROWSER {
        shared.metrics.event("rate_limited");
        tracing::warn!("too many login starts from one browser");
        let mut r = Reply::error_page(rt, ErrorPage::TooManyRequests);
        r.headers
            .push((http::header::RETRY_AFTER, HeaderValue::from_static("60")));
        return Ok(r);
    }
    let request = LoginRequest {
        idp,
        level,
        attribute_set,
    };
    let entity_id = &snapshot.config.sp.entity_id;
    // HTTP-Redirect unless `binding=post` is asked for (or the IdP has only HTTP-POST).
    let use_post = param(&q, "binding") == Some("post") || idp.sso_redirect.is_none();
    let sent = if use_post {
        idp_bridge::post_request(entity_id, &rt.identity.keys, &request).map(|o| {
            let page = catalog::post_binding_page(&rt.site, &o.action, &[("SAMLRequest", &o.saml_request), ("RelayState", o.relay_state.secret())]);
            let mut r = Reply::page(200, Bytes::from(page));
            // The IdP's endpoint, and wherever it redirects the POST to (its own login pages,
            // often on another host: browsers check each redirect against form-action).
            let origin = url::Url::parse(&o.action).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
            r.csp = Some(format!(
                "default-src 'none'; style-src 'self'; font-src 'self' data:; img-src 'self' data:; script-src '{}'; form-action {origin} https:; frame-ancestors 'none'; base-uri 'none'",
                script_hash()
            ));
            (o.id, o.issue_instant, o.xml, o.relay_state.digest(), r)
        })
    } else {
        idp_bridge::redirect_request(entity_id, &rt.identity.keys, &request).map(|o| {
            let r = redirect(&o.redirect_url);
            (o.id, o.issue_instant, o.xml, o.relay_state.digest(), r)
        })
    };
    let (id, issue_instant, xml, relay_digest, mut r) = match sent {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the AuthnRequest");
            return Ok(Reply::error(rt, ErrorPage::Internal));
        }
    };
    let record = idp_bridge::AuditRecord::new(
        idp_bridge::AuditKind::AuthnRequest,
        &idp.entity_id,
        &id,
        "sent",
        xml.as_bytes(),
    );
    if let Err(e) = audit.record(record).await {
        // SPID requires every request to be kept: no record, no login.
        shared.metrics.event("audit_unavailable");
        tracing::error!(error = %e, "cannot write the SAML audit trail");
        return Ok(audit_unavailable(rt));
    }
    shared
        .store
        .put_login(PendingLogin {
            request_id: id,
            issue_instant,
            idp: idp.entity_id.clone(),
            level,
            attribute_set,
            return_to: target.url,
            binding: binding.digest(),
            relay_state: relay_digest,
            replaces: current.as_ref().map(|(id, _)| id.key()),
            handoff_binding,
        })
        .await?;
    tracing::info!(idp = %idp.entity_id, level = %level, attribute_set, post = use_post, "login started");
    if !r.headers.iter().any(|(n, _)| n == CACHE_CONTROL) {
        r.headers
            .push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
    }
    // Set again even when the browser has it: a retry after a long stay at the IdP must still
    // find its binding (the pending login's own lifetime counts from this start).
    if let Some(v) = binding_cookie(cookie_name(https), &binding, https, true) {
        r.headers.push((SET_COOKIE, v));
    }
    Ok(r)
}

#[cfg(test)]
mod tests;
