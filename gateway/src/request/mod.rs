//! The request path: the pingora `ProxyHttp` service, one request's way through varco.
//!
//! `request_filter` strips what varco owns ([`headers`]), resolves the route and decides; only a
//! [`policies::Decision::Allow`] moves the context ([`ctx`]) to its allowed state, and
//! `upstream_peer` finds a back-end in no other. Pages varco answers itself (404, 401, 400, the
//! portal's [`portal`]) are written in `request_filter`; back-end failures become 502/504 pages
//! in `fail_to_proxy`. An allowed request with a session gets its [`identity`] headers and a
//! signed [`jwt`]; the login endpoints are rate-limited per client ([`limits`]).

pub(crate) mod ctx;
pub mod headers;
pub(crate) mod https_redirect;
pub(crate) mod identity;
pub(crate) mod jwt;
pub(crate) mod limits;
pub(crate) mod portal;
pub(crate) mod target;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use catalog::ErrorPage;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::Method;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorSource, ErrorType};
use policies::{decide, Decision, RouteMatch};

pub use self::ctx::Ctx;
use self::ctx::{Allowed, Answer, Citizen, Phase};
use self::headers::{is_trusted, set_forwarded, strip_inbound, strip_mapped};
use self::target::authority;
use crate::reply::{Reply, HTML, PAGE_CSP};
use crate::runtime::Runtime;
use crate::state::Shared;

/// The proxy service.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy serving from `shared`'s current runtime.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// The head of an error page that varco writes itself (both request paths use it).
pub(crate) fn page_header(
    status: u16,
    length: usize,
    extra: Option<(http::HeaderName, &'static str)>,
    hsts: Option<&http::HeaderValue>,
) -> pingora::Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(status, Some(8))?;
    resp.insert_header(CONTENT_TYPE, HTML)?;
    resp.insert_header(CONTENT_LENGTH, length)?;
    resp.insert_header(CACHE_CONTROL, "no-store")?;
    resp.insert_header("x-content-type-options", "nosniff")?;
    resp.insert_header("referrer-policy", "no-referrer")?;
    resp.insert_header("content-security-policy", PAGE_CSP)?;
    if let Some((name, value)) = extra {
        resp.insert_header(name, value)?;
    }
    if let Some(hsts) = hsts {
        resp.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone())?;
    }
    Ok(resp)
}

/// Writes a complete error page that varco produces itself. Returns `Ok(true)`: the request is
/// done.
async fn respond(
    session: &mut Session,
    ctx: &mut Ctx,
    status: u16,
    body: &Bytes,
    extra: Option<(http::HeaderName, &'static str)>,
) -> pingora::Result<bool> {
    let resp = page_header(status, body.len(), extra, ctx.hsts.as_ref())?;
    let head_only = session.req_header().method == Method::HEAD;
    ctx.status = status;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(body.clone()), true)
            .await?;
    }
    Ok(true)
}

impl Proxy {
    /// `/.sso/*`: varco's own endpoints.
    async fn sso(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rt: &Runtime,
    ) -> pingora::Result<bool> {
        if crate::sso::needs_body(session.req_header()) {
            let mut body = Vec::new();
            while let Some(chunk) = session.read_request_body().await? {
                if body.len() + chunk.len() > crate::sso::MAX_ACS_BODY {
                    return respond(
                        session,
                        ctx,
                        413,
                        rt.pages.error(ErrorPage::BadRequest),
                        None,
                    )
                    .await;
                }
                body.extend_from_slice(&chunk);
            }
            let reply = crate::sso::with_body(rt, &self.shared, session.req_header(), &body).await;
            return write_reply(session, ctx, reply).await;
        }
        let reply = crate::sso::handle(rt, &self.shared, session.req_header()).await;
        write_reply(session, ctx, reply).await
    }

    /// Whether `req` is for `[cns] host`.
    fn is_cns_host(&self, rt: &Runtime, req: &pingora::http::RequestHeader) -> bool {
        rt.snapshot
            .config
            .cns
            .as_ref()
            .is_some_and(|cns| target::request_host(req).is_some_and(|h| h == cns.host))
    }

