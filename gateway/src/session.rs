//! Sessions: what a successful login leaves behind, looked up by the session cookie.
//!
//! A [`Session`] is made only from an [`idp_bridge::VerifiedPrincipal`] (the ACS's output); stores
//! keep it under the SHA-256 of its ID (the ID itself lives only in the browser's cookie) and may
//! serialise it (Redis): reading one back trusts the store, never the network.

use chrono::{DateTime, Utc};
use idp_bridge::VerifiedPrincipal;
use policies::{AttributeMask, Level};
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

/// The citizen a session belongs to: the verified principal's content, kept server-side.
#[derive(Clone, Serialize, Deserialize)]
pub struct Citizen {
    idp: String,
    name_id: String,
    session_index: Option<String>,
    level: Level,
    authn_instant: Option<DateTime<Utc>>,
    attributes: Vec<(String, String)>,
}

impl From<VerifiedPrincipal> for Citizen {
    fn from(p: VerifiedPrincipal) -> Self {
        Self {
            idp: p.idp().to_string(),
            name_id: p.name_id().to_string(),
            session_index: p.session_index().map(str::to_string),
            level: p.level(),
            authn_instant: p.authn_instant(),
            attributes: p.attributes().to_vec(),
        }
    }
}

impl Citizen {
    /// entityID of the IdP.
    pub fn idp(&self) -> &str {
        &self.idp
    }
    /// The IdP's NameID (for logout).
    pub fn name_id(&self) -> &str {
        &self.name_id
    }
    /// The IdP's SessionIndex.
    pub fn session_index(&self) -> Option<&str> {
        self.session_index.as_deref()
    }
    /// The level the IdP authenticated at.
    pub fn level(&self) -> Level {
        self.level
    }
    /// When the citizen authenticated.
    pub fn authn_instant(&self) -> Option<DateTime<Utc>> {
        self.authn_instant
    }
    /// Released attributes (SAML name, value), in the order received.
    pub fn attributes(&self) -> &[(String, String)] {
        &self.attributes
    }
    /// One attribute's value.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Debug for Citizen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Attribute values (fiscal number, e-mail...) never reach a log.
        f.debug_struct("Citizen")
            .field("idp", &self.idp)
            .field("level", &self.level)
            .field(
                "attributes",
                &self.attributes.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// One citizen's session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// Who, as verified at login.
    pub principal: Citizen,
    /// The attributes that login asked the IdP for.
    pub asked: AttributeMask,
    /// When the login happened, Unix milliseconds (absolute timeout, valid across instances).
    pub created_ms: i64,
}

impl Session {
    /// The session a verified login opens, now.
    pub fn open(principal: VerifiedPrincipal, asked: AttributeMask) -> Self {
        Self {
            principal: principal.into(),
            asked,
            created_ms: Utc::now().timestamp_millis(),
        }
    }

    /// What the policy decision needs.
    pub fn held(&self) -> policies::Held {
        policies::Held {
            level: self.principal.level,
            attributes: self.asked,
        }
    }

    /// Time since login.
    pub fn age(&self) -> std::time::Duration {
        let ms = Utc::now().timestamp_millis() - self.created_ms;
        std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}
