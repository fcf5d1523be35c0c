//! Assembling and running one gateway: the public proxy service, the admin listener and the
//! reloader, on a pingora server.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::admin::Admin;
use crate::error::{Error, Result};
use crate::proxy::Proxy;
use crate::reload::Reloader;
use crate::state::Shared;

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

struct SignalStop;

#[async_trait]
impl ShutdownSignalWatch for SignalStop {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => ShutdownSignal::GracefulTerminate,
            _ = int.recv() => ShutdownSignal::GracefulTerminate,
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
    let shared = Arc::new(Shared::load(config_path)?);
    serve(shared, stop)
}

/// Serves an already loaded gateway until stopped.
pub fn serve(shared: Arc<Shared>, stop: Stop) -> Result<()> {
    let rt = shared.current();
    let server_cfg = &rt.snapshot.config.server;
    for addr in [server_cfg.listen, server_cfg.admin_listen] {
        // pingora panics on a listener it cannot bind; find out first and say why.
        std::net::TcpListener::bind(addr).map_err(|e| Error::Listen {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
    }
    let conf = ServerConf {
        threads: server_cfg.threads,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(5),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Proxy::new(shared.clone()),
        "varco",
    );
    proxy.add_tcp(&server_cfg.listen.to_string());

    let mut admin = Service::new(
        "varco admin".to_string(),
        HttpServer::new_app(Admin::new(shared.clone())),
    );
    admin.add_tcp(&server_cfg.admin_listen.to_string());
    admin.threads = Some(1);

    let reloader = background_service("varco reload", Reloader::new(shared.clone()));

    server.add_service(proxy);
    server.add_service(admin);
    server.add_service(reloader);
    tracing::info!(
        listen = %server_cfg.listen,
        admin = %server_cfg.admin_listen,
        portal = %server_cfg.public_url.url,
        services = rt.snapshot.services().count(),
        "varco started"
    );
    drop(rt);
    let shutdown_signal: Box<dyn ShutdownSignalWatch> = match stop {
        Stop::Signals => Box::new(SignalStop),
        Stop::Notify(n) => Box::new(NotifyStop(n)),
    };
    server.run(RunArgs { shutdown_signal });
    Ok(())
}
