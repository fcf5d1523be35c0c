//! varco's own endpoints under `/.sso/`, one file per endpoint: the start of a login
//! ([`login`]), the IdP's answer ([`acs`] for SAML, [`oidc`] for OpenID Connect, both ending in
//! [`finish`]; the CNS card comes through [`cns`]), logout ([`logout`], [`slo`]), the session handed to
//! a service host ([`handoff`]), the current identity ([`session_info`]) and the files varco
//! publishes ([`files`]: metadata, keys, the kit's assets, IdP logos). Where a login may send a
//! browser back to, and the URL that sends it to log in, are in [`return_to`].
//!
//! Pure request → [`Reply`] functions; the request path reads bodies and writes replies.

mod acs;
pub(crate) mod cns;
mod files;
mod finish;
mod handoff;
mod login;
mod logout;
mod oidc;
pub(crate) mod return_to;
mod session_info;
mod slo;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, LOCATION};
use http::Method;
use pingora::http::RequestHeader;

pub(crate) use self::files::asset;
#[cfg(feature = "demo")]
pub(crate) use self::login::script_hash;
pub use self::login::MAX_LOGINS_PER_BROWSER;
pub use self::return_to::{return_target, ReturnTarget};
use crate::reply::{Reply, HTML};
use crate::runtime::Runtime;
use crate::state::Shared;
use crate::store::StoreResult;

/// Largest ACS form body read (a base64 response form-encoded grows by a few percent).
pub(crate) const MAX_ACS_BODY: usize = idp_bridge::MAX_RESPONSE + 16 * 1024;

/// Answers a request under `/.sso/` (the POSTs that carry a form are [`with_body`]).
pub(crate) async fn handle(rt: &Runtime, shared: &Shared, req: &RequestHeader) -> Reply {
    route(rt, shared, req)
        .await
        .unwrap_or_else(|e| Reply::unavailable(rt, &e))
}

async fn route(rt: &Runtime, shared: &Shared, req: &RequestHeader) -> StoreResult<Reply> {
    let get = matches!(req.method, Method::GET | Method::HEAD);
    Ok(match req.uri.path() {
        "/.sso/logout" if !get => Reply::method_not_allowed(rt, "GET, HEAD, POST"),
        "/.sso/metadata"
        | "/.sso/metadata/cie"
        | "/.sso/login"
        | "/.sso/session"
        | "/.sso/slo"
        | "/.sso/oidc/callback"
        | "/.sso/oidc/jwks.json"
        | "/.sso/cns/callback"
            if !get =>
        {
            Reply::method_not_allowed(rt, "GET, HEAD")
        }
        "/.sso/metadata" => files::metadata(&rt.identity.metadata_spid),
        "/.sso/metadata/cie" => files::metadata(&rt.identity.metadata_cie),
        "/.sso/jwks.json" => files::jwks(rt),
        "/.sso/login" => login::login(rt, shared, req).await?,
        "/.sso/session" => session_info::session_info(rt, shared, req).await?,
        "/.sso/acs" => Reply::method_not_allowed(rt, "POST"),
        "/.sso/oidc/callback" => oidc::callback(rt, shared, req).await?,
        "/.sso/cns/callback" => cns::callback(rt, shared, req).await?,
        "/.sso/oidc/jwks.json" => files::oidc_jwks(rt),
        "/.sso/oidc/logged-out" => oidc::logged_out(rt, req),
        "/.sso/oidc/backchannel" => Reply::method_not_allowed(rt, "POST"),
        "/.sso/logout" => logout::logout_endpoint(rt, shared, req, false).await?,
        "/.sso/handoff" => handoff::handoff(rt, shared, req).await?,
        "/.sso/slo" => slo::slo(rt, shared, req, None, &policies::Audience::Sp).await?,
        p if p.starts_with("/.sso/assets/") && get => files::asset(rt, p),
        p if p.starts_with("/.sso/logos/") && get => files::logo(rt, shared, p),
        p => match aggregated_endpoint(rt, p) {
            Some((Endpoint::Metadata(_), _)) | Some((Endpoint::Slo, _)) if !get => {
                Reply::method_not_allowed(rt, "GET, HEAD")
            }
            Some((Endpoint::Metadata(profile), (index, _))) => {
                match rt.comune_metadata(index, profile) {
                    Ok(body) => files::metadata(&body),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot sign a comune's metadata");
                        Reply::error(rt, catalog::ErrorPage::Internal)
                    }
                }
            }
            Some((Endpoint::Acs, _)) => Reply::method_not_allowed(rt, "POST"),
            Some((Endpoint::Slo, (_, audience))) => {
                slo::slo(rt, shared, req, None, &audience).await?
            }
            None => Reply::error(rt, catalog::ErrorPage::NotFound),
        },
    })
}

