//! What varco reads of a provider's metadata (its discovery document, or the `openid_provider`
//! metadata a trust chain vouches for), and the paths of varco's own endpoints that providers
//! are told.

use serde::Deserialize;

/// The path of the redirect URI, the same for every provider.
pub const CALLBACK_PATH: &str = "/.sso/oidc/callback";
/// The path the provider sends the citizen back to after its logout.
pub const LOGGED_OUT_PATH: &str = "/.sso/oidc/logged-out";
/// The path of the back-channel logout endpoint.
pub const BACKCHANNEL_PATH: &str = "/.sso/oidc/backchannel";

/// What a provider's discovery document says, as far as varco uses it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ProviderMetadata {
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: String,
    pub(crate) token_endpoint: String,
    #[serde(default)]
    pub(crate) userinfo_endpoint: Option<String>,
    /// Where its keys are; empty when they are in `jwks` (the federation's metadata).
    #[serde(default)]
    pub(crate) jwks_uri: String,
    /// Its keys, inline (the SPID/CIE federation's `openid_provider` metadata carries them).
    #[serde(default)]
    pub(crate) jwks: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) end_session_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) request_parameter_supported: bool,
    #[serde(default)]
    pub(crate) require_signed_request_object: bool,
    #[serde(default)]
    pub(crate) claims_parameter_supported: bool,
    #[serde(default)]
    pub(crate) authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    pub(crate) code_challenge_methods_supported: Option<Vec<String>>,
}
