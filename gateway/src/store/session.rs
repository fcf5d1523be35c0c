//! Sessions: what a successful login leaves behind, looked up by the session cookie.
//!
//! A [`Session`] is made only from an [`idp_bridge::VerifiedPrincipal`] (a protocol's verified
//! output); stores keep it under its [`SessionKey`] (the ID itself lives only in the browser's
//! cookie) and may serialise it (Redis): reading one back ([`Session::from_trusted_store`])
//! trusts the store, never the network.

use chrono::Utc;
use idp_bridge::{Principal, SessionKey, VerifiedPrincipal};
use policies::AttributeMask;
use serde::Serialize;

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

    /// What stores and caches key on.
    pub fn key(&self) -> SessionKey {
        SessionKey::of(self.0.as_bytes())
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

/// One citizen's session.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    principal: Principal,
    asked: AttributeMask,
    /// When the login happened, Unix milliseconds (absolute timeout, valid across instances).
    created_ms: i64,
}

/// The stored shape, read back only by [`Session::from_trusted_store`].
#[derive(serde::Deserialize)]
struct Stored {
    #[serde(deserialize_with = "Principal::restore_from_trusted_store")]
    principal: Principal,
    asked: AttributeMask,
    created_ms: i64,
}

impl Session {
    /// The session a verified login opens, now, with the attributes that login asked for.
    pub fn open(principal: VerifiedPrincipal, asked: AttributeMask) -> Self {
        Self {
            principal: principal.into_principal(),
            asked,
            created_ms: Utc::now().timestamp_millis(),
        }
    }

    /// A session that a store of varco's wrote (JSON), read back. **Trusts the store**: only a
    /// store module calls it, on what varco itself put there.
    pub(in crate::store) fn from_trusted_store(json: &str) -> serde_json::Result<Self> {
        let s: Stored = serde_json::from_str(json)?;
        Ok(Self {
            principal: s.principal,
            asked: s.asked,
            created_ms: s.created_ms,
        })
    }

    /// Who, as verified at login.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The attributes the login asked the IdP for.
    pub fn asked(&self) -> AttributeMask {
        self.asked
    }

    /// When the login happened, Unix milliseconds.
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }

    /// What the policy decision needs for a service whose sessions are `audience`'s: nothing
    /// when this session was made for another SP entity (another comune, in aggregator mode:
    /// the IdP asserted the identity to that comune only).
    pub fn held_for(&self, audience: &policies::Audience) -> Option<policies::Held> {
        (self.principal.audience() == audience).then(|| self.held())
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
