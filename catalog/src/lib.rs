//! The citizen-facing pages of varco, built from the compiled policies: the portal's list of
//! services and the error pages every request can end on (not found, login required, back-end
//! unavailable). Everything is rendered once per policy snapshot, in Italian, with a small
//! self-contained stylesheet (no CDN: pages must work offline and inside a comune's intranet).
//!
//! The full catalog (filters, JSON, JSON-LD, search) grows here; this crate never sees SAML.

mod error;
mod html;
mod pages;

pub use error::{Error, Result};
pub use html::escape;
pub use pages::{
    error_page, home_page, logged_out_page, login_choice_page, login_failed_page,
    post_binding_page, ErrorPage, IdpChoice, LoginFailure, POST_BINDING_SCRIPT,
};
