//! The one error type of the `idp-bridge` crate.

use std::path::PathBuf;

/// What can go wrong while setting up or talking to identity providers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SP key or certificate is unusable.
    #[error("{path}: {reason}")]
    SpKey {
        /// The file.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// An IdP metadata file is unusable.
    #[error("{path}: {reason}")]
    IdpMetadata {
        /// The file.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// A registry of IdPs (`[[idp_source]]`) could not be fetched or is refused.
    #[error("IdP registry {url}: {reason}")]
    IdpSource {
        /// Its URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The audit trail's key file is unusable.
    #[error("{path}: {reason}")]
    AuditKey {
        /// The file.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// The IdP offers no endpoint for the binding varco uses.
    #[error("IdP {idp} has no SingleSignOnService for the {binding} binding")]
    Binding {
        /// entityID.
        idp: String,
        /// Binding name.
        binding: &'static str,
    },
    /// `[cns]`'s CAs or revocation lists are unusable.
    #[error("{path}: {reason}")]
    Cns {
        /// The file.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// The OpenID Connect side cannot be set up.
    #[error("OpenID Connect: {0}")]
    Oidc(String),
    /// Signing with xmlsec failed.
    #[error("cannot sign {what}: {reason}")]
    Sign {
        /// What was being signed.
        what: &'static str,
        /// xmlsec's message.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
