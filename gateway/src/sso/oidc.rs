//! `GET /.sso/oidc/callback`: the redirect URI of every OpenID provider, finished like every
//! login ([`super::finish::complete`]).

use idp_bridge::Callback;
use pingora::http::RequestHeader;

use crate::reply::Reply;
use crate::runtime::Runtime;
use crate::state::Shared;
use crate::store::StoreResult;

pub(super) async fn callback(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
) -> StoreResult<Reply> {
    let callback = Callback::oidc_redirect(req.uri.query().unwrap_or(""));
    let mut reply = super::finish::complete(rt, shared, req, callback).await?;
    // The callback URL carries the code: no cache keeps the answer, no referrer carries it on.
    reply = reply.no_store();
    reply.headers.push((
        http::header::REFERRER_POLICY,
        http::HeaderValue::from_static("no-referrer"),
    ));
    Ok(reply)
}