    /// The 429 for a client past the login endpoints' rate (`sso_rate`, `sso_burst`), if it is.
    fn over_login_rate(
        &self,
        rt: &Runtime,
        ctx: &Ctx,
        req: &pingora::http::RequestHeader,
    ) -> Option<Reply> {
        let server = &rt.snapshot.config.server;
        let ip = limits::client_of(ctx.client_ip, req, &server.trusted_proxies)?;
        let wait = self
            .shared
            .limiter
            .take(ip, server.sso_rate, server.sso_burst)
            .err()?;
        self.shared.metrics.event("rate_limited");
        let mut reply = Reply::error_page(rt, ErrorPage::TooManyRequests);
        if let Ok(v) = http::HeaderValue::from_str(&(wait.as_secs() + 1).to_string()) {
            reply.headers.push((http::header::RETRY_AFTER, v));
        }
        Some(reply)
    }

    /// A request for `[cns] host`, with what this connection's handshake received.
    async fn cns_host(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rt: &Runtime,
    ) -> pingora::Result<bool> {
        if let Some(reply) = self.over_login_rate(rt, ctx, session.req_header()) {
            return write_reply(session, ctx, reply).await;
        }
        let presented = session
            .digest()
            .and_then(|d| d.ssl_digest.as_ref())
            .and_then(|s| s.extension.get::<crate::tls::CardPresented>());
        let reply =
            crate::sso::cns::card_host(rt, &self.shared, session.req_header(), presented).await;
        write_reply(session, ctx, reply).await
    }

    /// A request for a service: strips its mapped headers, finds the session when it needs a
    /// login, and decides. `Ok(false)`: allowed, on to the back-end.
    async fn service(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rt: Arc<Runtime>,
        route: policies::ServiceRef,
        trusted: bool,
    ) -> pingora::Result<bool> {
        let (admission, removed) =
            admit(&self.shared, rt.clone(), route, session.req_header_mut()).await;
        if removed > 0 {
            self.shared.metrics.stripped(removed);
        }
        match admission {
            Admission::Broken => {
                ctx.answered(Answer::Nothing);
                let page = rt.error_for(ErrorPage::Internal, session.req_header());
                respond(session, ctx, 500, &page, None).await
            }
            Admission::Allowed(allowed) => {
                ctx.phase = Phase::Allowed(allowed);
                Ok(false)
            }
            Admission::Login { index, level } => {
                ctx.answered(Answer::Service(index));
                let reply = crate::sso::return_to::login_redirect(
                    &rt,
                    session.req_header(),
                    level,
                    trusted,
                );
                write_reply(session, ctx, reply).await
            }
            Admission::Unavailable { index, error } => {
                ctx.answered(Answer::Service(index));
                write_reply(session, ctx, Reply::unavailable(&rt, &error)).await
            }
        }
    }
}

/// What a request for a service may do, decided from its policy and its session.
pub(crate) enum Admission {
    /// On to the back-end.
    Allowed(Allowed),
    /// To the login (or a step up) first.
    Login {
        /// The service's index in the runtime.
        index: usize,
        /// The level it needs.
        level: policies::Level,
    },
    /// The session store did not answer.
    Unavailable {
        /// The service's index in the runtime.
        index: usize,
        /// Why.
        error: crate::store::StoreError,
    },
    /// The route names no compiled service (a bug: answered 500).
    Broken,
}

/// Strips the service's mapped headers from `req`, finds the session when the service needs a
/// login, and decides; both request paths admit with it. Also returns how many headers were
/// stripped, for the metric, which the caller records once the request is its own.
pub(crate) async fn admit(
    shared: &Shared,
    rt: Arc<Runtime>,
    route: policies::ServiceRef,
    req: &mut RequestHeader,
) -> (Admission, usize) {
    let (Some(index), Some((_, service))) = (rt.index(route), rt.snapshot.service(route)) else {
        return (Admission::Broken, 0);
    };
    let compiled = rt.service(index);
    let removed = compiled.map_or(0, |svc| strip_mapped(req, &svc.strip));
    let citizen = if compiled.is_some_and(|s| s.needs_login) {
        match crate::cookies::current_session(&rt, shared, req).await {
            Ok(found) => found.map(|(id, session)| Citizen {
                key: id.key(),
                session,
            }),
            Err(error) => return (Admission::Unavailable { index, error }, removed),
        }
    } else {
        None
    };
    let held = citizen.as_ref().and_then(|c| match compiled {
        Some(svc) => c.session.held_for(&svc.audience),
        None => None,
    });
    let admission = match decide(service, held) {
        Decision::Allow(permit) => {
            Admission::Allowed(Allowed::new(permit, rt.clone(), index, citizen))
        }
        Decision::Login { level } => Admission::Login { index, level },
    };
    (admission, removed)
}

