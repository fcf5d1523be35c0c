//! The vocabulary of who may do what, for every crate of varco.
//!
//! `policies` is the leaf of the workspace: it owns the identity types ([`Level`], [`Attribute`]),
//! the configuration and per-comune policy files (parsed from TOML, validated with precise
//! `path:line:col` diagnostics, unknown keys rejected), the compiled [`RouteTable`] and the
//! [`Decision`] that the gateway enforces. It does no networking and knows nothing of pingora or
//! SAML; the only I/O it does is reading the files it is pointed at.
//!
//! The entry point is [`load`]: it reads the main configuration and every policy file, reports every
//! problem at once, and on success returns an immutable [`Snapshot`] that the gateway swaps in
//! atomically.

mod audience;
mod category;
mod codes;
mod config;
mod decision;
mod diag;
mod error;
mod identity;
mod load;
mod policy;
mod reader;
mod route;

pub use audience::Audience;
pub use category::Category;
pub use config::{
    is_loopback_host, Aggregator, AttributeSet, CertFiles, ClientAuth, CnsConfig, Config, Contact,
    FederationConfig, HostCert, IdpConfig, IdpKind, IdpSourceConfig, LogFormat, OidcConfig,
    Organization, PortalConfig, PublicUrl, ServerConfig, SessionConfig, SessionStore, SpConfig,
    SpMode, TelemetryConfig, TlsConfig, TrustAnchor, AGGREGATED_PATH, CNS_PROVIDER, DEFAULT_CLAIMS,
};
pub use decision::{decide, Decision, Held, LoginFailure, Permit};
pub use diag::{Diagnostic, Diagnostics};
pub use error::{Error, Result};
pub use identity::{Access, Attribute, AttributeMask, Level};
pub use load::{check_config, check_policy, load, Snapshot};
pub use policy::{
    canonical_header_name, Comune, IpaCode, IstatCode, Route, Service, ServiceId, Upstream,
    UpstreamTls,
};
pub use route::{normalize_host, RejectedTarget, RouteMatch, RouteTable, ServiceRef};
