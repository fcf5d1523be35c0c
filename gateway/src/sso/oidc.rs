//! varco's OpenID Connect endpoints: `GET /.sso/oidc/callback`, the redirect URI of every
//! provider, finished like every login ([`super::finish::complete`]); `POST
//! /.sso/oidc/backchannel`, where a provider says a citizen's session ended (Back-Channel Logout);
//! `GET /.sso/oidc/logged-out`, where a provider sends the citizen back after its logout.

use idp_bridge::Callback;
use pingora::http::RequestHeader;

use crate::reply::Reply;
use crate::runtime::Runtime;
use crate::state::Shared;
use crate::store::{StateStore as _, StoreResult};

pub(super) async fn callback(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
) -> StoreResult<Reply> {
    let callback = Callback::oidc_redirect(req.uri.query().unwrap_or(""));
    // A page that goes on rather than a redirect, as after the ACS: the provider's login page
    // often ends in a form POST, and the browser checks every redirect after it against that
    // page's `form-action`, which cannot list every comune's host.
    let mut reply = super::onward(
        rt,
        super::finish::complete(rt, shared, req, callback).await?,
    );
    // The callback URL carries the code: no cache keeps the answer, no referrer carries it on.
    reply = reply.no_store();
    reply.headers.push((
        http::header::REFERRER_POLICY,
        http::HeaderValue::from_static("no-referrer"),
    ));
    Ok(reply)
}

/// A provider's logout token: every session of that subject at that provider ends, on every
/// instance (the store is shared). 200 once done; 400 for a token that does not verify or was
/// seen before.
pub(super) async fn backchannel(rt: &Runtime, shared: &Shared, body: &[u8]) -> StoreResult<Reply> {
    let refuse = |why: &str| {
        Reply::json(
            400,
            &serde_json::json!({ "error": "invalid_request", "error_description": why }),
        )
    };
    let form = super::fields(body, 8);
    let Some(token) = super::param(&form, "logout_token") else {
        return Ok(refuse("no logout_token"));
    };
    let order = match idp_bridge::oidc::verify_logout_token(&rt.identity.oidc, token).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "back-channel logout refused");
            return Ok(refuse("the logout token does not verify"));
        }
    };
    // Sessions are found by subject; a token with only a `sid` names none varco can find.
    let Some(sub) = &order.sub else {
        tracing::warn!(idp = %order.issuer, "back-channel logout with a sid and no sub: not supported");
        return Ok(refuse("a logout token without sub is not supported"));
    };
    let seen = format!("bcl\0{}\0{}", order.issuer, order.jti);
    if !shared
        .store
        .first_use(&seen, std::time::Duration::from_secs(1200))
        .await?
    {
        tracing::warn!(idp = %order.issuer, "logout token replayed");
        return Ok(refuse("the logout token was used before"));
    }
    let ended = match shared.store.remove_subject(&order.issuer, sub).await {
        Ok(n) => n,
        Err(e) => {
            // The provider may send it again: it must not be refused as a replay then.
            let _ = shared.store.forget_use(&seen).await;
            return Err(e);
        }
    };
    tracing::info!(idp = %order.issuer, ended, "logout by the provider (back channel)");
    Ok(Reply::new(200, "text/plain; charset=utf-8", bytes::Bytes::new()).no_store())
}

/// Where a provider sends the citizen after its own logout (varco's session ended before).
pub(super) fn logged_out(rt: &Runtime, req: &RequestHeader) -> Reply {
    Reply::page(200, catalog::logged_out_page(rt.site_for(req))).no_store()
}
