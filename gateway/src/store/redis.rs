//! The Redis store: state shared by several varco instances.
//!
//! Keys (all under `varco:`; values JSON):
//! - `s:<sha256(session ID)>`: a session, expiring after the idle timeout, refreshed by each read
//!   (`GETEX`); the absolute timeout is checked against the login time inside;
//! - `u:<sha256(idp, NameID)>`: the set of that subject's session keys, for IdP-initiated logout;
//! - `l:<request ID>.<binding>`: a pending login (`GETDEL`: one-shot across instances, and only
//!   for the browser that started it);
//! - `h:<sha256(code)>`: a handoff code (`GETDEL`); `c:<sha256(code)>`: a CNS handover (`GETDEL`); `o:<request ID>`: a LogoutRequest sent;
//! - `r:<id>`: the replay cache (`SET NX`).
//!
//! Every command has a deadline: an unreachable Redis gives an error page, never a hung request.
//!
//! With `redis+sentinel://`, the primary is the one Sentinel names. A command that finds the
//! primary gone (connection refused or dropped, a timeout, `READONLY` from a demoted primary)
//! asks Sentinel again and, once it names another, goes there (and is tried once more there).
//! Until Sentinel has promoted a replica, commands fail (a 503 page); what the old primary had
//! not yet replicated is lost (Redis replicates asynchronously).

use std::sync::Arc;
use std::time::Duration;

use idp_bridge::{BindingDigest, PendingLogin, SessionKey, LOGIN_TTL};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::SentinelClient;

use super::session::{Session, SessionId};
use super::{
    digest, handoff_key, hex, CnsHandover, Handoff, Lifetimes, StateStore, StoreError, StoreResult,
    HANDOFF_TTL, LOGOUT_TTL,
};

/// Longest wait for one Redis answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a (re)connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// State shared through Redis.
#[derive(Clone)]
pub struct RedisStore {
    /// The connection to the primary (swapped when Sentinel names another).
    conn: Arc<std::sync::RwLock<ConnectionManager>>,
    /// With `redis+sentinel://`: how to find the primary again after a failover.
    sentinel: Option<Arc<Follower>>,
    lifetimes: Lifetimes,
    /// Where the connection lives (shown without credentials).
    endpoint: String,
}

/// What follows the primary through a Sentinel failover.
struct Follower {
    client: tokio::sync::Mutex<SentinelClient>,
    /// `host:port` of the primary in use.
    primary: std::sync::Mutex<String>,
    /// The store's own runtime, where connections and their background tasks live.
    runtime: tokio::runtime::Handle,
    /// When Sentinel was last asked (a failing request asks at most every [`ASK_EVERY`]).
    asked: std::sync::Mutex<Option<std::time::Instant>>,
}

/// The least time between two questions to Sentinel while the primary is unreachable.
const ASK_EVERY: Duration = Duration::from_millis(500);

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

fn config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(2)
}

/// `redis+sentinel://[:password@]h1:p1,h2:p2/master`: the Sentinels, the master's name and the
/// password of the primary.
fn sentinel_parts(url: &str) -> StoreResult<(Vec<String>, String, Option<String>)> {
    let rest = url
        .strip_prefix("redis+sentinel://")
        .ok_or_else(|| StoreError("not a redis+sentinel:// URL".into()))?;
    let (password, rest) = match rest.rsplit_once('@') {
        Some((auth, r)) => (auth.strip_prefix(':').map(str::to_string), r),
        None => (None, rest),
    };
    let (hosts, master) = rest
        .split_once('/')
        .ok_or_else(|| StoreError("redis+sentinel:// needs /master-name".into()))?;
    let sentinels = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{h}"))
        .collect();
    Ok((sentinels, master.to_string(), password))
}

/// The primary's address, as a connection to it reports (for logs).
fn address_of(client: &redis::Client) -> String {
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(h, p)
        | redis::ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => {
            format!("{h}:{p}")
        }
        other => other.to_string(),
    }
}

