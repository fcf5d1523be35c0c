//! `POST /.sso/acs` (and an aggregated comune's `/.sso/acs/<ipa>`): a SAML IdP's answer (HTTP-POST binding), finished like every login
//! ([`super::finish::complete`]).

use idp_bridge::Callback;
use pingora::http::RequestHeader;

use crate::reply::Reply;
use crate::runtime::Runtime;
use crate::state::Shared;
use crate::store::StoreResult;

pub(super) async fn acs(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
    body: &[u8],
    at: policies::Audience,
) -> StoreResult<Reply> {
    super::finish::complete(rt, shared, req, Callback::saml_post(body, at)).await
}
