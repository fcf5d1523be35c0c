//! Sessions: what a successful login leaves behind, looked up by the session cookie.
//!
//! The store keeps sessions under the SHA-256 of their ID (the ID itself lives only in the
//! browser's cookie), with an idle timeout (moka's time-to-idle) and an absolute one (checked on
//! every read). In-process for now; the store is a trait so that Redis can serve several
//! instances.

use std::sync::Arc;
use std::time::{Duration, Instant};

use idp_bridge::VerifiedPrincipal;
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
#[derive(Debug, Clone)]
pub struct Session {
    /// Who, as verified at login.
    pub principal: VerifiedPrincipal,
    /// When the login happened (absolute timeout).
    pub created: Instant,
}

/// Where sessions live.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Stores a new session.
    fn insert(&self, id: &SessionId, session: Session);
    /// The live session for this ID, refreshing its idle time.
    fn get(&self, id: &SessionId) -> Option<Arc<Session>>;
    /// Ends a session.
    fn remove(&self, id: &SessionId);
    /// Ends every session of this subject at this IdP (IdP-initiated logout); how many ended.
    fn remove_subject(&self, idp: &str, name_id: &str) -> usize;
}

/// In-process sessions.
#[derive(Debug, Clone)]
pub struct MemorySessions {
    cache: moka::sync::Cache<[u8; 32], Arc<Session>>,
    absolute: Duration,
}

impl MemorySessions {
    /// Sessions that end after `idle` without use or `absolute` after login.
    pub fn new(idle: Duration, absolute: Duration) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(idle)
                .time_to_live(absolute)
                .build(),
            absolute,
        }
    }
}

impl SessionStore for MemorySessions {
    fn insert(&self, id: &SessionId, session: Session) {
        self.cache.insert(id.key(), Arc::new(session));
    }

    fn get(&self, id: &SessionId) -> Option<Arc<Session>> {
        let s = self.cache.get(&id.key())?;
        if s.created.elapsed() >= self.absolute {
            self.cache.invalidate(&id.key());
            return None;
        }
        Some(s)
    }

    fn remove(&self, id: &SessionId) {
        self.cache.invalidate(&id.key());
    }

    fn remove_subject(&self, idp: &str, name_id: &str) -> usize {
        // A scan: IdP-initiated logouts are rare, and a second index would have to be kept in
        // step with moka's expiries.
        let doomed: Vec<Arc<[u8; 32]>> = self
            .cache
            .iter()
            .filter(|(_, s)| s.principal.idp() == idp && s.principal.name_id() == name_id)
            .map(|(k, _)| k)
            .collect();
        for k in &doomed {
            self.cache.invalidate(k.as_ref());
        }
        doomed.len()
    }
}
