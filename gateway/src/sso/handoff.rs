//! The way from a finished login to where the citizen was going ([`go_to_target`]) and
//! `GET /.sso/handoff?code=…`, which brings the session to a service host that the portal's
//! cookie does not reach: a one-time code, for one host, one browser, one minute.

use catalog::LoginFailure;
use http::header::SET_COOKIE;
use idp_bridge::BindingDigest;
use pingora::http::RequestHeader;

use super::{param, query};
use crate::cookies::{cookie_reaches, current_session, presented_binding, session_cookie, Cookie};
use crate::reply::Reply;
use crate::runtime::Runtime;
use crate::state::Shared;
use crate::store::{Handoff, SessionId, StateStore as _, StoreResult};

/// After a login (or with a portal session already good enough): to the target directly, or
/// through `/.sso/handoff` on the target's host when the portal's cookie does not reach it.
pub(super) async fn go_to_target(
    rt: &Runtime,
    shared: &Shared,
    id: &SessionId,
    target: &str,
    handoff_binding: Option<BindingDigest>,
) -> StoreResult<Reply> {
    let Ok(uri) = target.parse::<http::Uri>() else {
        return Ok(Reply::redirect_to("/"));
    };
    let Some(authority) = uri.authority() else {
        return Ok(Reply::redirect_to(target));
    };
    let host = authority
        .host()
        .trim_matches(|c| c == '[' || c == ']')
        .to_ascii_lowercase();
    if cookie_reaches(rt, &host) {
        return Ok(Reply::redirect_to(target));
    }
    // A code is only made for the browser the service host sent here (it holds the binding
    // cookie there). A login started elsewhere goes to the target without a code: the service
    // host sends the browser back with its binding, and the portal's session then suffices.
    let Some(binding) = handoff_binding else {
        return Ok(Reply::redirect_to(target));
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
    Ok(Reply::redirect_to(&format!(
        "{scheme}://{authority}/.sso/handoff?code={code}"
    )))
}

/// `GET /.sso/handoff?code=…` on a service host: redeems a one-time code for this host's session
/// cookie. A code works once, within a minute, and only on the host it was made for.
pub(super) async fn handoff(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
) -> StoreResult<Reply> {
    let q = query(req);
    let expired = || {
        Reply::page(
            403,
            catalog::login_failed_page(rt.site_for(req), LoginFailure::Expired),
        )
    };
    let Some(code) = param(&q, "code").filter(|c| c.len() <= 64) else {
        return Ok(expired());
    };
    // Only the browser the service host sent to log in holds the binding cookie the code was
    // made for: a code minted for somebody's own session and handed to a victim (login CSRF)
    // finds nothing, and burns nothing.
    let https = rt.snapshot.config.server.public_url.https;
    let Some(presented) = presented_binding(req, Cookie::Handoff, https) else {
        tracing::warn!("handoff without this host's binding cookie");
        return Ok(expired());
    };
    let Some(h) = shared.store.take_handoff(code, &presented.digest()).await? else {
        return Ok(expired());
    };
    let host = crate::request::target::request_host(req);
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
        if !current.principal().same_person(incoming.principal()) {
            // Never silently swap the person this site works for.
            tracing::warn!("handoff refused: this host has another subject's session");
            return Ok(Reply::login_failed(
                &rt.site,
                LoginFailure::OtherPerson,
                409,
            ));
        }
        if current_id.key() != session.key() {
            // The same citizen after a step-up elsewhere: one session per browser.
            shared.store.remove_session(&current_id.key()).await?;
        }
    }
    let mut r = Reply::redirect_to(&h.target);
    if let Some(c) = session_cookie(rt, &session, true) {
        r.headers.push((SET_COOKIE, c));
    }
    Ok(r)
}