/// An endpoint of an aggregated comune's SP entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `/.sso/metadata/<ipa>`, `/.sso/metadata/cie/<ipa>`.
    Metadata(idp_bridge::Profile),
    /// `/.sso/acs/<ipa>`.
    Acs,
    /// `/.sso/slo/<ipa>`.
    Slo,
}

/// The aggregated comune's endpoint at `path` (aggregator mode only), with the comune's index
/// and audience.
fn aggregated_endpoint(
    rt: &Runtime,
    path: &str,
) -> Option<(Endpoint, (usize, policies::Audience))> {
    let (endpoint, ipa) = if let Some(ipa) = path.strip_prefix("/.sso/metadata/cie/") {
        (Endpoint::Metadata(idp_bridge::Profile::Cie), ipa)
    } else if let Some(ipa) = path.strip_prefix("/.sso/metadata/") {
        (Endpoint::Metadata(idp_bridge::Profile::Spid), ipa)
    } else if let Some(ipa) = path.strip_prefix("/.sso/acs/") {
        (Endpoint::Acs, ipa)
    } else if let Some(ipa) = path.strip_prefix("/.sso/slo/") {
        (Endpoint::Slo, ipa)
    } else {
        return None;
    };
    Some((endpoint, rt.aggregated(ipa)?))
}

/// The SP entity whose ACS or SLO endpoint `path` is: `/.sso/acs` and `/.sso/slo` the SP's,
/// `/.sso/acs/<ipa>` and `/.sso/slo/<ipa>` an aggregated comune's.
fn posted_to(rt: &Runtime, path: &str) -> Option<(Endpoint, policies::Audience)> {
    match path {
        "/.sso/acs" => Some((Endpoint::Acs, policies::Audience::Sp)),
        "/.sso/slo" => Some((Endpoint::Slo, policies::Audience::Sp)),
        p => match aggregated_endpoint(rt, p)? {
            (e @ (Endpoint::Acs | Endpoint::Slo), (_, audience)) => Some((e, audience)),
            _ => None,
        },
    }
}

/// Whether this request is a POST whose form body the proxy must read first (ACS, SLO, the
/// confirmed logout, a provider's back-channel logout).
pub(crate) fn needs_body(req: &RequestHeader) -> bool {
    let path = req.uri.path();
    req.method == Method::POST
        && (matches!(
            path,
            "/.sso/acs" | "/.sso/slo" | "/.sso/logout" | "/.sso/oidc/backchannel"
        ) || path.starts_with("/.sso/acs/")
            || path.starts_with("/.sso/slo/"))
}

/// Answers a POST that [`needs_body`], with its body.
pub(crate) async fn with_body(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
    body: &[u8],
) -> Reply {
    let reply = match req.uri.path() {
        "/.sso/logout" => logout::logout_endpoint(rt, shared, req, true).await,
        // A provider's server calls it, not a browser: its answer is final, no page goes on.
        "/.sso/oidc/backchannel" => {
            return oidc::backchannel(rt, shared, body)
                .await
                .unwrap_or_else(|e| Reply::unavailable(rt, &e))
        }
        path => match posted_to(rt, path) {
            Some((Endpoint::Slo, audience)) => {
                slo::slo(rt, shared, req, Some(body), &audience).await
            }
            Some((_, audience)) => acs::acs(rt, shared, req, body, audience).await,
            // An ACS or SLO of a comune that is not (or no longer) aggregated.
            None => Ok(Reply::error(rt, catalog::ErrorPage::NotFound)),
        },
    };
    reply.map_or_else(|e| Reply::unavailable(rt, &e), |r| onward(rt, r))
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

/// The first `limit` fields of a query string or form body.
fn fields(raw: &[u8], limit: usize) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .take(limit)
        .collect()
}

/// The request's query fields (at most 16).
fn query(req: &RequestHeader) -> Vec<(String, String)> {
    fields(req.uri.query().unwrap_or("").as_bytes(), 16)
}

/// The first field called `name`.
fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests;
