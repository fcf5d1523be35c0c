//! Hot reload: a change to the main file or to any policy file (watched), or SIGHUP, loads and
//! validates everything again and swaps the new runtime in. Connections and requests in flight are
//! untouched. An invalid configuration never replaces the one being served: its problems are
//! logged (one `path:line:col` line each) and counted.

pub(crate) mod inputs;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use notify::{RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

pub(crate) use self::inputs::inputs;
use crate::runtime::Runtime;
use crate::state::Shared;

/// Editors write a file in several steps; wait for the burst to end before reading.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The background service that reloads.
///
/// The watcher is installed when the service is made, before the server starts listening: a
/// file written the moment the ports open (by a deploy script, or a test) is seen. A change
/// between the first load and the watcher is caught by comparing the inputs' metadata.
pub struct Reloader {
    shared: Arc<Shared>,
    relevant: Arc<std::sync::RwLock<Relevant>>,
    watch: std::sync::Mutex<Option<Watching>>,
}

/// The parts that move into the running service.
struct Watching {
    watcher: Option<notify::RecommendedWatcher>,
    dirs: BTreeSet<PathBuf>,
    changes: tokio::sync::mpsc::Receiver<()>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Reloader {
    /// Reloads `shared`, watching its files from now on.
    pub fn new(shared: Arc<Shared>) -> Self {
        let (tx, changes) = tokio::sync::mpsc::channel::<()>(1);
        let relevant = Arc::new(std::sync::RwLock::new(Relevant::of(&shared)));
        let filter = relevant.clone();
        let queue = tx.clone();
        let watcher =
            match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if event.kind.is_access() {
                    return;
                }
                let wanted = filter
                    .read()
                    .map(|r| event.paths.iter().any(|p| r.matches(p)))
                    .unwrap_or(true);
                if wanted {
                    let _ = queue.try_send(());
                }
            }) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::error!(error = %e, "cannot watch policy files; reload with SIGHUP");
                    None
                }
            };
        let mut watching = Watching {
            watcher,
            dirs: BTreeSet::new(),
            changes,
        };
        watching.rewatch(&shared);
        if watching.watcher.is_some()
            && inputs(
                shared.config_path(),
                &shared.current().snapshot.config.policies_dir,
            ) != shared.loaded_inputs
        {
            tracing::info!("configuration changed while varco was starting; reloading");
            let _ = tx.try_send(());
        }
        Self {
            shared,
            relevant,
            watch: std::sync::Mutex::new(Some(watching)),
        }
    }
}

impl Watching {
    /// Watches the directories the current snapshot reads, and only those.
    fn rewatch(&mut self, shared: &Shared) {
        let Some(w) = self.watcher.as_mut() else {
            return;
        };
        let want = watched_dirs(shared);
        for gone in self.dirs.difference(&want) {
            let _ = w.unwatch(gone);
        }
        for new in want.difference(&self.dirs) {
            if let Err(e) = w.watch(new, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %new.display(), error = %e, "cannot watch directory");
            }
        }
        self.dirs = want;
    }
}

/// What happened to one reload attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Swapped in, with this generation.
    Swapped(u64),
    /// Refused; the previous snapshot keeps serving.
    Refused(usize),
}

