//! `[server.tls] http_redirect`: the plain HTTP listener of a varco that terminates TLS. It
//! answers every request for a host varco serves with a permanent redirect (308, which keeps the
//! method and body) to the same host, path and query over HTTPS, and serves the ACME HTTP-01
//! challenges an ACME client (certbot `--webroot`) writes into `acme_challenge_dir`, so that
//! ops can renew certificates without stopping varco. Nothing else: no page, no session.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::state::Shared;

/// Longest ACME token accepted (RFC 8555 tokens are 43 base64url characters).
const MAX_TOKEN: usize = 256;

/// The redirecting application.
#[derive(Debug)]
pub(crate) struct HttpsRedirect {
    shared: Arc<Shared>,
    acme_dir: Option<PathBuf>,
}

impl HttpsRedirect {
    /// Redirects for `shared`'s hosts; serves challenges from `acme_dir`.
    pub(crate) fn new(shared: Arc<Shared>, acme_dir: Option<PathBuf>) -> Self {
        Self { shared, acme_dir }
    }
}

fn plain(status: StatusCode, body: &[u8]) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body.to_vec())
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

/// A token as ACME writes them: base64url characters only (no `/`, no `..`).
fn valid_token(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TOKEN
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[async_trait]
impl ServeHttp for HttpsRedirect {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let path = req.uri.path();
        if let Some(token) = path.strip_prefix("/.well-known/acme-challenge/") {
            let Some(dir) = &self.acme_dir else {
                return plain(StatusCode::NOT_FOUND, b"not found\n");
            };
            if !valid_token(token) {
                return plain(StatusCode::NOT_FOUND, b"not found\n");
            }
            return match tokio::fs::read(dir.join(token)).await {
                Ok(body) if body.len() <= 4096 => {
                    let mut r = plain(StatusCode::OK, &body);
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/octet-stream"),
                    );
                    r
                }
                _ => plain(StatusCode::NOT_FOUND, b"not found\n"),
            };
        }
        let rt = self.shared.current();
        let Some(host) = crate::request::target::request_host(req).filter(|h| rt.serves_host(h))
        else {
            return plain(StatusCode::NOT_FOUND, b"unknown host\n");
        };
        // The port citizens use for HTTPS is the public URL's (a NAT or a second front may map
        // it), never the listener's own.
        let public = &rt.snapshot.config.server.public_url.url;
        let port = match public.port() {
            Some(p) if p != 443 => format!(":{p}"),
            _ => String::new(),
        };
        let target = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let location = format!("https://{host}{port}{target}");
        let mut r = plain(StatusCode::PERMANENT_REDIRECT, b"");
        match http::HeaderValue::from_str(&location) {
            Ok(v) => {
                r.headers_mut().insert(http::header::LOCATION, v);
                r
            }
            Err(_) => plain(StatusCode::BAD_REQUEST, b"bad request\n"),
        }
    }
}
