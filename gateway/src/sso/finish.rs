//! The end of every login, whatever the protocol: the callback, finished through the login door
//! ([`idp_bridge::login::finish`]). On success a new session and the way to where the citizen
//! was going; otherwise the page for what went wrong (4xx, never 404, never a redirect).

use http::header::SET_COOKIE;
use idp_bridge::{Callback, FinishError};
use pingora::http::RequestHeader;

use super::handoff::go_to_target;
use crate::cookies::{current_session, presented_binding, session_cookie, Cookie};
use crate::reply::Reply;
use crate::runtime::Runtime;
use crate::state::Shared;
use crate::store::{Session, SessionId, StateStore as _, StoreResult};

/// Finishes the login `callback` answers.
pub(super) async fn complete(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
    callback: Callback,
) -> StoreResult<Reply> {
    let https = rt.snapshot.config.server.public_url.https;
    let binding = presented_binding(req, Cookie::Login, https);
    // Taken once, whichever instance started the login, and only by the browser that started it
    // (a forged POST from another browser burns nothing).
    let pending = match (callback.answers(), &binding) {
        (Some(id), Some(b)) => shared.store.take_login(&id, &b.digest()).await?,
        _ => None,
    };
    let sp = rt.identity.sp(&rt.snapshot);
    let login =
        match idp_bridge::login::finish(sp, callback, pending, binding.as_ref(), &shared.audit)
            .await
        {
            Ok(login) => login,
            Err(FinishError::Audit(e)) => {
                return Ok(Reply::audit_unavailable(rt, &shared.metrics, &e))
            }
            Err(e) => {
                tracing::warn!(error = %e, "login refused");
                return Ok(Reply::refused(rt, &e));
            }
        };
    // A new login (or step-up) replaces the browser's session: one session, and never a
    // presented ID promoted. The session the login started from was recorded then: the IdP's
    // cross-site POST does not carry the SameSite=Lax session cookie.
    if let Some(old) = &login.replaces {
        shared.store.remove_session(old).await?;
    }
    if let Some((old, _)) = current_session(rt, shared, req).await? {
        shared.store.remove_session(&old.key()).await?;
    }
    let id = SessionId::new();
    tracing::info!(
        idp = %login.principal.idp(),
        protocol = login.principal.protocol().as_str(),
        level = %login.principal.level(),
        "login completed"
    );
    shared
        .store
        .put_session(&id, Session::open(login.principal, login.asked))
        .await?;
    let mut r = go_to_target(rt, shared, &id, &login.return_to, login.handoff_binding).await?;
    if let Some(c) = session_cookie(rt, &id, false) {
        r.headers.push((SET_COOKIE, c));
    }
    Ok(r)
}
