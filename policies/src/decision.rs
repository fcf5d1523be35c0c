//! The decision for one request to one service, and the proof that it was allowed.

use crate::identity::{Access, Level};
use crate::policy::Service;

/// Proof that the policy allowed a request. Only [`decide`] builds one; the gateway needs it to
/// pick an upstream, so a code path that forgot to decide cannot proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit(());

/// What to do with a request for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Proxy it.
    Allow(Permit),
    /// Send the citizen to log in (or step up) at this level first.
    Login {
        /// The level the service needs.
        level: Level,
    },
}

/// Decides for `service` given the level of the caller's session, if any. Fails closed: anything
/// but a public service or a sufficient level asks for login.
pub fn decide(service: &Service, session_level: Option<Level>) -> Decision {
    match service.access {
        Access::Public => Decision::Allow(Permit(())),
        Access::Login(needed) => match session_level {
            Some(have) if have >= needed => Decision::Allow(Permit(())),
            _ => Decision::Login { level: needed },
        },
    }
}