/// Whether `e` says the primary is gone or is no longer the primary: worth asking Sentinel.
fn primary_lost(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.code() == Some("READONLY")
}

impl RedisStore {
    /// Connects to `url` (`redis://`, `rediss://`, or `redis+sentinel://` for the primary that
    /// Sentinel names) and checks the server answers. The connection's background task runs on
    /// a thread of its own, so the store can be opened before (and used from) any runtime.
    pub fn connect(url: &str, lifetimes: Lifetimes) -> StoreResult<Self> {
        let sentinel = url.starts_with("redis+sentinel://");
        let endpoint = if sentinel {
            let (hosts, master, _) = sentinel_parts(url)?;
            format!(
                "redis+sentinel://{}/{master}",
                hosts
                    .iter()
                    .map(|h| h.trim_start_matches("redis://"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        } else {
            let parsed = url::Url::parse(url).map_err(err)?;
            format!(
                "{}://{}:{}",
                parsed.scheme(),
                parsed.host_str().unwrap_or("?"),
                parsed.port().unwrap_or(6379)
            )
        };
        let mut sentinel_client = if sentinel {
            let (hosts, master, password) = sentinel_parts(url)?;
            let mut info = redis::sentinel::SentinelNodeConnectionInfo::default();
            if let Some(p) = password {
                info = info.set_redis_connection_info(
                    redis::RedisConnectionInfo::default().set_password(p),
                );
            }
            Some(
                SentinelClient::build(
                    hosts,
                    master,
                    Some(info),
                    redis::sentinel::SentinelServerType::Master,
                )
                .map_err(|e| StoreError(format!("{endpoint}: {e}")))?,
            )
        } else {
            None
        };
        let plain = if sentinel {
            None
        } else {
            Some(redis::Client::open(url).map_err(|e| StoreError(format!("{endpoint}: {e}")))?)
        };
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
                        let client = match (plain, sentinel_client.as_mut()) {
                            (Some(c), _) => c,
                            (None, Some(s)) => s.async_get_client().await.map_err(err)?,
                            (None, None) => return Err(err("no Redis client")),
                        };
                        let primary = address_of(&client);
                        let mut conn = ConnectionManager::new_with_config(client, config())
                            .await
                            .map_err(err)?;
                        let info: String = redis::cmd("INFO")
                            .arg("server")
                            .query_async(&mut conn)
                            .await
                            .map_err(err)?;
                        check_version(&info)?;
                        Ok((
                            conn,
                            primary,
                            tokio::runtime::Handle::current(),
                            sentinel_client,
                        ))
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
        let (conn, primary, runtime, sentinel_client) = rx
            .recv()
            .map_err(err)?
            .map_err(|e| StoreError(format!("{endpoint}: {}", e.0)))?;
        let sentinel = sentinel_client.map(|client| {
            tracing::info!(store = %endpoint, primary = %primary, "Redis primary found through Sentinel");
            Arc::new(Follower {
                client: tokio::sync::Mutex::new(client),
                primary: std::sync::Mutex::new(primary),
                runtime,
                asked: std::sync::Mutex::new(None),
            })
        });
        Ok(Self {
            conn: Arc::new(std::sync::RwLock::new(conn)),
            sentinel,
            lifetimes,
            endpoint,
        })
    }

    fn connection(&self) -> ConnectionManager {
        match self.conn.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Runs `f` on the primary's connection. Behind Sentinel, an error that says the primary is
    /// gone asks Sentinel where it is now and, when it moved, runs `f` once more there.
    async fn exec<T, F, Fut>(&self, f: F) -> StoreResult<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let shown = |e: redis::RedisError| StoreError(format!("{}: {e}", self.endpoint));
        match f(self.connection()).await {
            Err(e) if primary_lost(&e) => match &self.sentinel {
                Some(follower) if self.follow(follower).await => {
                    f(self.connection()).await.map_err(shown)
                }
                _ => Err(shown(e)),
            },
            other => other.map_err(shown),
        }
    }

    /// Asks Sentinel for the primary; `true` when it moved and the connection now goes there.
    async fn follow(&self, follower: &Follower) -> bool {
        {
            let mut asked = follower
                .asked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if asked.is_some_and(|t| t.elapsed() < ASK_EVERY) {
                return false;
            }
            *asked = Some(std::time::Instant::now());
        }
        let mut client = follower.client.lock().await;
        let found = match tokio::time::timeout(CONNECT_TIMEOUT * 2, client.async_get_client()).await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::warn!(store = %self.endpoint, error = %e, "Sentinel does not name a primary yet");
                return false;
            }
            Err(_) => {
                tracing::warn!(store = %self.endpoint, "Sentinel did not answer in time");
                return false;
            }
        };
        let address = address_of(&found);
        let old = follower
            .primary
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if address == old {
            return false;
        }
        // The connection (and its task) must live on the store's runtime, not on the one of
        // the request that noticed.
        let made = follower
            .runtime
            .spawn(async move { ConnectionManager::new_with_config(found, config()).await })
            .await;
        match made {
            Ok(Ok(conn)) => {
                match self.conn.write() {
                    Ok(mut c) => *c = conn,
                    Err(poisoned) => *poisoned.into_inner() = conn,
                }
                *follower
                    .primary
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = address.clone();
                tracing::warn!(store = %self.endpoint, from = %old, to = %address, "Redis primary moved (Sentinel failover); following it");
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(store = %self.endpoint, primary = %address, error = %e, "cannot connect to the new Redis primary yet");
                false
            }
            Err(e) => {
                tracing::error!(store = %self.endpoint, error = %e, "the Redis connection task failed");
                false
            }
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> StoreResult<T> {
        // Boxed: the futures of every store call nest inside the request path's, and their
        // layout would otherwise exceed the compiler's query depth.
        Box::pin(self.exec(|mut conn| async move { cmd.query_async(&mut conn).await })).await
    }
}

/// `GETEX` and `GETDEL` (one-shot takes across instances) need Redis 6.2 or later: refuse an
/// older server at start rather than fail every login later.
fn check_version(info: &str) -> StoreResult<()> {
    let version = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("redis_version:"))
        .ok_or_else(|| StoreError("the server did not report its version".into()))?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) >= (6, 2) {
        Ok(())
    } else {
        Err(StoreError(format!(
            "Redis {version} is too old: varco needs 6.2 or later (GETEX, GETDEL)"
        )))
    }
}

fn session_key(id: &SessionId) -> String {
    stored_session_key(&id.key())
}

fn stored_session_key(key: &SessionKey) -> String {
    format!("varco:s:{}", hex(key.as_bytes()))
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
        let subject = subject_key(session.principal().idp(), session.principal().name_id());
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
        let pipe = &pipe;
        Box::pin(self.exec(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })).await
    }

    async fn ping(&self) -> StoreResult<()> {
        let _: String = self.run(&redis::cmd("PING")).await?;
        Ok(())
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
        let session = match Session::from_trusted_store(&value) {
            Ok(s) => s,
            Err(e) => {
                // Written by another version (a rolling upgrade) or damaged: no session here,
                // but left in place for the instances that can read it.
                tracing::warn!(error = %e, "unreadable session in Redis, ignored");
                return Ok(None);
            }
        };
        if session.age() >= self.lifetimes.absolute {
            let _: () = self.run(redis::cmd("DEL").arg(&key)).await?;
            return Ok(None);
        }
        Ok(Some(Arc::new(session)))
    }

    async fn remove_session(&self, key: &SessionKey) -> StoreResult<()> {
        self.run(redis::cmd("DEL").arg(stored_session_key(key)))
            .await
    }

    async fn remove_subject(&self, idp: &str, name_id: &str) -> StoreResult<usize> {
        // One script, so that a session added to the subject meanwhile cannot lose its index
        // entry while surviving.
        let script = redis::Script::new(
            "local keys = redis.call('SMEMBERS', KEYS[1]) \
             local ended = 0 \
             for _, k in ipairs(keys) do ended = ended + redis.call('DEL', k) end \
             redis.call('DEL', KEYS[1]) \
             return ended",
        );
        let invocation = script.key(subject_key(idp, name_id));
        let invocation = &invocation;
        Box::pin(self.exec(|mut conn| async move { invocation.invoke_async(&mut conn).await }))
            .await
    }

    async fn put_login(&self, login: PendingLogin) -> StoreResult<()> {
        let value = serde_json::to_string(&login).map_err(err)?;
        self.run(
            redis::cmd("SET")
                .arg(format!("varco:l:{}", login.store_key()))
                .arg(value)
                .arg("EX")
                .arg(secs(LOGIN_TTL)),
        )
        .await
    }

    async fn count_login_start(&self, binding: &BindingDigest) -> StoreResult<u64> {
        let key = format!("varco:b:{}", hex(&binding.as_bytes()[..16]));
        let _: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(0)
                    .arg("NX")
                    .arg("EX")
                    .arg(secs(LOGIN_TTL)),
            )
            .await?;
        self.run(redis::cmd("INCR").arg(&key)).await
    }

    async fn take_login(
        &self,
        request_id: &str,
        binding: &BindingDigest,
    ) -> StoreResult<Option<PendingLogin>> {
        let key = PendingLogin::key_for(request_id, binding);
        let value: Option<String> = self
            .run(redis::cmd("GETDEL").arg(format!("varco:l:{key}")))
            .await?;
        Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
    }

    async fn put_handoff(&self, code: &str, handoff: Handoff) -> StoreResult<()> {
        let value = serde_json::to_string(&handoff).map_err(err)?;
        self.run(
            redis::cmd("SET")
                .arg(format!(
                    "varco:h:{}",
                    hex(&handoff_key(code, &handoff.binding))
                ))
                .arg(value)
                .arg("EX")
                .arg(secs(HANDOFF_TTL)),
        )
        .await
    }

    async fn take_handoff(
        &self,
        code: &str,
        binding: &BindingDigest,
    ) -> StoreResult<Option<Handoff>> {
        let key = format!("varco:h:{}", hex(&handoff_key(code, binding)));
        let value: Option<String> = self.run(redis::cmd("GETDEL").arg(key)).await?;
        Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
    }

    async fn put_cns(&self, code: &str, handover: CnsHandover) -> StoreResult<()> {
        let value = serde_json::to_string(&handover).map_err(err)?;
        self.run(
            redis::cmd("SET")
                .arg(format!("varco:c:{}", hex(&digest(&["cns", code]))))
                .arg(value)
                .arg("EX")
                .arg(secs(HANDOFF_TTL)),
        )
        .await
    }

    async fn take_cns(&self, code: &str) -> StoreResult<Option<CnsHandover>> {
        let key = format!("varco:c:{}", hex(&digest(&["cns", code])));
        let value: Option<String> = self.run(redis::cmd("GETDEL").arg(key)).await?;
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

    async fn forget_use(&self, id: &str) -> StoreResult<()> {
        self.run(redis::cmd("DEL").arg(format!("varco:r:{}", hex(&digest(&[id])))))
            .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn old_servers_are_refused_at_start() {
        assert!(super::check_version("# Server\r\nredis_version:7.0.15\r\n").is_ok());
        assert!(super::check_version("redis_version:6.2.0").is_ok());
        let old = super::check_version("redis_version:6.0.16").expect_err("too old");
        assert!(old.to_string().contains("6.2 or later"), "{old}");
        assert!(super::check_version("nothing").is_err());
    }
}
