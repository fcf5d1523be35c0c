//! IdPs from the federations' registries (`[[idp_source]]`): fetched, verified, cached and
//! refreshed in the background.
//!
//! At start each source's last good copy (its `cache` file) is verified and used, so varco
//! starts with IdPs while the registry cannot be reached; then every source is fetched at once
//! and every `refresh`. A fetched set that verifies is written to the cache and swapped in (a
//! rebuild of the runtime from the current snapshot, atomic like a reload). A fetch that fails,
//! or a set that does not verify, changes nothing: the last good set keeps serving, a line is
//! logged, the failure is counted. A set past its validity serves no IdP (the registry's own
//! `validUntil` filter) and `/readyz` says why. Changing `[[idp_source]]` needs a restart.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use idp_bridge::{IdpSet, SetRules};
use policies::IdpSourceConfig;

/// Time allowed for one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// After a failed fetch, the next try comes after this (or `refresh`, if shorter).
const RETRY_AFTER: Duration = Duration::from_secs(300);

/// Every registry source, with its current set.
#[derive(Debug, Default)]
pub(crate) struct IdpSources {
    sources: Vec<Source>,
}

#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) config: IdpSourceConfig,
    state: RwLock<State>,
}

#[derive(Debug, Default, Clone)]
struct State {
    set: Option<Arc<IdpSet>>,
    failures: u64,
    last_failure: Option<(DateTime<Utc>, String)>,
}

/// What a source looks like now, for metrics and readiness.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    /// The registry's URL.
    pub(crate) url: String,
    /// Seconds since the set serving was fetched (`None`: no set).
    pub(crate) age: Option<f64>,
    /// Seconds until it expires (negative: expired; `None`: no set).
    pub(crate) valid_for: Option<f64>,
    /// IdPs in it.
    pub(crate) idps: usize,
    /// Failed fetches since start.
    pub(crate) failures: u64,
    /// When the last failure was, Unix seconds.
    pub(crate) last_failure: Option<i64>,
}

fn rules(c: &IdpSourceConfig) -> SetRules<'_> {
    SetRules {
        source: c.url.as_str(),
        federation_cert: &c.federation_cert,
        kind: c.kind,
        cache: &c.cache,
        max_age: c.max_age,
    }
}

impl IdpSources {
    /// The sources of `configs`, each with its cached set when that still verifies.
    pub(crate) fn open(configs: &[IdpSourceConfig]) -> Self {
        let sources = configs
            .iter()
            .map(|c| {
                let set = read_cache(c);
                Source {
                    config: c.clone(),
                    state: RwLock::new(State {
                        set,
                        ..State::default()
                    }),
                }
            })
            .collect();
        Self { sources }
    }

    /// The sets serving now, in configuration order.
    pub(crate) fn sets(&self) -> Vec<Arc<IdpSet>> {
        self.sources
            .iter()
            .filter_map(|s| s.state.read().ok().and_then(|st| st.set.clone()))
            .collect()
    }

