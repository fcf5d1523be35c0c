//! The identity bridge: varco's SAML Service Provider for SPID and CIE (and, later, its OpenID
//! Connect relying party). It turns what an identity provider sends into a verified principal, or
//! a typed error, and never lets raw XML or JSON reach the rest of the gateway.
//!
//! Today: the SP's keys ([`SpKeys`]), the registry of trusted IdPs from their metadata
//! ([`IdpRegistry`]) and the signed SP metadata for the SPID and CIE federations
//! ([`signed_metadata`]). AuthnRequest, ACS validation and single logout come next; until then
//! the gateway answers services that need a login with a "login required" page.

mod acs;
mod audit;
mod authn;
mod error;
mod keys;
mod metadata;
mod pending;
mod registry;
mod secret;
mod slo;
pub mod untrusted;
mod xml;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use acs::{
    consume, receive, verify as verify_response, Accepted, AcsContext, AcsError, AcsRequest,
    Principal, ReceivedResponse, RefusalPage, VerifiedPrincipal, CLOCK_SKEW, MAX_RESPONSE,
};
pub use audit::{
    verify as verify_audit, AuditError, AuditKey, AuditKind, AuditLog, AuditOptions, AuditRecord,
    Verified as VerifiedAudit, BOUNDED_PREFIX, CHECKPOINT_EVERY,
};
pub use authn::{
    authn_request_xml, new_request_id, post_request, redirect_request, LoginRequest, OutgoingPost,
    OutgoingRequest,
};
pub use error::{Error, Result};
pub use keys::SpKeys;
pub use metadata::{signed_metadata, unsigned_metadata, Profile, SpEndpoints};
pub use pending::{login_key, LoginStore, MemoryLoginStore, PendingLogin, LOGIN_TTL};
pub use registry::{Idp, IdpRegistry};
pub use secret::{random_token, BrowserBinding, RelayState};
pub use slo::{
    logout_request, logout_response, verify_post, verify_redirect, LogoutMessage, SloError,
    MAX_LOGOUT_REQUEST_AGE,
};
