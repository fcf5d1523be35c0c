//! A comune's back-end for the demo: a page that shows, readably, what varco sent it: the
//! identity headers (decoded) and the identity JWT, verified as a real back-end would (Ed25519
//! signature with the published key, `aud` of this comune, not expired).

use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use openssl::pkey::{PKey, Public};
use tokio::net::TcpListener;

/// One demo back-end.
pub(super) struct Backend {
    /// "Comune di Capannori".
    pub(super) comune: String,
    /// Its IPA code (the JWT audience starts with it).
    pub(super) ipa: String,
    /// The portal's origin, for the links back.
    pub(super) portal: String,
    /// The identity JWT's public key (what `/.sso/jwks.json` publishes).
    pub(super) jwt_key: PKey<Public>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("comune", &self.comune)
            .finish_non_exhaustive()
    }
}

/// Serves the back-end on `listener` until the process ends.
pub(super) async fn serve(listener: TcpListener, backend: Backend) {
    let backend = Arc::new(backend);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let b = backend.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let b = b.clone();
                async move { Ok::<_, Infallible>(b.page(&req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

/// Percent-decoding of varco's header values (non-ASCII and control bytes arrive encoded).
fn decoded(v: &str) -> String {
    let bytes: Vec<u8> =
        url::form_urlencoded::parse(format!("v={}", v.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Backend {
    /// Checks the JWT: signature, audience of this comune, lifetime. The claims, or why not.
    fn verify(&self, token: &str) -> Result<serde_json::Value, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("non è un JWT (tre parti)".into());
        };
        let header: serde_json::Value =
            serde_json::from_slice(&b64(h).ok_or("header non base64url")?)
                .map_err(|_| "header non JSON")?;
        if header["alg"] != "EdDSA" {
            return Err(format!("algoritmo inatteso {}", header["alg"]));
        }
        let signature = b64(s).ok_or("firma non base64url")?;
        let ok = openssl::sign::Verifier::new_without_digest(&self.jwt_key)
            .and_then(|mut v| v.verify_oneshot(&signature, format!("{h}.{c}").as_bytes()))
            .unwrap_or(false);
        if !ok {
            return Err("la firma NON è valida".into());
        }
        let claims: serde_json::Value =
            serde_json::from_slice(&b64(c).ok_or("claims non base64url")?)
                .map_err(|_| "claims non JSON")?;
        let aud = claims["aud"].as_str().unwrap_or("");
        if !aud.starts_with(&format!("{}/", self.ipa)) {
            return Err(format!("audience {aud} non è di questo Comune"));
        }
        let now = chrono::Utc::now().timestamp();
        if claims["exp"].as_i64().unwrap_or(0) < now {
            return Err("scaduto".into());
        }
        Ok(claims)
    }

    fn page(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let mut rows = Vec::new();
        let mut token = None;
        for (name, value) in req.headers() {
            let n = name.as_str();
            let v = value.to_str().unwrap_or("");
            if n == "x-varco-assertion" {
                token = Some(v.to_string());
                continue;
            }
            if n.starts_with("x-varco-") || n == "x-cf" || n == "x-codice-fiscale" {
                rows.push((n.to_string(), decoded(v)));
            }
        }
        let jwt = token.as_deref().map(|t| {
            self.verify(t).map(|claims| JwtView {
                audience: claims["aud"].as_str().unwrap_or("").to_string(),
                until: chrono::DateTime::from_timestamp(claims["exp"].as_i64().unwrap_or(0), 0)
                    .map(|t| t.format("%H:%M:%S UTC").to_string())
                    .unwrap_or_default(),
                claims: serde_json::to_string_pretty(&claims).unwrap_or_default(),
            })
        });
        let html = super::render(&BackendTemplate {
            chrome: super::Chrome::new(
                "servizio di prova",
                &self.comune,
                "back-end di prova: mostra ciò che varco gli invia",
                "demo-backend",
            ),
            path: req.uri().path(),
            rows,
            jwt,
            portal: &self.portal,
        });
        let csp = format!(
            "default-src 'none'; {}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            super::DEMO_STYLES
        );
        super::html_response(http::StatusCode::OK, html, Some(&csp))
    }
}

/// The verified identity JWT, as the page shows it.
struct JwtView {
    audience: String,
    until: String,
    claims: String,
}

#[derive(askama::Template)]
#[template(path = "demo_backend.html")]
struct BackendTemplate<'a> {
    chrome: super::Chrome,
    path: &'a str,
    rows: Vec<(String, String)>,
    jwt: Option<Result<JwtView, String>>,
    portal: &'a str,
}
