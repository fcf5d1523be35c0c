//! Why an OpenID Connect login was refused, and what the citizen is told for it.

use policies::LoginFailure;

/// Why a callback was refused, or a provider could not be used. `Display` is for the log; it
/// never carries a token, a code or a claim's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The callback is not even a well-formed one.
    #[error("malformed callback: {0}")]
    Malformed(&'static str),
    /// No pending login for this `state` (unsolicited, replayed or expired).
    #[error("no pending login for this state (unsolicited, replayed or expired)")]
    NoPendingLogin,
    /// The pending login was started by another browser.
    #[error("the login was started in another browser")]
    WrongBrowser,
    /// The callback names, or comes from, another provider than the one the login went to.
    #[error("mix-up: {0}")]
    MixUp(String),
    /// The provider answered the authorization request with an error.
    #[error("the provider refused: {error} ({description})")]
    Provider {
        /// The `error` code (`access_denied`...).
        error: String,
        /// `error_description`, as sent (bounded).
        description: String,
    },
    /// The token endpoint refused the code (a replayed or expired code, a bad client assertion).
    #[error("the token endpoint refused: {0}")]
    TokenRefused(String),
    /// The ID token, or the UserInfo answer, does not verify.
    #[error("ID token: {0}")]
    IdToken(String),
    /// The level authenticated is below the one asked for.
    #[error("acr {got} is below the level asked for ({asked})")]
    LevelTooLow {
        /// The `acr` received.
        got: String,
        /// The level asked.
        asked: policies::Level,
    },
    /// No trust chain to a configured trust anchor vouches for the provider (a forged or
    /// expired statement, an unknown anchor, a broken metadata policy).
    #[error("federation: {0}")]
    Federation(String),
    /// The provider cannot be reached, or answers nonsense (discovery, keys, token endpoint).
    #[error("provider unavailable: {0}")]
    Unavailable(String),
}

impl OidcError {
    /// The HTTP status for it (never 404, never a 2xx).
    pub fn status(&self) -> u16 {
        match self {
            OidcError::Malformed(_) => 400,
            // varco cannot use the provider now: not the citizen's doing.
            OidcError::Unavailable(_) | OidcError::Federation(_) => 502,
            _ => 403,
        }
    }

    /// What the citizen is told.
    pub fn failure(&self) -> LoginFailure {
        match self {
            OidcError::NoPendingLogin | OidcError::WrongBrowser => LoginFailure::Expired,
            OidcError::Provider { error, .. } => match error.as_str() {
                "access_denied" => LoginFailure::Denied,
                "login_required"
                | "consent_required"
                | "interaction_required"
                | "account_selection_required" => LoginFailure::InteractionRequired,
                _ => LoginFailure::ProviderFailed,
            },
            OidcError::Unavailable(_) | OidcError::Federation(_) => LoginFailure::ProviderFailed,
            _ => LoginFailure::Rejected,
        }
    }
}