    /// The sources.
    pub(crate) fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// Why varco is not ready, if a source has no set that may serve.
    pub(crate) fn unready(&self) -> Option<String> {
        let reasons: Vec<String> = self
            .sources
            .iter()
            .filter_map(|s| {
                let st = s.state.read().ok()?;
                let url = &s.config.url;
                match &st.set {
                    Some(set) if set.is_valid_now() => None,
                    Some(set) => Some(format!(
                        "IdP registry {url}: its last good set expired at {}{}",
                        set.valid_until().to_rfc3339(),
                        last_error(&st)
                    )),
                    None => Some(format!(
                        "IdP registry {url}: no verified set yet{}",
                        last_error(&st)
                    )),
                }
            })
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// Each source's status.
    pub(crate) fn status(&self) -> Vec<Status> {
        let now = Utc::now();
        self.sources
            .iter()
            .filter_map(|s| {
                let st = s.state.read().ok()?;
                let seconds = |d: chrono::Duration| d.num_milliseconds() as f64 / 1000.0;
                Some(Status {
                    url: s.config.url.to_string(),
                    age: st.set.as_ref().map(|set| seconds(now - set.fetched_at())),
                    valid_for: st.set.as_ref().map(|set| seconds(set.valid_until() - now)),
                    idps: st.set.as_ref().map_or(0, |set| set.idps().len()),
                    failures: st.failures,
                    last_failure: st.last_failure.as_ref().map(|(t, _)| t.timestamp()),
                })
            })
            .collect()
    }

    /// Fetches source `index` once: `Ok(true)` when a new verified set now serves.
    pub(crate) async fn refresh(&self, index: usize) -> bool {
        let Some(source) = self.sources.get(index) else {
            return false;
        };
        let c = &source.config;
        let result = fetch(c).await.and_then(|(bytes, fetched_at)| {
            let set = IdpSet::verify(&bytes, &rules(c), fetched_at).map_err(|e| e.to_string())?;
            Ok((bytes, set))
        });
        match result {
            Ok((bytes, set)) => {
                for s in set.skipped() {
                    tracing::warn!(source = %c.url, "IdP registry entry left out: {s}");
                }
                if let Err(e) = write_cache(&c.cache, &bytes) {
                    tracing::warn!(source = %c.url, cache = %c.cache.display(), error = %e, "cannot write the IdP registry's cache");
                }
                tracing::info!(source = %c.url, idps = set.idps().len(), valid_until = %set.valid_until(), "IdP registry fetched");
                if let Ok(mut st) = source.state.write() {
                    st.set = Some(Arc::new(set));
                }
                true
            }
            Err(e) => {
                let serving = source
                    .state
                    .read()
                    .ok()
                    .and_then(|st| st.set.as_ref().map(|s| s.valid_until()));
                match serving {
                    Some(until) => {
                        tracing::error!(source = %c.url, error = %e, "IdP registry refresh failed; the last good set keeps serving until {until}")
                    }
                    None => {
                        tracing::error!(source = %c.url, error = %e, "IdP registry refresh failed, and there is no good set: its IdPs are not offered")
                    }
                }
                if let Ok(mut st) = source.state.write() {
                    st.failures += 1;
                    st.last_failure = Some((Utc::now(), e));
                }
                false
            }
        }
    }

    /// How long to wait before the next fetch of source `index`, after one that `succeeded`.
    pub(crate) fn next_in(&self, index: usize, succeeded: bool) -> Duration {
        let refresh = self
            .sources
            .get(index)
            .map_or(RETRY_AFTER, |s| s.config.refresh);
        if succeeded {
            refresh
        } else {
            refresh.min(RETRY_AFTER)
        }
    }
}

fn last_error(st: &State) -> String {
    st.last_failure
        .as_ref()
        .map(|(t, e)| format!(" (last fetch failed at {}: {e})", t.to_rfc3339()))
        .unwrap_or_default()
}

/// The cached copy, verified again (it is a file anyone with write access to the state folder
/// could have changed); its modification time is when it was fetched.
fn read_cache(c: &IdpSourceConfig) -> Option<Arc<IdpSet>> {
    let bytes = match std::fs::read(&c.cache) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(source = %c.url, cache = %c.cache.display(), error = %e, "cannot read the IdP registry's cache");
            return None;
        }
    };
    let fetched_at = std::fs::metadata(&c.cache)
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now());
    match IdpSet::verify(&bytes, &rules(c), fetched_at) {
        Ok(set) => {
            tracing::info!(source = %c.url, idps = set.idps().len(), fetched = %fetched_at, "IdP registry read from its cache");
            Some(Arc::new(set))
        }
        Err(e) => {
            tracing::warn!(source = %c.url, cache = %c.cache.display(), error = %e, "the IdP registry's cache is not usable");
            None
        }
    }
}

/// Writes the cache so that a crash leaves the old copy or the new one, never half of one.
fn write_cache(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// GETs the registry (bounded in time and size; https, or http on loopback, even after a
/// redirect), with its CA when one is configured.
async fn fetch(c: &IdpSourceConfig) -> Result<(Vec<u8>, DateTime<Utc>), String> {
    let mut builder = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("varco/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let ok = attempt.url().scheme() == "https"
                || (attempt.url().scheme() == "http"
                    && attempt
                        .url()
                        .host_str()
                        .is_some_and(policies::is_loopback_host));
            if attempt.previous().len() >= 3 || !ok {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }));
    if let Some(ca) = &c.ca {
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("{} is not a PEM certificate: {e}", ca.display()))?;
        builder = builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(cert);
    }
    let client = builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut response = client
        .get(c.url.clone())
        .send()
        .await
        .map_err(|e| format!("cannot fetch: {}", error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(format!("the registry answered {}", response.status()));
    }
    let fetched_at = Utc::now();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("cannot read the answer: {}", error_chain(&e)))?
    {
        if body.len() + chunk.len() > idp_bridge::MAX_SET {
            return Err(format!(
                "the answer is larger than {} MiB",
                idp_bridge::MAX_SET >> 20
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, fetched_at))
}

/// An error with its causes (reqwest's own message hides the TLS reason).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
