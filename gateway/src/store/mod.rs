//! Server-side state that must outlive one request and be shared by every instance behind a load
//! balancer: sessions, pending logins, one-time handoff codes, the LogoutRequests we sent, and the
//! replay cache for messages that must be seen once.
//!
//! [`StateStore`] has two implementations: [`MemoryStore`] (moka, one instance, the default) and
//! [`RedisStore`] (`session.store = "redis://…"`). [`Store`] picks one at start without boxing, so
//! the per-request session lookup of the in-process store stays a hash-map read.

mod memory;
mod redis;
mod session;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use idp_bridge::{BindingDigest, PendingLogin, SessionKey};
use serde::{Deserialize, Serialize};

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;
pub use self::session::{Session, SessionId};

/// How long a handoff code lives.
pub const HANDOFF_TTL: Duration = Duration::from_secs(60);
/// How long we wait for the IdP's answer to a LogoutRequest.
pub const LOGOUT_TTL: Duration = Duration::from_secs(600);

/// A store operation that failed (the shared store is unreachable or answered nonsense).
#[derive(Debug, thiserror::Error)]
#[error("session store: {0}")]
pub struct StoreError(pub String);

/// Result of a store operation.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// One-time code that carries a session to a service host the portal's cookie does not reach.
#[derive(Clone, Serialize, Deserialize)]
pub struct Handoff {
    /// The only host that may redeem it (lower case, no port).
    pub host: String,
    /// The session ID to set there (the code is its only carrier, for a minute).
    pub session: String,
    /// Where to go after.
    pub target: String,
    /// SHA-256 of the handoff-binding cookie of the browser that may redeem it (set on the
    /// service host when it sent the browser to log in).
    pub binding: BindingDigest,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// What the CNS host received for a login, carried to the portal by a one-time code: the login
/// it names (unverified) and the certificate chain of its TLS handshake (DER, the card's first).
#[derive(Clone, Serialize, Deserialize)]
pub struct CnsHandover {
    /// The `login` field (a pending login's ID, as the browser claimed it).
    pub login: String,
    /// The chain, DER.
    pub chain: Vec<Vec<u8>>,
}

impl CnsHandover {
    /// Bytes it holds (the memory store's weight).
    pub(crate) fn size(&self) -> usize {
        self.login.len() + self.chain.iter().map(Vec::len).sum::<usize>()
    }
}

impl std::fmt::Debug for CnsHandover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CnsHandover")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Idle and absolute lifetimes of sessions.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// Unused this long, a session ends.
    pub idle: Duration,
    /// This long after login, a session ends.
    pub absolute: Duration,
}

