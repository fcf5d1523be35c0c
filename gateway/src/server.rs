//! Assembling and running one gateway: the public proxy service, the admin listener and the
//! reloader, on a pingora server; and how it stops or hands over to its successor.
//!
//! * `SIGHUP` reloads (see [`crate::reload`]).
//! * `SIGTERM` drains: `/readyz` fails and every answer closes its connection for
//!   [`TERM_DRAIN`], so that a load balancer and keep-alive clients move away; then the
//!   listeners close and requests in flight finish.
//! * `SIGINT` stops at once (but for requests in flight).
//! * `SIGQUIT` hands over to `varco run --upgrade` (which sends it): the listening sockets pass
//!   to the new process over a Unix socket (pingora's hand-over), both accept for pingora's 5 s,
//!   every answer of the old one closes its connection meanwhile, then the old one drains and
//!   exits. The new process writes the audit trail once the old one has let go of it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::error::{Error, Result};
use crate::ops::admin::Admin;
use crate::ops::reload::Reloader;
use crate::request::Proxy;
use crate::state::{Shared, Start};

/// How long `SIGTERM` drains before the listeners close.
pub const TERM_DRAIN: Duration = Duration::from_secs(2);

/// How the server is told to stop.
pub enum Stop {
    /// SIGINT/SIGTERM: a short grace period for requests in flight, then exit.
    Signals,
    /// A notification (tests, the demo): stop at once.
    Notify(Arc<tokio::sync::Notify>),
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::Signals => "Stop::Signals",
            Stop::Notify(_) => "Stop::Notify",
        })
    }
}

struct SignalStop(Arc<Shared>);

#[async_trait]
impl ShutdownSignalWatch for SignalStop {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {
                tracing::info!(seconds = TERM_DRAIN.as_secs(), "SIGTERM: draining, then stopping");
                self.0.drain();
                tokio::time::sleep(TERM_DRAIN).await;
                ShutdownSignal::GracefulTerminate
            }
            _ = int.recv() => ShutdownSignal::GracefulTerminate,
            _ = quit.recv() => {
                tracing::info!("SIGQUIT: handing the listeners over to the new process, then draining");
                self.0.drain();
                ShutdownSignal::GracefulUpgrade
            }
        }
    }
}

struct NotifyStop(Arc<tokio::sync::Notify>);

#[async_trait]
impl ShutdownSignalWatch for NotifyStop {
    async fn recv(&self) -> ShutdownSignal {
        self.0.notified().await;
        ShutdownSignal::FastShutdown
    }
}

/// Loads the configuration and serves it until stopped. Blocks; call it from a plain thread, not
/// from inside a tokio runtime (pingora creates its own).
pub fn run(config_path: &Path, stop: Stop) -> Result<()> {
    run_as(config_path, stop, Start::Fresh)
}

/// [`run`], fresh or taking over from the running varco of this configuration.
pub fn run_as(config_path: &Path, stop: Stop, start: Start) -> Result<()> {
    let shared = Arc::new(Shared::load_for(config_path, start)?);
    serve_as(shared, stop, start)
}

/// Serves an already loaded gateway until stopped.
pub fn serve(shared: Arc<Shared>, stop: Stop) -> Result<()> {
    serve_as(shared, stop, Start::Fresh)
}

/// Where one gateway keeps its process files: its PID and the hand-over socket, in
/// `varco.run/` beside the audit trail (a directory that two gateways cannot share), readable by
/// varco's user alone: pingora makes the socket world-writable, and whoever could connect to it
/// during an upgrade could hand the new process listeners of their choosing.
#[derive(Debug, Clone)]
pub struct ProcessFiles {
    /// `varco.run/varco.pid`.
    pub pid: PathBuf,
    /// `varco.run/varco.upgrade.sock`.
    pub upgrade_socket: PathBuf,
}

impl ProcessFiles {
    /// The files of the gateway configured in `shared`.
    pub fn of(shared: &Shared) -> Self {
        let rt = shared.current();
        let audit = &rt.snapshot.config.sp.audit_log;
        let dir = audit
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = dir.join("varco.run");
        Self {
            pid: dir.join("varco.pid"),
            upgrade_socket: dir.join("varco.upgrade.sock"),
        }
    }
}

/// Unix socket paths are limited to 108 bytes on Linux (pingora would panic past it).
const MAX_SOCKET_PATH: usize = 100;

