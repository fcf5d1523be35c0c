//! Why an answer at the ACS was refused, and what the citizen is told for it.

use policies::LoginFailure;

/// Why a response was refused. `Display` is the internal message for the log; the citizen sees
/// the page of [`AcsError::page`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcsError {
    /// Not a well-formed, bounded, base64 SAML Response.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    /// A DTD, entity or forbidden transform.
    #[error("dangerous XML construct: {0}")]
    Dangerous(&'static str),
    /// No pending login with that ID (unsolicited, replayed, expired or for another SP).
    #[error("no pending login for this response (unsolicited, replayed or expired)")]
    NoPendingLogin,
    /// The pending login was started by another browser.
    #[error("the login was started in another browser")]
    WrongBrowser,
    /// The IdP answered with an error status.
    #[error("IdP refused the authentication: {status} ({message})")]
    IdpRefused {
        /// The SPID code (19 for nr19...), when the message carries one.
        code: Option<u8>,
        /// Status code URI.
        status: String,
        /// StatusMessage.
        message: String,
    },
    /// A signature is missing, invalid, by another key or with a weak algorithm.
    #[error("signature: {0}")]
    Signature(String),
    /// A field is missing or wrong.
    #[error("{0}")]
    Invalid(String),
}

impl AcsError {
    /// The HTTP status for it (never 404, never a 2xx).
    pub fn status(&self) -> u16 {
        match self {
            AcsError::Malformed(_) | AcsError::Dangerous(_) => 400,
            _ => 403,
        }
    }

    /// What the citizen is told.
    pub fn failure(&self) -> LoginFailure {
        match self {
            AcsError::IdpRefused { code: Some(c), .. } => LoginFailure::Spid(*c),
            AcsError::NoPendingLogin | AcsError::WrongBrowser => LoginFailure::Expired,
            _ => LoginFailure::Rejected,
        }
    }
}
