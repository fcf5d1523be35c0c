//! Operations: what ops see and drive. The admin listener ([`admin`]: metrics, health), the
//! instruments ([`telemetry`]), the log output ([`logsink`]), policy hot reload ([`reload`]),
//! the SAML audit trail's writer ([`audit`]) and the cache of IdP logos ([`logos`]).

pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod logos;
pub mod logsink;
pub mod reload;
pub(crate) mod telemetry;