/// Which route `req` is for: its authority and path, with exactly one `Host`.
pub(crate) fn resolve(
    rt: &Runtime,
    req: &RequestHeader,
) -> Result<RouteMatch, policies::RejectedTarget> {
    // Two Host headers have no single reading (RFC 9112 §3.2): refuse rather than pick one.
    match authority(req) {
        Some(_) if req.headers.get_all(HOST).iter().nth(1).is_some() => {
            Err(policies::RejectedTarget::BadHost)
        }
        Some(host) => rt.snapshot.routes.resolve(host, req.uri.path()),
        None => Err(policies::RejectedTarget::BadHost),
    }
}

/// A new request's context, with its `varco.request` span when traces are exported.
pub(crate) fn new_ctx(shared: &Shared) -> Ctx {
    Ctx::new(shared.trace_requests().then(|| {
        tracing::info_span!(
            "varco.request",
            route = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty
        )
    }))
}

/// Sets what an allowed request carries to its back-end: the forwarding headers, the service's
/// `Host`, the request's cookies without varco's, and the citizen's identity headers and JWT.
/// Runs after every inbound copy of those headers was removed.
pub(crate) fn prepare_upstream(
    shared: &Shared,
    allowed: &Allowed,
    client_ip: Option<std::net::IpAddr>,
    host: Option<&http::HeaderValue>,
    upstream: &mut RequestHeader,
) -> pingora::Result<()> {
    let rt = allowed.runtime();
    // The scheme citizens use is the portal's (TLS ends in front of varco, or in it).
    let proto = if rt.snapshot.config.server.public_url.https {
        "https"
    } else {
        "http"
    };
    set_forwarded(upstream, client_ip, proto, host)?;
    if let Some(h) = allowed.service().and_then(|s| s.upstream_host.clone()) {
        // The citizen's host stays in X-Forwarded-Host.
        upstream.insert_header(HOST, h)?;
    }
    crate::cookies::strip_varco_cookies(upstream)?;
    if let (Some(citizen), Some(_)) = (
        allowed.citizen(),
        allowed.service().filter(|s| s.needs_login),
    ) {
        let principal = citizen.session.principal();
        let Some(identity) =
            jwt::cache::identity(&shared.assertions, allowed, &citizen.key, principal)
        else {
            // No unsigned identity: without its JWT the request does not go on.
            return Error::e_explain(ErrorType::InternalError, "cannot sign the identity JWT");
        };
        for (name, value) in identity.iter() {
            upstream.insert_header(name.clone(), value.clone())?;
        }
    }
    Ok(())
}

/// A back-end's answer, before it reaches the browser: varco's HSTS replaces the back-end's, and
/// a back-end (or an injection bug in one) must not plant varco's own cookies (a session fixed
/// on its host, a login binding for the portal), so every `Set-Cookie` for one of their names
/// goes.
pub(crate) fn filter_response(
    shared: &Shared,
    ctx: &Ctx,
    upstream_response: &mut ResponseHeader,
) -> pingora::Result<()> {
    if let Some(hsts) = &ctx.hsts {
        // varco owns the policy of its HTTPS origins.
        upstream_response.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone())?;
    }
    let set_cookie = http::header::SET_COOKIE;
    let planted = upstream_response
        .headers
        .get_all(&set_cookie)
        .iter()
        .any(crate::cookies::sets_varco_cookie);
    if planted {
        let kept: Vec<http::HeaderValue> = upstream_response
            .headers
            .get_all(&set_cookie)
            .iter()
            .filter(|v| !crate::cookies::sets_varco_cookie(v))
            .cloned()
            .collect();
        upstream_response.remove_header(&set_cookie);
        for v in kept {
            upstream_response.append_header(set_cookie.clone(), v)?;
        }
        shared.metrics.event("upstream_set_cookie");
        tracing::warn!(route = %ctx.route_label(), "a back-end tried to set one of varco's cookies; dropped");
    }
    Ok(())
}

