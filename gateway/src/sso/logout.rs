//! `/.sso/logout`: ends the session here at once, then asks its IdP to end its own (SAML SLO,
//! or OpenID Connect RP-initiated logout).
//! A request from varco's own pages (or typed by the citizen) logs out; one from anywhere else
//! gets a page that asks first, and a POST from anywhere else is a forgery.

use catalog::ErrorPage;
use http::header::SET_COOKIE;
use pingora::http::RequestHeader;

use crate::cookies::{clear_session_cookie, current_session};
use crate::reply::Reply;
use crate::runtime::Runtime;
use crate::state::Shared;
use crate::store::{StateStore as _, StoreResult};

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
fn initiator(rt: &Runtime, req: &RequestHeader) -> Initiator {
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

/// `/.sso/logout`. A GET from another site (a link, an automatic navigation) gets a page that
/// asks first; the confirmation form posts from varco's own page, so a POST from anywhere else
/// is a forgery (SameSite cookies alone do not stop a same-site one).
pub(super) async fn logout_endpoint(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
    posted: bool,
) -> StoreResult<Reply> {
    match (initiator(rt, req), posted) {
        (Initiator::SameOrigin, _) => logout(rt, shared, req).await,
        (Initiator::CrossSite | Initiator::Unknown, false) => {
            Ok(Reply::page(200, catalog::logout_confirm_page(rt.site_for(req))).no_store())
        }
        (Initiator::CrossSite | Initiator::Unknown, true) => {
            tracing::warn!("logout POST from another origin refused");
            Ok(Reply::error(rt, ErrorPage::BadRequest))
        }
    }
}

/// Ends the session, then the IdP's: without a session (or an IdP without SLO) straight to the
/// "logged out" page.
async fn logout(rt: &Runtime, shared: &Shared, req: &RequestHeader) -> StoreResult<Reply> {
    let logged_out = || Reply::page(200, catalog::logged_out_page(rt.site_for(req)));
    let reply = match current_session(rt, shared, req).await? {
        Some((id, session)) => {
            shared.store.remove_session(&id.key()).await?;
            let p = session.principal();
            if let Some(provider) = rt.identity.oidc.get(p.idp()) {
                tracing::info!(idp = %p.idp(), "logout");
                // RP-initiated logout: the provider ends its own session and sends the citizen
                // back to /.sso/oidc/logged-out.
                let to = idp_bridge::oidc::end_session_url(
                    &rt.identity.oidc,
                    provider,
                    &rt.snapshot.config,
                )
                .await;
                let reply = to.map_or_else(logged_out, |url| Reply::redirect_to(&url));
                return Ok(reply.with(SET_COOKIE, clear_session_cookie(rt)).no_store());
            }
            let slo = rt.identity.idps.get(p.idp()).and_then(|idp| {
                idp_bridge::logout_request(
                    &rt.snapshot.config.entity_id(p.audience()),
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
                    Reply::redirect_to(&url)
                }
                None => logged_out(),
            }
        }
        None => logged_out(),
    };
    Ok(reply.with(SET_COOKIE, clear_session_cookie(rt)).no_store())
}
