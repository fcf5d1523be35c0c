//! Operations: what ops see and drive. The admin listener ([`admin`]: metrics, health), the
//! instruments ([`telemetry`]), the log output ([`logsink`]), policy hot reload ([`reload`]),
//! the SAML audit trail's writer ([`audit`]), the cache of IdP logos ([`logos`]) and the IdPs
//! of the federations' registries ([`idp_sources`]).

pub(crate) mod admin;
pub(crate) mod audit;
pub mod expiry;
pub(crate) mod idp_sources;
pub(crate) mod logos;
pub mod logsink;
pub mod reload;
pub(crate) mod telemetry;
