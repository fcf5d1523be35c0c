//! The identity JWT of an allowed request: signed once per session, service and policy
//! generation, and reused for half its lifetime.

use idp_bridge::SessionKey;

use super::LIFETIME_SECS;
use crate::request::ctx::Allowed;

/// Signed tokens reused for half their lifetime: (policy generation, service, session key) →
/// token.
pub(crate) type AssertionCache = moka::sync::Cache<(u64, usize, SessionKey), http::HeaderValue>;

/// A cache of tokens that live half as long as a token does.
pub(crate) fn assertion_cache() -> AssertionCache {
    moka::sync::Cache::builder()
        .max_capacity(1_000_000)
        .time_to_live(std::time::Duration::from_secs(LIFETIME_SECS / 2))
        .build()
}

/// The `X-Varco-Assertion` of an allowed request: the cached token of this session for this
/// service under this policy, or a new one. `None` when it cannot be signed.
pub(crate) fn assertion(
    cache: &AssertionCache,
    allowed: &Allowed,
    key: &SessionKey,
    principal: &idp_bridge::Principal,
) -> Option<http::HeaderValue> {
    let rt = allowed.runtime();
    let cache_key = (rt.generation, allowed.index(), *key);
    if let Some(token) = cache.get(&cache_key) {
        return Some(token);
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
    let value = http::HeaderValue::from_str(&jwt).ok()?;
    cache.insert(cache_key, value.clone());
    Some(value)
}
