//! The one HTTP client that talks to OpenID providers: no redirects followed, short timeouts,
//! bounded bodies, and only the URLs a provider may use (https, or plain http on loopback).

use std::time::Duration;

use super::error::OidcError;

/// The largest body read from a provider (discovery, keys, token and UserInfo answers are a few
/// KiB).
pub(crate) const MAX_BODY: usize = 256 * 1024;

/// A client for the providers' endpoints.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
}

/// An answer, read to the end (bounded).
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) body: Vec<u8>,
}

impl Http {
    /// A client with varco's limits.
    pub(crate) fn new() -> Result<Self, crate::Error> {
        let client = reqwest::Client::builder()
            // A provider that redirects its token endpoint elsewhere is misconfigured or
            // compromised: the code and the client assertion go nowhere but where discovery said.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("varco/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::Error::Oidc(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client })
    }

    /// `GET url`, with a bearer token when given.
    pub(crate) async fn get(&self, url: &str, bearer: Option<&str>) -> Result<Fetched, OidcError> {
        check_url(url)?;
        let mut r = self
            .client
            .get(url)
            .header("accept", "application/json, application/jwt");
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        read(url, r.send().await).await
    }

    /// `POST url` with a form, and HTTP Basic credentials when given.
    pub(crate) async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<Fetched, OidcError> {
        check_url(url)?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut r = self
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body);
        if let Some((user, password)) = basic {
            // RFC 6749 §2.3.1: both parts form-encoded before the Basic encoding.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            r = r.basic_auth(enc(user), Some(enc(password)));
        }
        read(url, r.send().await).await
    }
}

async fn read(
    url: &str,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<Fetched, OidcError> {
    let unavailable =
        |e: &dyn std::fmt::Display| OidcError::Unavailable(format!("{}: {e}", strip_query(url)));
    let mut resp = sent.map_err(|e| unavailable(&e))?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(unavailable(&"the answer is too large"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| unavailable(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(unavailable(&"the answer is too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        content_type,
        body,
    })
}

impl Fetched {
    /// Whether the body is JSON (`application/json`, with or without parameters).
    pub(crate) fn is_json(&self) -> bool {
        self.content_type.split(';').next().map(str::trim) == Some("application/json")
    }
}

/// https, or plain http to loopback; nothing else (no `file:`, no `http://` over the network).
pub(crate) fn check_url(url: &str) -> Result<(), OidcError> {
    let parsed = url::Url::parse(url)
        .map_err(|_| OidcError::Unavailable(format!("not a URL: {}", strip_query(url))))?;
    let host = parsed.host_str().unwrap_or("");
    match parsed.scheme() {
        "https" if !host.is_empty() => Ok(()),
        "http" if policies::is_loopback_host(host) => Ok(()),
        _ => Err(OidcError::Unavailable(format!(
            "refused endpoint (https only, plain http on loopback): {}",
            strip_query(url)
        ))),
    }
}

/// A URL as it may be logged: without its query.
pub(crate) fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or("")
}
