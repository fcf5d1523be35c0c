//! The Redis store: state shared by several varco instances.
//!
//! Keys (all under `varco:`; values JSON):
//! - `s:<sha256(session ID)>`: a session, expiring after the idle timeout, refreshed by each read
//!   (`GETEX`); the absolute timeout is checked against the login time inside;
//! - `u:<sha256(idp, NameID)>`: the set of that subject's session keys, for IdP-initiated logout;
//! - `l:<request ID>`: a pending login (`GETDEL`: one-shot across instances);
//! - `h:<sha256(code)>`: a handoff code (`GETDEL`); `o:<request ID>`: a LogoutRequest sent;
//! - `r:<id>`: the replay cache (`SET NX`).
//!
//! Every command has a deadline: an unreachable Redis gives an error page, never a hung request.

use std::sync::Arc;
use std::time::Duration;

use idp_bridge::{PendingLogin, LOGIN_TTL};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{
    digest, hex, Handoff, Lifetimes, StateStore, StoreError, StoreResult, HANDOFF_TTL, LOGOUT_TTL,
};
use crate::session::{Session, SessionId};

/// Longest wait for one Redis answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a (re)connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// State shared through Redis.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    lifetimes: Lifetimes,
    /// Where the connection lives (shown without credentials).
    endpoint: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl RedisStore {
    /// Connects to `url` and checks the server answers. The connection's background task runs on
    /// a thread of its own, so the store can be opened before (and used from) any runtime.
    pub fn connect(url: &str, lifetimes: Lifetimes) -> StoreResult<Self> {
        let parsed = url::Url::parse(url).map_err(err)?;
        let endpoint = format!(
            "{}://{}:{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or("?"),
            parsed.port().unwrap_or(6379)
        );
        let client =
            redis::Client::open(url).map_err(|e| StoreError(format!("{endpoint}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(2);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("varco-redis".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(err(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let made = async {
                        let mut conn = ConnectionManager::new_with_config(client, config)
                            .await
                            .map_err(err)?;
                        let _: String = redis::cmd("PING")
                            .query_async(&mut conn)
                            .await
                            .map_err(err)?;
                        Ok(conn)
                    }
                    .await;
                    let failed = made.is_err();
                    let _ = tx.send(made);
                    if !failed {
                        // Keep the runtime (and the connection's task) alive for the process.
                        std::future::pending::<()>().await;
                    }
                });
            })
            .map_err(err)?;
        let conn = rx
            .recv()
            .map_err(err)?
            .map_err(|e| StoreError(format!("{endpoint}: {}", e.0)))?;
        Ok(Self {
            conn,
            lifetimes,
            endpoint,
        })
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> StoreResult<T> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn)
            .await
            .map_err(|e| StoreError(format!("{}: {e}", self.endpoint)))
    }
}

fn session_key(id: &SessionId) -> String {
    format!("varco:s:{}", hex(&id.key()))
}

fn subject_key(idp: &str, name_id: &str) -> String {
    format!("varco:u:{}", hex(&digest(&[idp, name_id])))
}

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

impl StateStore for RedisStore {
    async fn put_session(&self, id: &SessionId, session: Session) -> StoreResult<()> {
        let value = serde_json::to_string(&session).map_err(err)?;
        let key = session_key(id);
        let subject = subject_key(session.principal.idp(), session.principal.name_id());
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&key)
            .arg(value)
            .arg("EX")
            .arg(secs(self.lifetimes.idle))
            .ignore()
            .cmd("SADD")
            .arg(&subject)
            .arg(&key)
            .ignore()
            .cmd("EXPIRE")
            .arg(&subject)
            .arg(secs(self.lifetimes.absolute))
            .ignore();
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| StoreError(format!("{}: {e}", self.endpoint)))
    }

    async fn session(&self, id: &SessionId) -> StoreResult<Option<Arc<Session>>> {
        let key = session_key(id);
        let value: Option<String> = self
            .run(
                redis::cmd("GETEX")
                    .arg(&key)
                    .arg("EX")
                    .arg(secs(self.lifetimes.idle)),
            )
            .await?;
        let Some(value) = value else {
            return Ok(None);
        };
        let session: Session = match serde_json::from_str(&value) {
            Ok(s) => s,
            Err(e) => {
                // Written by another version, or damaged: no session (the citizen logs in again).
                tracing::warn!(error = %e, "unreadable session in Redis, dropped");
                let _: () = self.run(redis::cmd("DEL").arg(&key)).await?;
                return Ok(None);
            }
        };
        if session.age() >= self.lifetimes.absolute {
            let _: () = self.run(redis::cmd("DEL").arg(&key)).await?;
            return Ok(None);
        }
        Ok(Some(Arc::new(session)))
    }

    async fn remove_session(&self, id: &SessionId) -> StoreResult<()> {
        self.run(redis::cmd("DEL").arg(session_key(id))).await
    }

    async fn remove_subject(&self, idp: &str, name_id: &str) -> StoreResult<usize> {
        let subject = subject_key(idp, name_id);
        let keys: Vec<String> = self.run(redis::cmd("SMEMBERS").arg(&subject)).await?;
        if keys.is_empty() {
            return Ok(0);
        }
        let ended: usize = self.run(redis::cmd("DEL").arg(&keys)).await?;
        let _: () = self.run(redis::cmd("DEL").arg(&subject)).await?;
        Ok(ended)
    }

    async fn put_login(&self, login: PendingLogin) -> StoreResult<()> {
        let value = serde_json::to_string(&login).map_err(err)?;
        self.run(
            redis::cmd("SET")
                .arg(format!("varco:l:{}", login.request_id))
                .arg(value)
                .arg("EX")
                .arg(secs(LOGIN_TTL)),
        )
        .await
    }

    async fn take_login(&self, request_id: &str) -> StoreResult<Option<PendingLogin>> {
        let value: Option<String> = self
            .run(redis::cmd("GETDEL").arg(format!("varco:l:{request_id}")))
            .await?;
        Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
    }

    async fn put_handoff(&self, code: &str, handoff: Handoff) -> StoreResult<()> {
        let value = serde_json::to_string(&handoff).map_err(err)?;
        self.run(
            redis::cmd("SET")
                .arg(format!("varco:h:{}", hex(&digest(&[code]))))
                .arg(value)
                .arg("EX")
                .arg(secs(HANDOFF_TTL)),
        )
        .await
    }

    async fn take_handoff(&self, code: &str) -> StoreResult<Option<Handoff>> {
        let value: Option<String> = self
            .run(redis::cmd("GETDEL").arg(format!("varco:h:{}", hex(&digest(&[code])))))
            .await?;
        Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
    }

    async fn put_logout(&self, request_id: &str) -> StoreResult<()> {
        self.run(
            redis::cmd("SET")
                .arg(format!("varco:o:{request_id}"))
                .arg(1)
                .arg("EX")
                .arg(secs(LOGOUT_TTL)),
        )
        .await
    }

    async fn take_logout(&self, request_id: &str) -> StoreResult<bool> {
        let removed: usize = self
            .run(redis::cmd("DEL").arg(format!("varco:o:{request_id}")))
            .await?;
        Ok(removed == 1)
    }

    async fn first_use(&self, id: &str, ttl: Duration) -> StoreResult<bool> {
        let set: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(format!("varco:r:{}", hex(&digest(&[id]))))
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(secs(ttl)),
            )
            .await?;
        Ok(set.is_some())
    }
}
