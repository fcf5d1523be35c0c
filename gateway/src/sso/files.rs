//! What varco publishes under `/.sso/`: the SP metadata, the identity JWT keys, the kit's files
//! and the IdPs' logos.

use bytes::Bytes;
use catalog::ErrorPage;

use crate::reply::Reply;
use crate::runtime::Runtime;
use crate::state::Shared;

/// The signed SP metadata of one federation.
pub(super) fn metadata(body: &Bytes) -> Reply {
    Reply::new(200, "application/samlmetadata+xml", body.clone())
}

/// `/.sso/jwks.json`: the keys that verify `X-Varco-Assertion`.
pub(super) fn jwks(rt: &Runtime) -> Reply {
    Reply::new(200, "application/json", rt.identity.jwt.jwks().clone())
        .public_for("public, max-age=60")
}

/// The public keys varco signs OpenID Connect client assertions and request objects with
/// (`/.sso/oidc/jwks.json`), for the providers' registration.
pub(super) fn oidc_jwks(rt: &Runtime) -> Reply {
    Reply::new(
        200,
        "application/jwk-set+json",
        bytes::Bytes::from(rt.identity.oidc.public_jwks().to_string()),
    )
    .public_for("public, max-age=60")
}

/// An IdP's logo from the local cache (`/.sso/logos/{id}`). An SVG opened on its own runs in a
/// sandbox with no script: it comes from an IdP's host, not from varco.
pub(super) fn logo(rt: &Runtime, shared: &Shared, path: &str) -> Reply {
    let id = path.strip_prefix("/.sso/logos/").unwrap_or("");
    let Some(l) = shared.logos.get(id) else {
        return Reply::error(rt, ErrorPage::NotFound);
    };
    let mut r = Reply::new(200, l.content_type, l.bytes).public_for("public, max-age=86400");
    r.csp = Some("default-src 'none'; style-src 'unsafe-inline'; sandbox".into());
    r
}

/// A file of varco's pages (`/.sso/assets/…`), on every host: the pages of a comune's host use
/// them as much as the portal's. Cacheable for a week; the pages name them with a version.
pub(crate) fn asset(rt: &Runtime, path: &str) -> Reply {
    let name = path.strip_prefix("/.sso/assets/").unwrap_or("");
    let Some(a) = catalog::assets::asset(name) else {
        return Reply::error(rt, ErrorPage::NotFound);
    };
    Reply::new(200, a.content_type, Bytes::from_static(a.bytes))
        .public_for("public, max-age=604800")
}
