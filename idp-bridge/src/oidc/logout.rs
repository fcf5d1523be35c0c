//! Logout with an OpenID provider: the URL that sends the citizen to end their session there
//! (RP-Initiated Logout 1.0), and the provider's own word that a session ended (Back-Channel
//! Logout 1.0: a signed logout token, verified here).

use serde_json::Value;

use super::error::OidcError;
use super::flow::{audience_is, verified_jwt};
use super::jose::unverified_part;
use super::provider::{OidcProvider, OidcRegistry};

/// The event a logout token must carry.
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How old a logout token may be (its `iat`).
const MAX_AGE_SECS: i64 = 600;
pub use super::metadata::{BACKCHANNEL_PATH, LOGGED_OUT_PATH};

/// A verified logout token: whose sessions at which provider end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutOrder {
    /// The provider's issuer, as configured.
    pub issuer: String,
    /// The subject whose sessions end.
    pub sub: Option<String>,
    /// The provider's session ID, when it sent one.
    pub sid: Option<String>,
    /// The token's ID, for the replay check.
    pub jti: String,
}

/// Where to send the citizen to end their session at `provider`, then come back to
/// `<public origin>/.sso/oidc/logged-out`; `None` when it offers no `end_session_endpoint` (or
/// cannot be reached now).
pub async fn end_session_url(
    registry: &OidcRegistry,
    provider: &OidcProvider,
    config: &policies::Config,
) -> Option<String> {
    let md = provider.metadata(&registry.http).await.ok()?;
    let endpoint = md.end_session_endpoint.as_deref()?;
    let back = format!("{}{LOGGED_OUT_PATH}", config.server.public_url.origin());
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &provider.config.client_id)
        .append_pair("post_logout_redirect_uri", &back)
        .append_pair("ui_locales", "it")
        .finish();
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    Some(format!("{endpoint}{sep}{q}"))
}

/// Verifies a back-channel `logout_token` (Back-Channel Logout 1.0, §2.6): signed by a
/// configured provider with its keys, for this client, recent, with the logout event, a `jti`,
/// a `sub` or `sid`, and no `nonce`.
pub async fn verify_logout_token(
    registry: &OidcRegistry,
    token: &str,
) -> Result<LogoutOrder, OidcError> {
    let bad = |m: &str| OidcError::IdToken(format!("logout token: {m}"));
    // The issuer picks the keys; it is believed only once they verify the signature.
    let claimed = unverified_part(token, 1)
        .and_then(|v| v.get("iss").and_then(Value::as_str).map(str::to_string))
        .ok_or(OidcError::Malformed("not a logout token"))?;
    let provider = registry
        .get(&claimed)
        .ok_or_else(|| bad("from no configured provider"))?;
    let md = provider.metadata(&registry.http).await?;
    let (claims, _) = verified_jwt(provider, &registry.http, &md, token).await?;
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str);
    if str_claim("iss") != Some(provider.config.issuer.as_str()) {
        return Err(bad("another issuer"));
    }
    if !audience_is(&claims, &provider.config.client_id) {
        return Err(bad("for another client"));
    }
    let now = super::unix_now();
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("no iat"))?;
    if iat > now + 120 || iat < now - MAX_AGE_SECS {
        return Err(bad("not recent"));
    }
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
        if exp + 120 < now {
            return Err(bad("expired"));
        }
    }
    if !matches!(
        claims.get("events").and_then(|e| e.get(BACKCHANNEL_EVENT)),
        Some(Value::Object(_))
    ) {
        return Err(bad("no back-channel logout event"));
    }
    if claims.contains_key("nonce") {
        return Err(bad("a nonce (an ID token, not a logout token)"));
    }
    let jti = str_claim("jti")
        .filter(|j| !j.is_empty())
        .ok_or_else(|| bad("no jti"))?;
    let sub = str_claim("sub").map(str::to_string);
    let sid = str_claim("sid").map(str::to_string);
    if sub.is_none() && sid.is_none() {
        return Err(bad("neither sub nor sid"));
    }
    Ok(LogoutOrder {
        issuer: provider.config.issuer.clone(),
        sub,
        sid,
        jti: jti.chars().take(256).collect(),
    })
}
