//! Sessions: what a successful login leaves behind, looked up by the session cookie.
//!
//! A [`Session`] is made only from an [`idp_bridge::VerifiedPrincipal`] (the ACS's output); stores
//! keep it under the SHA-256 of its ID (the ID itself lives only in the browser's cookie) and may
//! serialise its [`Principal`] (Redis): reading one back trusts the store, never the network.

use chrono::Utc;
use idp_bridge::{Principal, VerifiedPrincipal};
use policies::AttributeMask;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The session cookie over plain http; `__Host-varco_session` over https.
pub const SESSION_COOKIE: &str = "varco_session";

/// A session ID: 256 random bits. Never printed.
#[derive(Clone)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh ID.
    #[allow(clippy::new_without_default)] // a default ID would not be random
    pub fn new() -> Self {
        Self(idp_bridge::random_token(32, true))
    }

    /// An ID presented by a browser (not known to exist).
    pub fn from_untrusted(s: &str) -> Option<Self> {
        (s.len() == 43
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| Self(s.to_string()))
    }

    /// The value, for the cookie. Never log it.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the ID: what stores and caches key on.
    pub fn key(&self) -> [u8; 32] {
        sha2::Sha256::digest(self.0.as_bytes()).into()
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

/// One citizen's session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// Who, as verified at login.
    pub principal: Principal,
    /// The attributes that login asked the IdP for.
    pub asked: AttributeMask,
    /// When the login happened, Unix milliseconds (absolute timeout, valid across instances).
    pub created_ms: i64,
}

impl Session {
    /// The session a verified login opens, now.
    pub fn open(principal: VerifiedPrincipal, asked: AttributeMask) -> Self {
        Self {
            principal: principal.into_principal(),
            asked,
            created_ms: Utc::now().timestamp_millis(),
        }
    }

    /// What the policy decision needs.
    pub fn held(&self) -> policies::Held {
        policies::Held {
            level: self.principal.level(),
            attributes: self.asked,
        }
    }

    /// Time since login.
    pub fn age(&self) -> std::time::Duration {
        let ms = Utc::now().timestamp_millis() - self.created_ms;
        std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}
