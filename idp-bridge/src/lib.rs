//! The identity bridge: varco's SAML Service Provider for SPID and CIE, and its OpenID Connect
//! relying party. It turns what an identity provider sends into a verified principal, or
//! a typed error, and never lets raw XML or JSON reach the rest of the gateway.
//!
//! - [`login`]: the door every login goes through, whatever the protocol: [`login::start`]
//!   gives the message for the browser and the [`PendingLogin`] to keep; [`login::finish`]
//!   takes the IdP's answer with that pending login and gives a [`VerifiedLogin`]. Both write
//!   the audit trail ([`AuditLog`]) before they return.
//! - [`saml`]: the SAML implementation behind it (AuthnRequest, ACS, single logout, metadata).
//! - [`oidc`]: the OpenID Connect implementation behind it (authorization code flow, ID token).
//! - [`cns`]: the CNS card's TLS client certificate behind it.
//! - [`Principal`]: who logged in; only a protocol's verification makes one.
//! - [`IdpRegistry`]: the trusted IdPs, from their metadata; [`SpKeys`]: the SP's keys.
//! - [`untrusted`]: the one way to parse XML from outside.

mod audit;
pub mod cns;
mod error;
mod keys;
pub mod login;
pub mod oidc;
mod principal;
mod registry;
pub mod saml;
mod secret;
pub mod untrusted;
mod xml;

#[cfg(any(test, feature = "insecure-test-idp"))]
pub mod insecure_test_idp;

pub use audit::{
    verify as verify_audit, AuditError, AuditKey, AuditKind, AuditLog, AuditOptions, AuditRecord,
    Verified as VerifiedAudit, BOUNDED_PREFIX, CHECKPOINT_EVERY,
};
pub use cns::flow::{cns_url, CNS_CALLBACK_PATH, CNS_PATH};
pub use cns::{CnsDate, CnsError, CnsTrust};
pub use error::{Error, Result};
pub use keys::SpKeys;
pub use login::{
    AuditSink, Callback, FinishError, LoginStart, Outgoing, PendingLogin, Provider, Sp, StartError,
    Started, VerifiedLogin, LOGIN_TTL,
};
pub use oidc::{OidcError, OidcProvider, OidcRegistry};
pub use principal::{FiscalNumber, Principal, Protocol, VerifiedPrincipal};
pub use registry::set::{IdpSet, SetRules, MAX_SET};
pub use registry::{Idp, IdpRegistry};
pub use saml::acs::{AcsError, CLOCK_SKEW, MAX_RESPONSE};
pub use saml::metadata::{signed_metadata, unsigned_metadata, MetadataOf, Profile, SpEndpoints};
pub use saml::slo::{
    logout_request, logout_response, verify_post, verify_redirect, LogoutMessage, SloError,
    MAX_LOGOUT_REQUEST_AGE,
};
pub use secret::{
    random_token, to_hex, BindingDigest, BrowserBinding, RelayDigest, RelayState, SessionKey,
};
