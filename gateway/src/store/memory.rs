//! The in-process store: bounded moka caches whose entries expire on their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use idp_bridge::{BindingDigest, PendingLogin, SessionKey};

use super::session::{Session, SessionId};
use super::{
    digest, handoff_key, CnsHandover, Handoff, Lifetimes, StateStore, StoreResult, HANDOFF_TTL,
    LOGOUT_TTL,
};

/// Per-entry lifetimes for the replay cache.
struct OwnTtl;

impl moka::Expiry<String, Duration> for OwnTtl {
    fn expire_after_create(&self, _: &String, ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

/// One subject's session keys.
type SessionKeys = Mutex<Vec<SessionKey>>;

/// State of one instance.
#[derive(Debug)]
pub struct MemoryStore {
    sessions: moka::sync::Cache<SessionKey, Arc<Session>>,
    /// digest(IdP, NameID) → that subject's session keys, so that an IdP's LogoutRequest (which
    /// anyone can send, signed or not) never costs a scan of every session.
    subjects: moka::sync::Cache<[u8; 32], Arc<SessionKeys>>,
    absolute: Duration,
    /// Pending logins by [`PendingLogin::store_key`], one-shot.
    logins: moka::sync::Cache<String, Arc<PendingLogin>>,
    /// Login starts per browser binding, for [`idp_bridge::LOGIN_TTL`].
    starts: moka::sync::Cache<BindingDigest, Arc<AtomicU64>>,
    handoffs: moka::sync::Cache<[u8; 32], Arc<Handoff>>,
    /// Weighed in bytes: a handover holds a certificate chain.
    cns: moka::sync::Cache<[u8; 32], Arc<CnsHandover>>,
    logouts: moka::sync::Cache<String, ()>,
    seen: moka::sync::Cache<String, Duration>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(lifetimes: Lifetimes) -> Self {
        Self {
            sessions: moka::sync::Cache::builder()
                .max_capacity(2_000_000)
                .time_to_idle(lifetimes.idle)
                .time_to_live(lifetimes.absolute)
                .build(),
            subjects: moka::sync::Cache::builder()
                .max_capacity(2_000_000)
                .time_to_live(lifetimes.absolute)
                .build(),
            absolute: lifetimes.absolute,
            logins: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(idp_bridge::LOGIN_TTL)
                .build(),
            starts: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(idp_bridge::LOGIN_TTL)
                .build(),
            handoffs: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(HANDOFF_TTL)
                .build(),
            cns: moka::sync::Cache::builder()
                .max_capacity(64 * 1024 * 1024)
                .weigher(|_, h: &Arc<CnsHandover>| u32::try_from(h.size()).unwrap_or(u32::MAX))
                .time_to_live(HANDOFF_TTL)
                .build(),
            logouts: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(LOGOUT_TTL)
                .build(),
            seen: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .expire_after(OwnTtl)
                .build(),
        }
    }

    /// Sessions held now (after pending expiries run), for measurements.
    pub fn session_count(&self) -> u64 {
        self.sessions.run_pending_tasks();
        self.sessions.entry_count()
    }
}

impl StateStore for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn put_session(&self, id: &SessionId, session: Session) -> StoreResult<()> {
        let key = id.key();
        let subject = digest(&[session.principal().idp(), session.principal().name_id()]);
        self.sessions.insert(key, Arc::new(session));
        let keys = self
            .subjects
            .get_with(subject, || Arc::new(Mutex::new(Vec::new())));
        let mut keys = keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.retain(|k| self.sessions.contains_key(k));
        keys.push(key);
        Ok(())
    }

    async fn session(&self, id: &SessionId) -> StoreResult<Option<Arc<Session>>> {
        let key = id.key();
        let Some(s) = self.sessions.get(&key) else {
            return Ok(None);
        };
        // moka's time-to-live counts from the insert in this process; the login time is what
        // counts (it may be older, e.g. restored by a test clock or a future persistent store).
        if s.age() >= self.absolute {
            self.sessions.invalidate(&key);
            return Ok(None);
        }
        Ok(Some(s))
    }

    async fn remove_session(&self, key: &SessionKey) -> StoreResult<()> {
        self.sessions.invalidate(key);
        Ok(())
    }

    async fn remove_subject(&self, idp: &str, name_id: &str) -> StoreResult<usize> {
        let Some(keys) = self.subjects.remove(&digest(&[idp, name_id])) else {
            return Ok(0);
        };
        let keys = keys.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ended = 0;
        for k in keys.iter() {
            if self.sessions.remove(k).is_some() {
                ended += 1;
            }
        }
        Ok(ended)
    }

    async fn put_login(&self, login: PendingLogin) -> StoreResult<()> {
        self.logins.insert(login.store_key(), Arc::new(login));
        Ok(())
    }

    async fn count_login_start(&self, binding: &BindingDigest) -> StoreResult<u64> {
        let n = self
            .starts
            .get_with(*binding, || Arc::new(AtomicU64::new(0)));
        Ok(n.fetch_add(1, Ordering::Relaxed) + 1)
    }

    async fn take_login(
        &self,
        request_id: &str,
        binding: &BindingDigest,
    ) -> StoreResult<Option<PendingLogin>> {
        Ok(self
            .logins
            .remove(&PendingLogin::key_for(request_id, binding))
            .map(|l| (*l).clone()))
    }

    async fn put_handoff(&self, code: &str, handoff: Handoff) -> StoreResult<()> {
        self.handoffs
            .insert(handoff_key(code, &handoff.binding), Arc::new(handoff));
        Ok(())
    }

    async fn take_handoff(
        &self,
        code: &str,
        binding: &BindingDigest,
    ) -> StoreResult<Option<Handoff>> {
        Ok(self
            .handoffs
            .remove(&handoff_key(code, binding))
            .map(|h| (*h).clone()))
    }

    async fn put_cns(&self, code: &str, handover: CnsHandover) -> StoreResult<()> {
        self.cns.insert(digest(&["cns", code]), Arc::new(handover));
        Ok(())
    }

    async fn take_cns(&self, code: &str) -> StoreResult<Option<CnsHandover>> {
        Ok(self
            .cns
            .remove(&digest(&["cns", code]))
            .map(|h| (*h).clone()))
    }

    async fn put_logout(&self, request_id: &str) -> StoreResult<()> {
        self.logouts.insert(request_id.to_string(), ());
        Ok(())
    }

    async fn take_logout(&self, request_id: &str) -> StoreResult<bool> {
        Ok(self.logouts.remove(request_id).is_some())
    }

    async fn first_use(&self, id: &str, ttl: Duration) -> StoreResult<bool> {
        Ok(self
            .seen
            .entry(id.to_string())
            .or_insert_with(|| ttl)
            .is_fresh())
    }

    async fn forget_use(&self, id: &str) -> StoreResult<()> {
        self.seen.invalidate(id);
        Ok(())
    }
}
