//! The one error type of the `idp-bridge` crate.

/// What can go wrong while talking to an identity provider.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The IdP metadata file is unusable.
    #[error("IdP metadata {path}: {reason}")]
    Metadata {
        /// The file.
        path: String,
        /// Why it is refused.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
