//! The one error type of the `gateway` crate.

/// What can stop the gateway from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration or a policy file is invalid.
    #[error("{0}")]
    Policy(#[from] policies::Error),
    /// An upstream host name could not be resolved.
    #[error("service {service}: cannot resolve upstream {authority}: {reason}")]
    Resolve {
        /// `ipa/id`.
        service: String,
        /// `host:port`.
        authority: String,
        /// Resolver message.
        reason: String,
    },
    /// The SP keys or an IdP metadata file are unusable (one message per problem).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Identity(Vec<idp_bridge::Error>),
    /// The SAML audit trail cannot be opened (or its chain is broken).
    #[error("audit trail: {0}")]
    Audit(idp_bridge::AuditError),
    /// The session store cannot be opened.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// `varco demo` could not prepare its state or start its helpers.
    #[error("demo: {0}")]
    Demo(String),
    /// Metrics or tracing could not be set up.
    #[error("telemetry: {0}")]
    Telemetry(String),
    /// `varco run --upgrade` has nothing to take over, or cannot reach it.
    #[error("upgrade: {0}")]
    Upgrade(String),
    /// A TLS certificate or key of `[server.tls]` is unusable.
    #[error("{path}: {reason}")]
    Tls {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// `varco metadata --export` could not write its folder.
    #[error("cannot export to {dir}: {reason}")]
    Export {
        /// The folder.
        dir: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A listener address is not usable.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
