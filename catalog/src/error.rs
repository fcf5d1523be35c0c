//! The one error type of the `catalog` crate.

/// What can go wrong while building catalog output.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A service referenced by the catalog is missing from the snapshot.
    #[error("service {0} is not in the policy snapshot")]
    UnknownService(String),
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
