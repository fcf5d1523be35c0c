//! State shared by every service of one gateway: the current runtime behind an atomic swap, the
//! metrics, and where the configuration lives (for reloads).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::error::{Error, Result};
use crate::ops::telemetry::Metrics;
use crate::runtime::Runtime;
use crate::store::Store;

/// One gateway's shared state.
#[derive(Debug)]
pub struct Shared {
    config_path: PathBuf,
    current: ArcSwap<Runtime>,
    generations: AtomicU64,
    trace_requests: bool,
    /// The SAML audit trail (its path and key are fixed at start).
    pub(crate) audit: crate::ops::audit::AuditWriter,
    /// Signed identity JWTs, reused for half their lifetime.
    pub(crate) assertions: crate::request::jwt::cache::AssertionCache,
    /// Sessions, logins in flight, handoff codes, logouts sent, replay cache: fixed at start
    /// (a change of `session.store` needs a restart), they outlive policy reloads.
    pub(crate) store: Store,
    /// Filtered catalog answers (keyed by generation: a reload never serves an old catalog).
    pub(crate) catalog_cache: crate::request::portal::cache::Cache,
    /// Instruments.
    pub(crate) metrics: Metrics,
    /// Per-client buckets of the login endpoints (they outlive reloads).
    pub(crate) limiter: crate::request::limits::RateLimiter,
    /// IdP logos, fetched once and served locally (they outlive reloads).
    pub(crate) logos: crate::ops::logos::Logos,
    /// Set once the process is told to stop or hand over: every response then closes its
    /// connection, so keep-alive clients move to the process that stays, and `/readyz` fails.
    draining: std::sync::atomic::AtomicBool,
    /// The versions of the files the first load read (see [`crate::reload::inputs`]).
    pub(crate) loaded_inputs: crate::ops::reload::inputs::Inputs,
    /// The IdP registries' sets (fixed at start: a change of `[[idp_source]]` needs a restart).
    pub(crate) idp_sources: Arc<crate::ops::idp_sources::IdpSources>,
    /// Held while a runtime is built and swapped in (a reload, a registry refresh), so that an
    /// older build never replaces a newer one.
    pub(crate) rebuilding: tokio::sync::Mutex<()>,
    /// The HTTPS listener's certificates, when varco terminates TLS (`[server.tls]`, fixed at
    /// start; its files reload).
    pub(crate) tls: Option<Arc<crate::tls::SniCerts>>,
    /// `Strict-Transport-Security` for HTTPS answers.
    pub(crate) hsts: Option<http::HeaderValue>,
    /// Every certificate held or trusted, with its expiry (recomputed at each swap).
    pub(crate) certificates: Arc<std::sync::RwLock<Vec<crate::ops::expiry::CertExpiry>>>,
}

/// How a process starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// On its own: the audit trail must be free.
    Fresh,
    /// Taking over from a running varco (`varco run --upgrade`): the audit trail is opened once
    /// the old process has drained and let go of it.
    Upgrade,
}

/// How long an upgraded process waits for the old one to release the audit trail: pingora's
/// hand-over pause (5 s), the grace period and the runtimes' shutdown, with room to spare.
const AUDIT_HANDOVER: std::time::Duration = std::time::Duration::from_secs(30);

impl Shared {
    /// Loads and compiles the configuration at `config_path` (generation 1).
    pub fn load(config_path: &Path) -> Result<Self> {
        Self::load_for(config_path, Start::Fresh)
    }

    /// [`Self::load`], for a fresh start or an upgrade.
    pub fn load_for(config_path: &Path, start: Start) -> Result<Self> {
        let snapshot = policies::load(config_path)?;
        let loaded_inputs =
            crate::ops::reload::inputs::inputs(config_path, &snapshot.config.policies_dir);
        let trace_requests = snapshot.config.telemetry.otlp_endpoint.is_some();
        let idp_sources = Arc::new(crate::ops::idp_sources::IdpSources::open(
            &snapshot.config.idp_sources,
        ));
        let runtime = Runtime::rebuild(snapshot, 1, None, &idp_sources.sets())?;
        let store = Store::open(&runtime.snapshot.config.session)?;
        let sp = &runtime.snapshot.config.sp;
        let options = idp_bridge::AuditOptions {
            path: sp.audit_log.clone(),
            rotate_bytes: sp.audit_rotate_bytes,
            retention: sp.audit_retention,
        };
        let key = runtime.identity.audit_key.clone();
        let writer = match start {
            Start::Fresh => {
                let log = idp_bridge::AuditLog::open(options, key).map_err(Error::Audit)?;
                crate::ops::audit::AuditWriter::start(log)
            }
            Start::Upgrade => {
                crate::ops::audit::AuditWriter::start_after_release(options, key, AUDIT_HANDOVER)
            }
        };
        let audit = writer.map_err(|e| {
            Error::Audit(idp_bridge::AuditError::Io {
                path: sp.audit_log.display().to_string(),
                reason: format!("cannot start the audit writer: {e}"),
            })
        })?;
        let tls_config = runtime.snapshot.config.server.tls.clone();
        let tls = match &tls_config {
            Some(t) => Some(Arc::new(crate::tls::SniCerts::load(
                t,
                runtime.identity.cns.as_ref(),
            )?)),
            None => None,
        };
        let hsts = tls_config
            .as_ref()
            .and_then(|t| t.hsts.as_deref())
            .and_then(|v| http::HeaderValue::from_str(v).ok());
        let certificates = Arc::new(std::sync::RwLock::new(crate::ops::expiry::certificates(
            &runtime.snapshot,
            &runtime.identity.keys,
            &runtime.identity.idps,
            runtime.identity.cns.as_ref(),
            tls.as_ref().map(|t| t.current()).as_deref(),
        )));
        let metrics = Metrics::new()?;
        metrics.set_generation(1);
        metrics.watch_idp_sources(idp_sources.clone());
        metrics.watch_certificates(certificates.clone());
        Ok(Self {
            config_path: config_path.to_path_buf(),
            current: ArcSwap::from_pointee(runtime),
            generations: AtomicU64::new(1),
            trace_requests,
            audit,
            assertions: crate::request::jwt::cache::assertion_cache(),
            store,
            catalog_cache: crate::request::portal::cache::new_cache(),
            metrics,
            limiter: crate::request::limits::RateLimiter::new(),
            logos: crate::ops::logos::Logos::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            loaded_inputs,
            idp_sources,
            rebuilding: tokio::sync::Mutex::new(()),
            tls,
            hsts,
            certificates,
        })
    }

    /// Starts draining (see the field).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether this process is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The runtime to serve a new request with.
    pub fn current(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// Whether each request gets a `varco.request` span (only when traces are exported: spans
    /// cost an allocation each). Fixed at start, like the OTLP exporter.
    pub fn trace_requests(&self) -> bool {
        self.trace_requests
    }

    /// The main configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The generation number the next successful reload gets.
    pub fn next_generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Makes `runtime` the one new requests use; requests in flight keep theirs.
    pub fn swap(&self, runtime: Runtime) {
        let certificates = crate::ops::expiry::certificates(
            &runtime.snapshot,
            &runtime.identity.keys,
            &runtime.identity.idps,
            runtime.identity.cns.as_ref(),
            self.tls.as_ref().map(|t| t.current()).as_deref(),
        );
        if let Ok(mut c) = self.certificates.write() {
            *c = certificates;
        }
        self.current.store(Arc::new(runtime));
    }
}