/// The page for a failure before or during proxying; `None`: the client went away, no page.
pub(crate) fn page_for(e: &Error) -> Option<ErrorPage> {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if e.esource() == &ErrorSource::Upstream =>
        {
            Some(ErrorPage::GatewayTimeout)
        }
        ErrorType::HTTPStatus(504) => Some(ErrorPage::GatewayTimeout),
        ErrorType::HTTPStatus(400) => Some(ErrorPage::BadRequest),
        ErrorType::HTTPStatus(_) => Some(ErrorPage::BadGateway),
        _ => match e.esource() {
            ErrorSource::Upstream => Some(ErrorPage::BadGateway),
            ErrorSource::Downstream => match e.etype() {
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => None,
                _ => Some(ErrorPage::BadRequest),
            },
            ErrorSource::Internal | ErrorSource::Unset => Some(ErrorPage::Internal),
        },
    }
}

/// Once per request, at its very end, on both paths: the metrics, the span's fields and the
/// access log.
pub(crate) fn log_request(shared: &Shared, method: &http::Method, ctx: &Ctx, status: u16) {
    let elapsed = ctx.started.elapsed();
    let (Some(rt), Some(attrs)) = (ctx.runtime(), ctx.metric()) else {
        return;
    };
    shared.metrics.request(attrs, status, elapsed.as_secs_f64());
    if let Some(span) = &ctx.span {
        span.record("route", ctx.route_label());
        span.record("http.response.status_code", status);
    }
    if rt.snapshot.config.server.access_log {
        // No path, query or client address: they can carry personal data.
        tracing::info!(
            target: "varco::access",
            method = %method,
            route = %ctx.route_label(),
            status,
            micros = elapsed.as_micros() as u64,
        );
    }
}