/// Loads, validates and compiles the configuration again and swaps it in if valid.
pub async fn reload(shared: &Arc<Shared>, trigger: &str) -> Outcome {
    let _one_at_a_time = shared.rebuilding.lock().await;
    let path = shared.config_path().to_path_buf();
    let current = shared.current();
    let previous = current.clone();
    let sets = shared.idp_sources.sets();
    let terminates_tls = shared.tls.is_some();
    let built = tokio::task::spawn_blocking(move || {
        let snapshot = policies::load(&path)?;
        let rt = Runtime::rebuild(snapshot, 0, Some(&previous), &sets)?;
        // The certificates are part of the configuration: a key that does not match its
        // certificate (half of a renewal written) refuses the whole reload.
        let certs = match (&rt.snapshot.config.server.tls, terminates_tls) {
            (Some(t), true) => Some(crate::tls::CertStore::load(t, rt.identity.cns.as_ref())?),
            _ => None,
        };
        Ok::<_, crate::error::Error>((rt, certs))
    })
    .await;
    match built {
        Ok(Ok((mut rt, certs))) => {
            let generation = shared.next_generation();
            rt.generation = generation;
            let (old, new) = (&current.snapshot.config.server, &rt.snapshot.config.server);
            if old.listen != new.listen
                || old.admin_listen != new.admin_listen
                || old.threads != new.threads
            {
                tracing::warn!("server.listen, server.admin_listen and server.threads changes take effect only after a restart");
            }
            if current.snapshot.config.idp_sources != rt.snapshot.config.idp_sources {
                tracing::warn!("[[idp_source]] changes take effect only after a restart");
            }
            let (old_tls, new_tls) = (
                &current.snapshot.config.server.tls,
                &rt.snapshot.config.server.tls,
            );
            if old_tls
                .as_ref()
                .map(|t| (t.listen, t.http_redirect, &t.hsts, &t.acme_challenge_dir))
                != new_tls
                    .as_ref()
                    .map(|t| (t.listen, t.http_redirect, &t.hsts, &t.acme_challenge_dir))
            {
                tracing::warn!("[server.tls] listeners, hsts and acme_challenge_dir take effect only after a restart; its certificates reload");
            }
            if let (Some(serving), Some(store)) = (&shared.tls, certs) {
                serving.swap(store);
                tracing::info!(trigger, "TLS certificates reloaded");
            }
            for refused in &rt.identity.kept_metadata {
                shared.metrics.event("metadata_kept");
                tracing::error!(
                    trigger,
                    "{refused}; the last good metadata of this IdP keeps serving"
                );
            }
            let services = rt.snapshot.services().count();
            shared.swap(rt);
            shared.metrics.reload(true, generation, 0);
            tracing::info!(trigger, generation, services, "policy reloaded");
            Outcome::Swapped(generation)
        }
        Ok(Err(e)) => {
            let count = match &e {
                crate::error::Error::Policy(policies::Error::Invalid(d)) => {
                    for line in d.iter() {
                        tracing::error!(trigger, "{line}");
                    }
                    d.len()
                }
                other => {
                    tracing::error!(trigger, "{other}");
                    1
                }
            };
            shared.metrics.reload(false, current.generation, count);
            tracing::error!(
                trigger,
                problems = count,
                serving = current.generation,
                "policy reload refused; still serving the previous snapshot"
            );
            Outcome::Refused(count)
        }
        Err(join) => {
            shared.metrics.reload(false, current.generation, 1);
            tracing::error!(trigger, error = %join, "policy reload failed");
            Outcome::Refused(1)
        }
    }
}

/// Builds the runtime again from the snapshot being served, with the registries' sets as they
/// are now, and swaps it in (after a registry brought a new set).
pub(crate) async fn rebuild_for_sources(shared: &Arc<Shared>) -> Outcome {
    let _one_at_a_time = shared.rebuilding.lock().await;
    let current = shared.current();
    let previous = current.clone();
    let sets = shared.idp_sources.sets();
    let built = tokio::task::spawn_blocking(move || {
        Runtime::rebuild((*previous.snapshot).clone(), 0, Some(&previous), &sets)
    })
    .await;
    match built {
        Ok(Ok(mut rt)) => {
            let generation = shared.next_generation();
            rt.generation = generation;
            let idps = rt.identity.idps.iter().count();
            shared.swap(rt);
            shared.metrics.reload(true, generation, 0);
            tracing::info!(generation, idps, "IdPs of the registries swapped in");
            refresh_logos(shared);
            Outcome::Swapped(generation)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, serving = current.generation, "cannot rebuild with the new IdP registry set; still serving the previous one");
            Outcome::Refused(1)
        }
        Err(join) => {
            tracing::error!(error = %join, "rebuild with the new IdP registry set failed");
            Outcome::Refused(1)
        }
    }
}

/// The background service that fetches every `[[idp_source]]` at start and every `refresh`, and
/// swaps a new verified set in ([`crate::ops::idp_sources`]).
pub struct SourceRefresher {
    shared: Arc<Shared>,
}

impl SourceRefresher {
    /// Refreshes `shared`'s sources.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl std::fmt::Debug for SourceRefresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceRefresher").finish_non_exhaustive()
    }
}

