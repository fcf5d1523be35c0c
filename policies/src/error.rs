//! The one error type of the `policies` crate.

use crate::diag::Diagnostics;
use crate::route::RejectedTarget;

/// What can go wrong while loading policy or resolving a request against it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration or a policy file is invalid; every problem found is listed.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// A request target that varco refuses to route (see [`crate::RouteTable`]).
    #[error("request target rejected: {0}")]
    RejectedTarget(RejectedTarget),
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
