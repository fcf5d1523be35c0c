//! `[session]`: where sessions live, how long they last, and the identity JWT's keys.

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::{duration, existing_file};
use crate::codes::is_dns_label;
use crate::reader::{At, Sink, TableReader};

/// `[session]`.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Where sessions live.
    pub store: SessionStore,
    /// Domain the portal's session cookie is shared with, e.g. `.comuni.example`.
    pub cookie_domain: Option<String>,
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after login, used or not.
    pub absolute_timeout: Duration,
    /// Ed25519 PEM private keys for the identity JWT: the first signs, all are published at
    /// `/.sso/jwks.json` (keep the previous key listed for a minute after a rotation).
    pub jwt_keys: Vec<PathBuf>,
}

/// Session store selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStore {
    /// In this process (one instance).
    Memory,
    /// Redis at this URL (several instances).
    Redis(String),
}

pub(super) fn read_session(
    root: &mut TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    base: &Path,
) -> SessionConfig {
    let mut s = SessionConfig {
        store: SessionStore::Memory,
        cookie_domain: None,
        idle_timeout: Duration::from_secs(30 * 60),
        absolute_timeout: Duration::from_secs(8 * 3600),
        jwt_keys: vec![base.join("keys/jwt.pem")],
    };
    let Some(mut t) = root.opt_table(sink, "session", "[session]") else {
        return s;
    };
    if let Some(list) = t.opt_str_array(sink, "jwt_keys") {
        if list.value.is_empty() {
            sink.error(
                &list.span,
                "[session]: `jwt_keys` needs at least one key (the first signs)",
            );
        }
        s.jwt_keys = list
            .value
            .into_iter()
            .map(|k| existing_file(sink, base, "jwt_keys", k))
            .collect();
    }
    if let Some(At { value, span }) = t.opt_str(sink, "store") {
        if value == "memory" {
            s.store = SessionStore::Memory;
        } else if value.starts_with("redis://") || value.starts_with("rediss://") {
            if Url::parse(&value).is_err() {
                sink.error(&span, "[session]: `store` is not a valid redis:// URL");
            }
            s.store = SessionStore::Redis(value);
        } else if let Some(rest) = value.strip_prefix("redis+sentinel://") {
            // redis+sentinel://[:password@]host:port[,host:port...]/master-name
            let (auth, rest) = match rest.rsplit_once('@') {
                Some((a, r)) => (Some(a), r),
                None => (None, rest),
            };
            let (hosts, master) = rest.split_once('/').unwrap_or((rest, ""));
            let sentinels: Vec<&str> = hosts.split(',').filter(|h| !h.is_empty()).collect();
            let hosts_ok = !sentinels.is_empty()
                && sentinels.iter().all(|h| {
                    h.rsplit_once(':').is_some_and(|(host, port)| {
                        !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                    })
                });
            let master_ok = !master.is_empty()
                && master
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !hosts_ok || !master_ok || auth.is_some_and(|a| !a.starts_with(':')) {
                sink.error(&span, "[session]: `store` must be redis+sentinel://[:password@]host:port[,host:port...]/master-name");
            }
            s.store = SessionStore::Redis(value);
        } else {
            sink.error(&span, format!("[session]: `store` must be \"memory\", a redis://host:port URL or redis+sentinel://host:port[,...]/master, found \"{value}\""));
        }
    }
    if let Some(At { value, span }) = t.opt_str(sink, "cookie_domain") {
        let bare = value.trim_start_matches('.');
        if bare.is_empty() || !bare.split('.').all(is_dns_label) || !bare.contains('.') {
            sink.error(&span, format!("[session]: `cookie_domain` must be a domain like \".comuni.example\", found \"{value}\""));
        }
        s.cookie_domain = Some(value.to_ascii_lowercase());
    }
    if let Some(d) = duration(&mut t, sink, "idle_timeout") {
        s.idle_timeout = d;
    }
    if let Some(d) = duration(&mut t, sink, "absolute_timeout") {
        s.absolute_timeout = d;
    }
    if s.idle_timeout > s.absolute_timeout {
        sink.error(
            t.span(),
            "[session]: `idle_timeout` must not be longer than `absolute_timeout`",
        );
    }
    t.finish(sink);
    s
}