#[async_trait]
impl BackgroundService for SourceRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let count = self.shared.idp_sources.sources().len();
        if count == 0 {
            return;
        }
        // One loop per source, each on its own schedule; a slow registry delays only itself.
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..count {
            let shared = self.shared.clone();
            tasks.spawn(async move {
                loop {
                    let fresh = shared.idp_sources.refresh(index).await;
                    if fresh {
                        rebuild_for_sources(&shared).await;
                    }
                    tokio::time::sleep(shared.idp_sources.next_in(index, fresh)).await;
                }
            });
        }
        let _ = shutdown.changed().await;
        tasks.abort_all();
    }
}

/// Fetches, in the background, the logos of the current IdPs that are not cached yet.
fn refresh_logos(shared: &Arc<Shared>) {
    let urls: Vec<String> = shared
        .current()
        .identity
        .idps
        .iter()
        .filter_map(|i| i.logo.clone())
        .collect();
    let shared = shared.clone();
    tokio::spawn(async move { shared.logos.refresh(urls).await });
}

/// Directories to watch: the main file's and every policy file's. Watching directories (not
/// files) also sees files that editors and ConfigMaps replace by renaming.
fn watched_dirs(shared: &Shared) -> BTreeSet<PathBuf> {
    let rt = shared.current();
    let mut dirs: BTreeSet<PathBuf> = rt
        .snapshot
        .files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    dirs.insert(rt.snapshot.config.policies_dir.clone());
    // A renewed certificate (certbot's deploy, a copy) reloads like a changed policy.
    if let Some(tls) = &rt.snapshot.config.server.tls {
        dirs.extend(
            tls.files()
                .filter_map(|f| f.parent().map(Path::to_path_buf)),
        );
    }
    // So does a new CNS revocation list (a daily download).
    if let Some(cns) = &rt.snapshot.config.cns {
        dirs.extend(
            cns.files()
                .filter_map(|f| f.parent().map(Path::to_path_buf)),
        );
    }
    dirs
}

/// Which changed paths matter: the main file, and `*.toml` files of the policies directory
/// (new ones included). Anything else in those directories (a log file next to the
/// configuration, keys, editor backups) must not trigger reloads. Events carry the watched
/// directory's path joined with the file name, so plain comparisons suffice: this runs for
/// every event in those directories and must stay cheap.
#[derive(Debug, Clone)]
struct Relevant {
    main: PathBuf,
    policies_dir: PathBuf,
    /// The TLS certificate and key files, and `[cns]`'s CAs and revocation lists.
    certificates: Vec<PathBuf>,
}

impl Relevant {
    fn of(shared: &Shared) -> Self {
        let rt = shared.current();
        Self {
            main: shared.config_path().to_path_buf(),
            policies_dir: rt.snapshot.config.policies_dir.clone(),
            certificates: rt
                .snapshot
                .config
                .server
                .tls
                .iter()
                .flat_map(|t| t.files().map(Path::to_path_buf))
                .chain(
                    rt.snapshot
                        .config
                        .cns
                        .iter()
                        .flat_map(|c| c.files().map(Path::to_path_buf)),
                )
                .collect(),
        }
    }

    fn matches(&self, path: &Path) -> bool {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let in_policies = path.parent() == Some(self.policies_dir.as_path())
            || path
                .parent()
                .zip(self.policies_dir.file_name())
                .is_some_and(|(p, d)| {
                    // `policies` written as `./policies` or with a trailing slash.
                    p.file_name() == Some(d)
                });
        path.file_name() == self.main.file_name()
            || self.certificates.iter().any(|c| c == path)
            || (in_policies && name.ends_with(".toml") && !name.starts_with('.'))
            // ConfigMap volumes swap a `..data` symlink.
            || name.starts_with("..")
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let taken = self.watch.lock().ok().and_then(|mut w| w.take());
        let Some(mut watching) = taken else {
            tracing::error!("the reload service was started twice");
            return;
        };
        refresh_logos(&self.shared);
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP");
                None
            }
        };
        loop {
            let trigger = tokio::select! {
                Some(()) = watching.changes.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    while watching.changes.try_recv().is_ok() {}
                    "file change"
                }
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
                _ = shutdown.changed() => break,
            };
            if let Outcome::Swapped(_) = reload(&self.shared, trigger).await {
                refresh_logos(&self.shared);
                watching.rewatch(&self.shared);
                if let Ok(mut r) = self.relevant.write() {
                    *r = Relevant::of(&self.shared);
                }
            }
        }
    }
}
