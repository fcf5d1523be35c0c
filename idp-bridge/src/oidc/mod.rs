//! OpenID Connect behind the login door ([`crate::login`]): varco as a relying party of standard
//! OpenID providers (the Region's platform, Keycloak) and of the SPID/CIE OpenID Connect
//! Federation, with the
//! authorization code flow, PKCE S256, `private_key_jwt` or `client_secret_basic`, signed request
//! objects when the provider takes them, and a verified ID token.
//!
//! - [`provider`]: the configured providers, and what discovery and their keys said (cached,
//!   refreshed, kept across reloads);
//! - [`federation`]: varco in the SPID/CIE OpenID Connect Federation: its entity configuration,
//!   and the trust chains that vouch for a provider's metadata;
//! - [`flow`]: the authorization request out and the callback in;
//! - [`logout`]: RP-initiated logout, and the provider's back-channel logout tokens;
//! - [`jose`]: varco's signing key and the verification of what providers sign;
//! - [`http`]: the one bounded client that reaches them;
//! - [`error`]: why a callback was refused, and the page for it.

pub mod error;
pub mod federation;
pub mod flow;
pub(crate) mod http;
pub(crate) mod jose;
pub mod logout;
pub(crate) mod metadata;
pub(crate) mod pending;
pub mod provider;

pub use self::error::OidcError;

/// Seconds since the Unix epoch: what JWTs count time in.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A cache that is only ever replaced whole: a panic elsewhere cannot leave it half-written, so
/// a poisoned lock is still good to read.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
pub use self::flow::{redirect_uri, CALLBACK_PATH};
pub use self::logout::{end_session_url, verify_logout_token, LogoutOrder};
pub use self::provider::{OidcProvider, OidcRegistry};