/// Writes a reply that varco produced itself.
async fn write_reply(session: &mut Session, ctx: &mut Ctx, reply: Reply) -> pingora::Result<bool> {
    let mut resp = ResponseHeader::build(reply.status, Some(6 + reply.headers.len()))?;
    resp.insert_header(CONTENT_TYPE, reply.content_type)?;
    if reply.status != 304 {
        // A 304's length would be the representation's, which it does not carry.
        resp.insert_header(CONTENT_LENGTH, reply.body.len())?;
    }
    resp.insert_header("x-content-type-options", "nosniff")?;
    if reply.content_type.starts_with("text/html") {
        resp.insert_header("referrer-policy", "no-referrer")?;
        let csp = reply.csp.as_deref().unwrap_or(PAGE_CSP);
        resp.insert_header("content-security-policy", csp)?;
    } else if let Some(csp) = reply.csp.as_deref() {
        resp.insert_header("content-security-policy", csp)?;
    }
    for (name, value) in reply.headers {
        resp.append_header(name, value)?;
    }
    if let Some(hsts) = &ctx.hsts {
        resp.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone())?;
    }
    let head_only = session.req_header().method == Method::HEAD || reply.body.is_empty();
    ctx.status = reply.status;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(true)
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        new_ctx(&self.shared)
    }

    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {
        // No downstream modules: pingora's default adds a (disabled) compression module whose
        // per-request context varco would pay for without using it.
    }

    /// Runs first for every request: strips owned headers, resolves the route, decides. `Ok(true)`
    /// means varco answered (page or error); `Ok(false)` goes on to the back-end, allowed.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        let rt = self.shared.current();
        ctx.phase = Phase::Routing(rt.clone());
        if self.shared.is_draining() {
            // Handing over or stopping: this answer closes the connection, and the client's next
            // request opens one to the process that stays.
            session.set_keepalive(None);
        }
        ctx.client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let Some(hsts) = &self.shared.hsts {
            if session.digest().is_some_and(|d| d.ssl_digest.is_some()) {
                ctx.hsts = Some(hsts.clone());
            }
        }
        let trusted = is_trusted(ctx.client_ip, &rt.snapshot.config.server.trusted_proxies);
        let removed = strip_inbound(session.req_header_mut(), trusted);
        if removed > 0 {
            self.shared.metrics.stripped(removed);
            tracing::debug!(removed, "removed inbound headers that varco owns");
        }

        let req = session.req_header();
        match resolve(&rt, req) {
            Err(reason) => {
                tracing::debug!(%reason, "request target rejected");
                ctx.answered(Answer::Nothing);
                let page = rt.error_for(ErrorPage::BadRequest, req);
                respond(session, ctx, 400, &page, None).await
            }
            // `[cns] host` routes no service (the loader refuses one there): it is the CNS login's.
            Ok(RouteMatch::NotFound) if self.is_cns_host(&rt, req) => {
                ctx.answered(Answer::Sso);
                self.cns_host(session, ctx, &rt).await
            }
            Ok(RouteMatch::NotFound) => {
                ctx.answered(Answer::Nothing);
                let not_found = rt.error_for(ErrorPage::NotFound, req);
                let get = matches!(req.method, http::Method::GET | http::Method::HEAD);
                if get && req.uri.path().eq_ignore_ascii_case("/favicon.ico") {
                    return write_reply(session, ctx, portal::favicon()).await;
                }
                // An unknown host's 404 page is styled too.
                if get && req.uri.path().starts_with("/.sso/assets/") {
                    let reply = crate::sso::asset(&rt, req.uri.path());
                    return write_reply(session, ctx, reply).await;
                }
                respond(session, ctx, 404, &not_found, None).await
            }
            Ok(RouteMatch::Sso) => {
                ctx.answered(Answer::Sso);
                if limits::limited_path(req.uri.path()) {
                    if let Some(reply) = self.over_login_rate(&rt, ctx, req) {
                        return write_reply(session, ctx, reply).await;
                    }
                }
                self.sso(session, ctx, &rt).await
            }
            Ok(RouteMatch::Portal) => {
                ctx.answered(Answer::Portal);
                let reply = portal::handle(&rt, &self.shared, session.req_header()).await;
                write_reply(session, ctx, reply).await
            }
            Ok(RouteMatch::Service(r)) => self.service(session, ctx, rt, r, trusted).await,
        }
    }

    /// Picks the back-end: only an allowed request has one; any other fails closed with 500.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        match &ctx.phase {
            Phase::Allowed(a) => match a.service() {
                Some(s) => Ok(Box::new(s.peer.clone())),
                None => Error::e_explain(ErrorType::InternalError, "service index out of range"),
            },
            _ => Error::e_explain(ErrorType::InternalError, "no permit for this request"),
        }
    }

    /// Runs after pingora's hop-by-hop processing, just before the request goes upstream: the only
    /// place varco adds headers, so no `Connection:` nomination can remove them.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        let Phase::Allowed(allowed) = &ctx.phase else {
            return Error::e_explain(ErrorType::InternalError, "no permit for this request");
        };
        let host = session.req_header().headers.get(HOST);
        prepare_upstream(&self.shared, allowed, ctx.client_ip, host, upstream)
    }

    /// A back-end's answer, before it reaches the browser: a back-end (or an injection bug in
    /// one) must not plant varco's own cookies (a session fixed on its host, a login binding for
    /// the portal), so every `Set-Cookie` for one of their names goes.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        filter_response(&self.shared, ctx, upstream_response)
    }

    /// A fatal error before or during proxying: answer with the page for it if nothing was sent.
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let page = page_for(e);
        let Some(page) = page else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        let status = page.status();
        if session.response_written().is_none() {
            // Before request_filter ran there is no runtime in the context: the current one.
            let rt = ctx
                .runtime()
                .cloned()
                .unwrap_or_else(|| self.shared.current());
            let body = rt.error_for(page, session.req_header());
            // The connection is not reused after a failure: say so, or a client sends its next
            // request on it while it closes, and gets a reset. pingora writes `Connection` from
            // its own keep-alive state (a header set here would be overwritten with
            // `keep-alive`), so that state is what changes.
            session.set_keepalive(None);
            if let Err(err) = respond(session, ctx, status, &body, None).await {
                tracing::debug!(%err, "could not send the error page");
            }
        }
        tracing::warn!(status, error = %e, route = %ctx.route_label(), "request failed");
        ctx.status = status;
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// Runs once per request, at the very end: metrics and the access log.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let status = session
            .response_written()
            .map_or(ctx.status, |r| r.status.as_u16());
        log_request(&self.shared, &session.req_header().method, ctx, status);
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _error: &Error) -> bool {
        // fail_to_proxy already logged it, without the request line pingora would print.
        true
    }
}
