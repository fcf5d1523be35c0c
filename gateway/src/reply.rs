//! The answers varco writes itself ([`Reply`]: pages, redirects, JSON, files), and the one place
//! that decides which page a failure gets.

use bytes::Bytes;
use catalog::{ErrorPage, LoginFailure, Site};
use http::header::{HeaderName, HeaderValue, CACHE_CONTROL, LOCATION};

use crate::runtime::Runtime;
use crate::store::StoreError;

/// `text/html; charset=utf-8`.
pub(crate) const HTML: &str = "text/html; charset=utf-8";

/// The Content-Security-Policy of varco's pages: its own stylesheets, fonts and images (the kit's
/// rules use `data:` images), no script, no framing.
pub(crate) const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; font-src 'self' data:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// A response varco produces itself.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: Bytes,
    /// Further headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// A Content-Security-Policy other than [`PAGE_CSP`] for pages.
    pub csp: Option<String>,
}

impl Reply {
    /// A body of `content_type`.
    pub(crate) fn new(status: u16, content_type: &'static str, body: Bytes) -> Self {
        Self {
            status,
            content_type,
            body,
            headers: Vec::new(),
            csp: None,
        }
    }

    /// An HTML page.
    pub(crate) fn page(status: u16, body: impl Into<Bytes>) -> Self {
        Self::new(status, HTML, body.into())
    }

    /// JSON, not cached.
    pub(crate) fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status, "application/json", Bytes::from(value.to_string())).no_store()
    }

    /// Adds a header.
    pub(crate) fn with(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Marks the answer as not to be cached (once).
    pub(crate) fn no_store(mut self) -> Self {
        if !self.headers.iter().any(|(n, _)| n == CACHE_CONTROL) {
            self.headers
                .push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
        }
        self
    }

    /// Cacheable for `max_age` seconds, by anyone.
    pub(crate) fn public_for(self, max_age: &'static str) -> Self {
        self.with(CACHE_CONTROL, HeaderValue::from_static(max_age))
    }

    /// The error page `page`, without a `Cache-Control` of its own.
    pub(crate) fn error(rt: &Runtime, page: ErrorPage) -> Self {
        Self::page(page.status(), rt.pages.error(page).clone())
    }

    /// The error page `page`, not cached.
    pub(crate) fn error_page(rt: &Runtime, page: ErrorPage) -> Self {
        Self::error(rt, page).no_store()
    }

    /// 405 with the methods allowed.
    pub(crate) fn method_not_allowed(rt: &Runtime, allow: &'static str) -> Self {
        Self::page(405, rt.pages.error(ErrorPage::BadRequest).clone())
            .with(http::header::ALLOW, HeaderValue::from_static(allow))
    }

    /// A 302 to `to`, not cached.
    pub(crate) fn redirect_to(to: &str) -> Self {
        let mut r = Self::page(302, Bytes::new()).no_store();
        if let Ok(v) = HeaderValue::from_str(to) {
            r.headers.push((LOCATION, v));
        }
        r
    }

    /// The page for a login that did not complete, not cached: why, as the citizen is told.
    pub(crate) fn login_failed(site: &Site, failure: LoginFailure, status: u16) -> Self {
        Self::page(status, catalog::login_failed_page(site, failure)).no_store()
    }

    /// The page for a login the door refused: the citizen's explanation, with the status for it.
    pub(crate) fn refused(rt: &Runtime, e: &idp_bridge::FinishError) -> Self {
        match e.failure() {
            Some(failure) => Self::login_failed(&rt.site, failure, e.status()),
            None => Self::error_page(rt, ErrorPage::Unavailable),
        }
    }

    /// The page for a shared store that cannot be reached (503), logged once here.
    pub(crate) fn unavailable(rt: &Runtime, e: &StoreError) -> Self {
        tracing::error!(error = %e, "session store unavailable");
        Self::error_page(rt, ErrorPage::Unavailable)
    }

    /// The page for a login that cannot be recorded (a full disk, say): 503, not cached; the
    /// catalog and public services keep working. Logged and counted here.
    pub(crate) fn audit_unavailable(
        rt: &Runtime,
        metrics: &crate::ops::telemetry::Metrics,
        e: &idp_bridge::AuditError,
    ) -> Self {
        metrics.event("audit_unavailable");
        tracing::error!(error = %e, "cannot write the SAML audit trail");
        Self::error_page(rt, ErrorPage::Unavailable)
    }
}
