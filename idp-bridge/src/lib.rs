//! The identity bridge: varco's SAML Service Provider for SPID and CIE, and its OpenID Connect
//! relying party. It turns what an identity provider sends into a verified principal, or a typed
//! error, and never lets raw XML or JSON reach the rest of the gateway.
//!
//! The SAML SP (metadata, AuthnRequest, ACS validation, single logout) lands with the SP issue;
//! until then the gateway answers services that need a login with a "login required" page, and
//! this crate only carries the error type that its API will return.

mod error;

pub use error::{Error, Result};