/// Where shared state lives. Every "take" is atomic: of two instances (or two requests) asking
/// for the same one-time entry, exactly one gets it.
pub trait StateStore: Send + Sync {
    /// Whether the store answers now (readiness).
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;
    /// Stores a new session.
    fn put_session(
        &self,
        id: &SessionId,
        session: Session,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The live session for this ID, refreshing its idle time.
    fn session(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = StoreResult<Option<Arc<Session>>>> + Send;
    /// Ends a session, named by its store key ([`SessionId::key`]).
    fn remove_session(&self, key: &SessionKey) -> impl Future<Output = StoreResult<()>> + Send;
    /// Ends every session of this subject at this IdP (IdP-initiated logout); how many ended.
    fn remove_subject(
        &self,
        idp: &str,
        name_id: &str,
    ) -> impl Future<Output = StoreResult<usize>> + Send;
    /// Keeps a login until it is taken or [`idp_bridge::LOGIN_TTL`] passes.
    fn put_login(&self, login: PendingLogin) -> impl Future<Output = StoreResult<()>> + Send;
    /// Counts a login start by the browser with this binding digest; returns how many it made
    /// within [`idp_bridge::LOGIN_TTL`] of its first (a cap on one browser's pending logins).
    fn count_login_start(
        &self,
        binding: &BindingDigest,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Removes and returns the login with this request ID that the browser with this binding
    /// digest started: a second call, or one from another browser, gets `None` (and burns
    /// nothing).
    fn take_login(
        &self,
        request_id: &str,
        binding: &BindingDigest,
    ) -> impl Future<Output = StoreResult<Option<PendingLogin>>> + Send;
    /// Keeps a handoff code for [`HANDOFF_TTL`].
    fn put_handoff(
        &self,
        code: &str,
        handoff: Handoff,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Removes and returns a handoff code's entry, if it was made for the browser with this
    /// binding digest: it works once, and a try from another browser burns nothing.
    fn take_handoff(
        &self,
        code: &str,
        binding: &BindingDigest,
    ) -> impl Future<Output = StoreResult<Option<Handoff>>> + Send;
    /// Keeps what the CNS host received, under a one-time code, for [`HANDOFF_TTL`].
    fn put_cns(
        &self,
        code: &str,
        handover: CnsHandover,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Removes and returns what the CNS host kept under `code`: it works once.
    fn take_cns(&self, code: &str)
        -> impl Future<Output = StoreResult<Option<CnsHandover>>> + Send;
    /// Remembers a LogoutRequest we sent, for [`LOGOUT_TTL`].
    fn put_logout(&self, request_id: &str) -> impl Future<Output = StoreResult<()>> + Send;
    /// Whether we sent this LogoutRequest and it was not answered yet (forgets it).
    fn take_logout(&self, request_id: &str) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Replay cache: `true` the first time `id` is seen within `ttl`, `false` afterwards.
    fn first_use(&self, id: &str, ttl: Duration) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Forgets `id` in the replay cache (the action it guarded failed and may be retried).
    fn forget_use(&self, id: &str) -> impl Future<Output = StoreResult<()>> + Send;
}

/// The store a gateway runs with.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per process; boxing would cost every lookup a hop
pub enum Store {
    /// In-process.
    Memory(MemoryStore),
    /// Redis, shared by instances.
    Redis(RedisStore),
}

impl Store {
    /// The store `config` names. Redis is connected (and pinged) now, so that a wrong URL stops
    /// the start rather than the first login. Must not be called inside a tokio runtime.
    pub fn open(config: &policies::SessionConfig) -> StoreResult<Self> {
        let lifetimes = Lifetimes {
            idle: config.idle_timeout,
            absolute: config.absolute_timeout,
        };
        match &config.store {
            policies::SessionStore::Memory => Ok(Store::Memory(MemoryStore::new(lifetimes))),
            policies::SessionStore::Redis(url) => {
                Ok(Store::Redis(RedisStore::connect(url, lifetimes)?))
            }
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Memory($s) => $call.await,
            Store::Redis($s) => $call.await,
        }
    };
}

impl StateStore for Store {
    async fn ping(&self) -> StoreResult<()> {
        dispatch!(self, s => s.ping())
    }
    async fn put_session(&self, id: &SessionId, session: Session) -> StoreResult<()> {
        dispatch!(self, s => s.put_session(id, session))
    }
    async fn session(&self, id: &SessionId) -> StoreResult<Option<Arc<Session>>> {
        dispatch!(self, s => s.session(id))
    }
    async fn remove_session(&self, key: &SessionKey) -> StoreResult<()> {
        dispatch!(self, s => s.remove_session(key))
    }
    async fn remove_subject(&self, idp: &str, name_id: &str) -> StoreResult<usize> {
        dispatch!(self, s => s.remove_subject(idp, name_id))
    }
    async fn put_login(&self, login: PendingLogin) -> StoreResult<()> {
        dispatch!(self, s => s.put_login(login))
    }
    async fn count_login_start(&self, binding: &BindingDigest) -> StoreResult<u64> {
        dispatch!(self, s => s.count_login_start(binding))
    }
    async fn take_login(
        &self,
        request_id: &str,
        binding: &BindingDigest,
    ) -> StoreResult<Option<PendingLogin>> {
        dispatch!(self, s => s.take_login(request_id, binding))
    }
    async fn put_handoff(&self, code: &str, handoff: Handoff) -> StoreResult<()> {
        dispatch!(self, s => s.put_handoff(code, handoff))
    }
    async fn take_handoff(
        &self,
        code: &str,
        binding: &BindingDigest,
    ) -> StoreResult<Option<Handoff>> {
        dispatch!(self, s => s.take_handoff(code, binding))
    }
    async fn put_cns(&self, code: &str, handover: CnsHandover) -> StoreResult<()> {
        dispatch!(self, s => s.put_cns(code, handover))
    }
    async fn take_cns(&self, code: &str) -> StoreResult<Option<CnsHandover>> {
        dispatch!(self, s => s.take_cns(code))
    }
    async fn put_logout(&self, request_id: &str) -> StoreResult<()> {
        dispatch!(self, s => s.put_logout(request_id))
    }
    async fn take_logout(&self, request_id: &str) -> StoreResult<bool> {
        dispatch!(self, s => s.take_logout(request_id))
    }
    async fn first_use(&self, id: &str, ttl: Duration) -> StoreResult<bool> {
        dispatch!(self, s => s.first_use(id, ttl))
    }
    async fn forget_use(&self, id: &str) -> StoreResult<()> {
        dispatch!(self, s => s.forget_use(id))
    }
}

/// Lower-case hex of a digest, for store keys.
use idp_bridge::to_hex as hex;

/// The store key of a handoff code made for the browser with this binding digest.
fn handoff_key(code: &str, binding: &BindingDigest) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(code.as_bytes());
    h.update([0]);
    h.update(binding.as_bytes());
    h.finalize().into()
}

/// SHA-256 of a one-time code or subject: stores never hold a redeemable value as a key.
fn digest(parts: &[&str]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}