/// Before an upgrade: finds the running process and tells it to hand over once this one
/// listens for the sockets.
fn ask_for_handover(files: &ProcessFiles) -> Result<()> {
    let fail = |m: String| Error::Upgrade(m);
    let text = std::fs::read_to_string(&files.pid).map_err(|e| {
        fail(format!(
            "no running varco to take over ({}: {e})",
            files.pid.display()
        ))
    })?;
    let old: i32 = text
        .trim()
        .parse()
        .map_err(|_| fail(format!("{}: not a process ID", files.pid.display())))?;
    let old = nix::unistd::Pid::from_raw(old);
    // Signal 0 only checks that the process exists and may be signalled.
    if old.as_raw() <= 0 || nix::sys::signal::kill(old, None).is_err() {
        return Err(fail(format!(
            "process {old} (from {}) is not running; start varco without --upgrade",
            files.pid.display()
        )));
    }
    let _ = std::fs::remove_file(&files.upgrade_socket);
    let socket = files.upgrade_socket.clone();
    std::thread::Builder::new()
        .name("varco-handover".into())
        .spawn(move || {
            // pingora binds the socket in bootstrap and waits there for the old process.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !socket.exists() {
                if std::time::Instant::now() > deadline {
                    tracing::error!(socket = %socket.display(), "the hand-over socket never appeared");
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            tracing::info!(pid = old.as_raw(), "asking the running varco to hand over (SIGQUIT)");
            if let Err(e) = nix::sys::signal::kill(old, nix::sys::signal::Signal::SIGQUIT) {
                tracing::error!(pid = old.as_raw(), error = %e, "cannot signal the running varco");
            }
        })
        .map_err(|e| fail(format!("cannot start the hand-over: {e}")))?;
    Ok(())
}

/// [`serve`], fresh or taking over the listeners of the running varco.
pub fn serve_as(shared: Arc<Shared>, stop: Stop, start: Start) -> Result<()> {
    let rt = shared.current();
    let server_cfg = &rt.snapshot.config.server;
    let files = ProcessFiles::of(&shared);
    let socket = files.upgrade_socket.to_string_lossy().into_owned();
    if socket.len() > MAX_SOCKET_PATH {
        return Err(Error::Upgrade(format!(
            "{socket}: the hand-over socket's path is longer than {MAX_SOCKET_PATH} bytes; put the audit trail in a shorter directory"
        )));
    }
    if let Some(dir) = files.pid.parent() {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)));
        if let Err(e) = made {
            return Err(Error::Upgrade(format!("{}: {e}", dir.display())));
        }
    }
    match start {
        Start::Fresh => {
            let tls_addrs = server_cfg
                .tls
                .iter()
                .flat_map(|t| std::iter::once(t.listen).chain(t.http_redirect));
            for addr in [server_cfg.listen, server_cfg.admin_listen]
                .into_iter()
                .chain(tls_addrs)
            {
                // pingora panics on a listener it cannot bind; find out first and say why.
                std::net::TcpListener::bind(addr).map_err(|e| Error::Listen {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?;
            }
        }
        // The listeners come from the running process.
        Start::Upgrade => ask_for_handover(&files)?,
    }
    let conf = ServerConf {
        threads: server_cfg.threads,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(5),
        upgrade_sock: socket,
        upgrade_sock_connect_accept_max_retries: Some(10),
        ..Default::default()
    };
    let opt = pingora::server::configuration::Opt {
        upgrade: start == Start::Upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();
    if let Err(e) = std::fs::write(&files.pid, format!("{}\n", std::process::id())) {
        tracing::warn!(path = %files.pid.display(), error = %e, "cannot write the PID file; `varco run --upgrade` will not find this process");
    }

    // The fast path in front of pingora's proxy, which serves whatever the fast path does not.
    let mut proxy = Service::new(
        "varco".to_string(),
        crate::fast::FastApp::new(
            pingora::proxy::http_proxy(&server.configuration, Proxy::new(shared.clone())),
            shared.clone(),
        ),
    );
    proxy.add_tcp(&server_cfg.listen.to_string());
    let mut redirect = None;
    if let (Some(tls), Some(certs)) = (&server_cfg.tls, &shared.tls) {
        let settings = crate::tls::settings(certs.clone())?;
        proxy.add_tls_with_settings(&tls.listen.to_string(), None, settings);
        if let Some(addr) = tls.http_redirect {
            let mut s = Service::new(
                "varco http redirect".to_string(),
                HttpServer::new_app(crate::request::https_redirect::HttpsRedirect::new(
                    shared.clone(),
                    tls.acme_challenge_dir.clone(),
                )),
            );
            s.add_tcp(&addr.to_string());
            s.threads = Some(1);
            redirect = Some(s);
        }
    }

    let mut admin = Service::new(
        "varco admin".to_string(),
        HttpServer::new_app(Admin::new(shared.clone())),
    );
    admin.add_tcp(&server_cfg.admin_listen.to_string());
    admin.threads = Some(1);

    let reloader = background_service("varco reload", Reloader::new(shared.clone()));
    let sources = background_service(
        "varco idp sources",
        crate::ops::reload::SourceRefresher::new(shared.clone()),
    );

    server.add_service(proxy);
    server.add_service(admin);
    server.add_service(reloader);
    server.add_service(sources);
    if let Some(r) = redirect {
        server.add_service(r);
    }
    tracing::info!(
        listen = %server_cfg.listen,
        admin = %server_cfg.admin_listen,
        portal = %server_cfg.public_url.url,
        services = rt.snapshot.services().count(),
        "varco started"
    );
    drop(rt);
    let shutdown_signal: Box<dyn ShutdownSignalWatch> = match stop {
        Stop::Signals => Box::new(SignalStop(shared.clone())),
        Stop::Notify(n) => Box::new(NotifyStop(n)),
    };
    server.run(RunArgs { shutdown_signal });
    // After a hand-over the file names the new process: leave it.
    let ours = format!("{}", std::process::id());
    if std::fs::read_to_string(&files.pid).is_ok_and(|t| t.trim() == ours) {
        let _ = std::fs::remove_file(&files.pid);
    }
    Ok(())
}
