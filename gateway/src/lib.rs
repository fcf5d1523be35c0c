//! The varco gateway: the only crate that touches pingora. It serves the public listener (proxy,
//! portal, `/.sso/*`), the admin listener (metrics, health), hot-reloads policy, and provides the
//! `varco` command line.
//!
//! A request's way: [`proxy`] strips every inbound header varco owns ([`headers`]), resolves the
//! route in the current [`runtime`], asks [`policies::decide`], then either answers itself (page,
//! 401, 404) or proxies with a permit, adding forwarding headers after pingora's hop-by-hop step.

pub mod admin;
pub mod audit;
pub mod demo;
pub mod echo;
pub mod error;
pub mod explain;
pub mod headers;
pub mod identity;
pub mod jwt;
pub mod limits;
pub mod logos;
pub mod logsink;
pub mod portal;
pub mod proxy;
pub mod reload;
pub mod runtime;
pub mod server;
pub mod session;
pub mod sso;
pub mod state;
pub mod store;
pub mod telemetry;

pub use error::{Error, Result};
