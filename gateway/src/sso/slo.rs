//! `/.sso/slo` (and an aggregated comune's `/.sso/slo/<ipa>`): SAML single logout from the IdP's side: its LogoutResponse to our request, or
//! its own LogoutRequest (the citizen logged out elsewhere), answered with a signed
//! LogoutResponse. Only signed messages are believed.

use catalog::{ErrorPage, LoginFailure};
use http::header::SET_COOKIE;
use pingora::http::RequestHeader;

use super::{fields, param};
use crate::cookies::clear_session_cookie;
use crate::reply::Reply;
use crate::runtime::Runtime;
use crate::state::Shared;
use crate::store::{StateStore as _, StoreResult};

/// `/.sso/slo`: the IdP's LogoutResponse to our request, or its own LogoutRequest (HTTP-Redirect
/// with `body == None`, HTTP-POST with the form body). Only signed messages are believed.
pub(super) async fn slo(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
    body: Option<&[u8]>,
    at: &policies::Audience,
) -> StoreResult<Reply> {
    let slo_url = idp_bridge::SpEndpoints::of(&rt.snapshot.config, at).slo;
    let verified = match body {
        None => {
            idp_bridge::verify_redirect(req.uri.query().unwrap_or(""), &rt.identity.idps, &slo_url)
        }
        Some(body) => {
            let form = fields(body, 8);
            match param(&form, "SAMLRequest").or_else(|| param(&form, "SAMLResponse")) {
                Some(m) => idp_bridge::verify_post(m, &rt.identity.idps, &slo_url),
                None => Err(idp_bridge::SloError::Malformed(
                    "no SAMLRequest or SAMLResponse",
                )),
            }
        }
    };
    let refused = |status| Reply::login_failed(&rt.site, LoginFailure::Rejected, status);
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
                    &rt.snapshot.config.entity_id(at),
                    &rt.identity.keys,
                    i,
                    &id,
                )
            });
            match answer {
                Some(Ok(url)) => {
                    Reply::redirect_to(&url).with(SET_COOKIE, clear_session_cookie(rt))
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
            Reply::page(200, catalog::logged_out_page(&rt.site))
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
