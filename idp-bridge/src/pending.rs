//! Logins in flight: what the SP asked an IdP for, kept server-side until the answer comes back,
//! one-shot, bound to the browser that started it.
//!
//! The store is a trait so that several gateway instances can share it (Redis, with the sessions
//! issue); the in-process implementation is a bounded moka cache whose entries expire on their own.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use policies::Level;

/// How long a citizen has to complete a login at the IdP.
pub const LOGIN_TTL: Duration = Duration::from_secs(15 * 60);

/// One login in flight. Serialisable for shared stores (Redis): it is the SP's own record, never
/// read from the network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingLogin {
    /// `ID` of the AuthnRequest.
    pub request_id: String,
    /// Its `IssueInstant`.
    pub issue_instant: DateTime<Utc>,
    /// entityID of the IdP it was sent to.
    pub idp: String,
    /// Level asked for, `Comparison="minimum"`.
    pub level: Level,
    /// `AttributeConsumingServiceIndex` asked for.
    pub attribute_set: u16,
    /// Where the citizen goes after login (validated absolute URL).
    pub return_to: String,
    /// SHA-256 of the browser-binding cookie.
    pub binding: [u8; 32],
    /// SHA-256 of the RelayState sent.
    pub relay_state: [u8; 32],
    /// Store key of the session this login replaces (a step-up or a new login in a browser that
    /// had one): recorded when the login starts, because the IdP's cross-site POST to the ACS
    /// does not carry the `SameSite=Lax` session cookie.
    #[serde(default)]
    pub replaces: Option<[u8; 32]>,
    /// SHA-256 of the service host's handoff-binding cookie, when the login started from a host
    /// the portal's session cookie does not reach: the one-time code that carries the session
    /// there is redeemable only by the browser holding that cookie.
    #[serde(default)]
    pub handoff_binding: Option<[u8; 32]>,
}

impl PendingLogin {
    /// The key it is stored under: its request ID with its browser binding, so that only the
    /// browser that started the login can take it (a forged POST naming a known request ID, from
    /// another browser, finds nothing and burns nothing).
    pub fn store_key(&self) -> String {
        login_key(&self.request_id, &self.binding)
    }
}

/// The store key of the login with this request ID started by the browser with this binding.
pub fn login_key(request_id: &str, binding: &[u8; 32]) -> String {
    use std::fmt::Write as _;
    let mut key = String::with_capacity(request_id.len() + 65);
    key.push_str(request_id);
    key.push('.');
    for b in &binding[..16] {
        let _ = write!(key, "{b:02x}");
    }
    key
}

/// Where pending logins live.
pub trait LoginStore: Send + Sync + std::fmt::Debug {
    /// Keeps a login until it is taken or [`LOGIN_TTL`] passes.
    fn put(&self, login: PendingLogin);
    /// Removes and returns the login with this request ID started by the browser with this
    /// binding digest: a second call, or one from another browser, gets `None`.
    fn take(&self, request_id: &str, binding: &[u8; 32]) -> Option<PendingLogin>;
}

/// In-process store (one instance).
#[derive(Debug, Clone)]
pub struct MemoryLoginStore {
    cache: moka::sync::Cache<String, Arc<PendingLogin>>,
}

impl MemoryLoginStore {
    /// A store holding at most `capacity` logins.
    pub fn new(capacity: u64) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(LOGIN_TTL)
                .build(),
        }
    }
}

impl LoginStore for MemoryLoginStore {
    fn put(&self, login: PendingLogin) {
        self.cache.insert(login.store_key(), Arc::new(login));
    }

    fn take(&self, request_id: &str, binding: &[u8; 32]) -> Option<PendingLogin> {
        self.cache
            .remove(&login_key(request_id, binding))
            .map(|l| (*l).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(id: &str) -> PendingLogin {
        PendingLogin {
            request_id: id.into(),
            issue_instant: Utc::now(),
            idp: "https://idp.example".into(),
            level: Level::SpidL2,
            attribute_set: 0,
            return_to: "http://portal.example/".into(),
            binding: [1; 32],
            relay_state: [2; 32],
            replaces: None,
            handoff_binding: None,
        }
    }

    #[test]
    fn a_login_is_taken_once() {
        let store = MemoryLoginStore::new(100);
        store.put(login("_a"));
        store.put(login("_b"));
        assert_eq!(
            store.take("_a", &[1; 32]).map(|l| l.request_id),
            Some("_a".into())
        );
        assert_eq!(store.take("_a", &[1; 32]), None);
        assert_eq!(
            store.take("_b", &[9; 32]),
            None,
            "another browser finds nothing"
        );
        assert!(store.take("_b", &[1; 32]).is_some(), "and burns nothing");
        assert_eq!(store.take("_unknown", &[1; 32]), None);
    }

    #[test]
    fn concurrent_takes_get_it_once() {
        let store = Arc::new(MemoryLoginStore::new(100));
        store.put(login("_race"));
        let winners: usize = (0..8)
            .map(|_| {
                let s = store.clone();
                std::thread::spawn(move || usize::from(s.take("_race", &[1; 32]).is_some()))
            })
            .map(|h| h.join().unwrap_or(0))
            .sum();
        assert_eq!(winners, 1);
    }
}
