//! The reference row of `benches/load.sh`: a bare pingora `ProxyHttp` that does nothing but pick
//! the back-end (no routing, no headers, no logging), with the same allocator and thread count
//! as varco. What it costs beside nginx is pingora's own share of varco's cost.
//!
//!     bare-pingora LISTEN BACKEND THREADS     e.g. bare-pingora 127.0.0.1:18187 127.0.0.1:18181 2

use async_trait::async_trait;
use pingora::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    backend: std::net::SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.backend, false, String::new())))
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare-pingora LISTEN BACKEND THREADS";
    let listen = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let backend = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let threads: usize = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    // SIGTERM stops it within a second, as varco's own settings do (pingora waits a minute).
    let conf = pingora::server::configuration::ServerConf {
        threads,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Bare { backend });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever()
}
