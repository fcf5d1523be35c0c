//! The varco gateway: the only crate that touches pingora. It serves the public listener (proxy,
//! portal, `/.sso/*`), the admin listener (metrics, health), hot-reloads policy, and provides the
//! `varco` command line. Its rooms:
//!
//! - [`request`]: one request's way through varco (strip what varco owns, route, decide, answer
//!   or proxy with identity headers and a signed JWT), and the portal's catalog pages;
//! - [`sso`]: varco's endpoints under `/.sso/`, one file each (login, ACS, logout, SLO, handoff);
//! - [`store`]: sessions and the other state shared by instances (in process, or Redis);
//! - [`ops`]: admin listener, telemetry, logs, hot reload, the audit trail's writer;
//! - [`cli`]: `varco explain`; [`server`]: starting, upgrading and stopping the process;
//! - `demo` (the `demo` feature): `varco demo`'s DEMO identity provider and test back-ends.
//!
//! Shared by the rooms: the current [`runtime`] (compiled policy and keys) in the [`state`],
//! varco's [`cookies`], and the [`reply`] type of the answers varco writes itself.

pub mod cli;
pub mod cookies;
#[cfg(feature = "demo")]
pub mod demo;
pub mod echo;
pub mod error;
pub mod fast;
pub mod ops;
pub(crate) mod reply;
pub mod request;
pub mod runtime;
pub mod server;
pub mod sso;
pub mod state;
pub mod store;
pub mod tls;

pub use error::{Error, Result};
