//! What an allowed, logged-in request carries to its back-end (the identity headers and the
//! signed JWT): made once per session, service and policy generation, and reused for half the
//! JWT's lifetime, so that a request copies values instead of encoding and signing them.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use idp_bridge::SessionKey;

use super::LIFETIME_SECS;
use crate::request::ctx::Allowed;
use crate::request::identity::X_VARCO_ASSERTION;

/// A request's identity headers, in the order they are set, `X-Varco-Assertion` last.
pub(crate) type Identity = Arc<[(HeaderName, HeaderValue)]>;

/// Identities reused for half their JWT's lifetime: (policy generation, service, session key) →
/// headers.
pub(crate) type AssertionCache = moka::sync::Cache<(u64, usize, SessionKey), Identity>;

/// A cache of tokens that live half as long as a token does.
pub(crate) fn assertion_cache() -> AssertionCache {
    moka::sync::Cache::builder()
        .max_capacity(1_000_000)
        .time_to_live(std::time::Duration::from_secs(LIFETIME_SECS / 2))
        .build()
}

/// The identity headers of an allowed request: the cached ones of this session for this service
/// under this policy, or new ones with a newly signed JWT. `None` when it cannot be signed (then
/// the request does not go on: no identity without its JWT).
pub(crate) fn identity(
    cache: &AssertionCache,
    allowed: &Allowed,
    key: &SessionKey,
    principal: &idp_bridge::Principal,
) -> Option<Identity> {
    let rt = allowed.runtime();
    let cache_key = (rt.generation, allowed.index(), *key);
    if let Some(identity) = cache.get(&cache_key) {
        return Some(identity);
    }
    let service = allowed.service()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let issuer = rt.snapshot.config.server.public_url.origin();
    let jwt = rt.identity.jwt.sign(
        &issuer,
        &service.label,
        principal,
        service.identity.released(),
        now,
    )?;
    let mut headers = service.identity.values(principal);
    headers.push((X_VARCO_ASSERTION, HeaderValue::from_str(&jwt).ok()?));
    let identity: Identity = headers.into();
    cache.insert(cache_key, identity.clone());
    Some(identity)
}
