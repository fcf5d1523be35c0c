//! The CNS login's two endpoints.
//!
//! - On `[cns] host`, `GET /.sso/cns?login=<id>`: that host's TLS handshake, and no other,
//!   asked for the card ([`crate::tls`]). What it received is kept for a minute under a one-time
//!   code, and the browser goes back to the portal with the code only. The pending login stays
//!   keyed by the portal's binding cookie, which this host never sees: a page that sends a
//!   citizen here with someone else's `login` gives that someone nothing, since the code goes to
//!   the citizen's browser, and the citizen's binding does not take that login.
//! - On the portal, `GET /.sso/cns/callback?code=<code>`: the code's chain finishes this
//!   browser's login through the login door, which verifies it ([`idp_bridge::cns`]). Every
//!   outcome, "no card" included, is a page of the portal.

use idp_bridge::{Callback, CNS_CALLBACK_PATH, CNS_PATH};
use pingora::http::RequestHeader;
use policies::LoginFailure;

use super::{param, query};
use crate::reply::Reply;
use crate::runtime::Runtime;
use crate::state::Shared;
use crate::store::{CnsHandover, StateStore as _, StoreResult};
use crate::tls::CardPresented;

/// Whether `login` has the shape of a CNS login's ID (`_cns` and 32 hex digits): anything else
/// is not kept.
fn is_login_id(login: &str) -> bool {
    login
        .strip_prefix("_cns")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A request to `[cns] host`. `presented` is what this connection's handshake received, `None`
/// when the handshake was for another name.
pub(crate) async fn card_host(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
    presented: Option<&CardPresented>,
) -> Reply {
    card(rt, shared, req, presented)
        .await
        .unwrap_or_else(|e| Reply::unavailable(rt, &e))
}

async fn card(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
    presented: Option<&CardPresented>,
) -> StoreResult<Reply> {
    let path = req.uri.path();
    let get = matches!(req.method, http::Method::GET | http::Method::HEAD);
    if get && path.starts_with("/.sso/assets/") {
        return Ok(super::files::asset(rt, path));
    }
    if path != CNS_PATH {
        return Ok(Reply::error(rt, catalog::ErrorPage::NotFound));
    }
    if !get {
        return Ok(Reply::method_not_allowed(rt, "GET, HEAD"));
    }
    let Some(presented) = presented else {
        // A connection opened for another name and reused for this one never asked for the
        // card: 421 makes the browser ask again on a connection of its own (RFC 9110 §15.5.20).
        return Ok(
            Reply::page(421, rt.pages.error(catalog::ErrorPage::BadRequest).clone()).no_store(),
        );
    };
    let q = query(req);
    let Some(login) = param(&q, "login").filter(|l| is_login_id(l)) else {
        return Ok(Reply::error(rt, catalog::ErrorPage::BadRequest));
    };
    let code = idp_bridge::random_token(32, true);
    shared
        .store
        .put_cns(
            &code,
            CnsHandover {
                login: login.to_string(),
                chain: presented.chain.clone(),
            },
        )
        .await?;
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("code", &code);
    let to = format!(
        "{}{CNS_CALLBACK_PATH}?{}",
        rt.snapshot.config.server.public_url.origin(),
        q.finish()
    );
    Ok(Reply::redirect_to(&to))
}

/// `GET /.sso/cns/callback?code=<code>` on the portal.
pub(super) async fn callback(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
) -> StoreResult<Reply> {
    let q = query(req);
    let handover = match param(&q, "code") {
        Some(code) if code.len() <= 64 => shared.store.take_cns(code).await?,
        _ => None,
    };
    let Some(handover) = handover else {
        return Ok(Reply::login_failed(&rt.site, LoginFailure::Expired, 400));
    };
    super::finish::complete(
        rt,
        shared,
        req,
        Callback::cns(handover.login, handover.chain),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::is_login_id;

    #[test]
    fn only_a_cns_login_id_is_kept() {
        assert!(is_login_id("_cns0123456789abcdef0123456789abcdef"));
        for bad in [
            "",
            "_cns",
            "_cns0123456789abcdef0123456789abcde",
            "_cns0123456789abcdef0123456789abcdef0",
            "_0123456789abcdef0123456789abcdef",
            "_cns0123456789abcdef0123456789abcdeg",
            "_cns0123456789abcdef0123456789abcdé",
        ] {
            assert!(!is_login_id(bad), "{bad:?}");
        }
    }
}
