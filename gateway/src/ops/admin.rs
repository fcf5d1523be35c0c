//! The admin listener: `/metrics` (Prometheus text), `/healthz`, `/readyz`, and nothing else.
//! It runs on its own address so that none of it is reachable through the public listener.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::state::Shared;

/// The admin application.
#[derive(Debug)]
pub(crate) struct Admin {
    shared: Arc<Shared>,
}

impl Admin {
    /// Serves `shared`'s metrics and health.
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        if !matches!(req.method, http::Method::GET | http::Method::HEAD) {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"method not allowed\n".to_vec(),
            );
        }
        match req.uri.path() {
            "/metrics" => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.shared.metrics.render(),
            ),
            "/healthz" => reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                // Not ready while the session store does not answer: a load balancer then sends
                // citizens to an instance that can log them in.
                use crate::store::StateStore as _;
                if self.shared.is_draining() {
                    return reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        b"not ready: draining\n".to_vec(),
                    );
                }
                if let Err(e) = self.shared.store.ping().await {
                    let body = format!("not ready: {e}\n");
                    return reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        body.into_bytes(),
                    );
                }
                // A registry whose set expired (or never came) leaves its IdPs out: the login
                // page would lack them, so this instance is not ready.
                if let Some(why) = self.shared.idp_sources.unready() {
                    return reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        format!("not ready: {why}\n").into_bytes(),
                    );
                }
                let rt = self.shared.current();
                let body = format!(
                    "ready: policy generation {}, {} services\n",
                    rt.generation,
                    rt.snapshot.services().count()
                );
                reply(StatusCode::OK, "text/plain", body.into_bytes())
            }
            _ => reply(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}
