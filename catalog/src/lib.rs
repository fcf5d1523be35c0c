//! The citizen-facing side of varco, built from the compiled policies: the unified service
//! catalog (model, search, JSON, JSON-LD, the accessible citizen pages), the SPID/CIE choice page
//! and the error pages every request can end on. Everything is rendered in Italian, from askama
//! templates with Bootstrap Italia (Designers Italia's UI kit), whose files varco serves itself
//! (no CDN: pages must work offline and inside a comune's intranet, and no third-party host
//! learns who visits which comune). This crate never sees SAML or pingora.

pub mod assets;
mod browse;
mod error;
mod fold;
mod html;
mod model;
mod pages;
mod query;

pub use browse::{home, results, PAGE_SIZE};

/// The icon browsers ask every host for (`/favicon.ico`): varco's mark, a white passage on the
/// PA's blue, as one 32-px PNG inside an ICO container.
pub const FAVICON: &[u8] = include_bytes!("../assets/favicon.ico");
pub use error::{Error, Result};
pub use fold::fold;
pub use html::{escape, Html, Site};
pub use model::{access_label, Catalog, CatalogComune, CatalogService, Rendered, Serves, Viewer};
pub use pages::{
    continue_page, error_page, logged_out_page, login_choice_page, login_failed_page,
    logout_confirm_page, post_binding_page, ErrorPage, IdpChoice, LoginFailure,
    POST_BINDING_SCRIPT,
};
pub use query::{Query, QueryError, MAX_PAGE, MAX_PER_PAGE, MAX_QUERY, MAX_TERMS, MAX_TEXT};
