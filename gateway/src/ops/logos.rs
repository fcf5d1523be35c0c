//! IdP logos, served by varco from a local cache: a citizen's browser never loads them from the
//! IdPs' hosts, which would tell each of those hosts who opens which comune's login page.
//!
//! The logos an IdP's metadata names (`mdui:Logo`, https, or http on loopback) are fetched in
//! the background after the first load and after every reload, never on the request path and
//! never blocking a reload; until a logo is in the cache, the choice page shows the IdP's name
//! alone. A logo is decoration: one that cannot be fetched, is too large or is not an image is
//! left out (and logged), never an error. `data:` logos are inline already and need no cache.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;

/// Largest logo kept.
const MAX_BYTES: usize = 256 * 1024;
/// Time allowed for one logo.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One cached logo.
#[derive(Debug, Clone)]
pub(crate) struct Logo {
    /// Its name under `/.sso/logos/`: a digest of the URL and the bytes.
    pub id: String,
    /// `image/png`, `image/svg+xml`, `image/jpeg`, `image/gif` or `image/webp`.
    pub content_type: &'static str,
    /// The image.
    pub bytes: Bytes,
}

/// The cache: remote URL → logo. It outlives reloads, so a reload fetches only new logos.
#[derive(Debug)]
pub(crate) struct Logos {
    by_url: RwLock<HashMap<String, Logo>>,
    /// Made at the first logo to fetch: loading the system's CA roots costs tens of
    /// milliseconds, which a gateway without IdP logos never pays.
    client: OnceLock<Client>,
}

impl Default for Logos {
    fn default() -> Self {
        Self::new()
    }
}

impl Logos {
    /// An empty cache.
    pub(crate) fn new() -> Self {
        Self {
            by_url: RwLock::new(HashMap::new()),
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> &Client {
        self.client.get_or_init(|| {
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(hyper_tls::HttpsConnector::new())
        })
    }

    /// Where the choice page finds the logo of `remote`: its local URL once cached; `data:`
    /// logos as they are; `None` until then (no hot-linking, ever).
    pub(crate) fn local_url(&self, remote: &str) -> Option<String> {
        if remote.starts_with("data:") {
            return Some(remote.to_string());
        }
        let cache = self.by_url.read().ok()?;
        cache.get(remote).map(|l| format!("/.sso/logos/{}", l.id))
    }

    /// The logo served as `/.sso/logos/{id}`.
    pub(crate) fn get(&self, id: &str) -> Option<Logo> {
        let cache = self.by_url.read().ok()?;
        cache.values().find(|l| l.id == id).cloned()
    }

    /// Fetches every logo of `remotes` not cached yet (one after the other: a handful of IdPs).
    pub(crate) async fn refresh(&self, remotes: Vec<String>) {
        for url in remotes {
            if url.starts_with("data:") || self.by_url.read().is_ok_and(|c| c.contains_key(&url)) {
                continue;
            }
            let fetched = tokio::time::timeout(TIMEOUT, fetch(self.client(), &url))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {TIMEOUT:?}")));
            match fetched {
                Ok(logo) => {
                    tracing::info!(%url, bytes = logo.bytes.len(), "IdP logo cached");
                    if let Ok(mut c) = self.by_url.write() {
                        c.insert(url, logo);
                    }
                }
                Err(why) => tracing::warn!(%url, "IdP logo left out: {why}"),
            }
        }
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_tls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<Bytes>,
>;

async fn fetch(client: &Client, url: &str) -> Result<Logo, String> {
    use http_body_util::BodyExt as _;
    let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let response = client.get(uri).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let declared = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let content_type = match declared.as_str() {
        "image/png" => "image/png",
        "image/svg+xml" => "image/svg+xml",
        "image/jpeg" => "image/jpeg",
        "image/gif" => "image/gif",
        "image/webp" => "image/webp",
        other => return Err(format!("not an image ({other:?})")),
    };
    let mut body = Vec::new();
    let mut incoming = response.into_body();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(chunk) = frame.data_ref() {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(format!("larger than {MAX_BYTES} bytes"));
            }
            body.extend_from_slice(chunk);
        }
    }
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(url.as_bytes());
    h.update([0]);
    h.update(&body);
    let id = idp_bridge::to_hex(&h.finalize()[..12]);
    Ok(Logo {
        id,
        content_type,
        bytes: Bytes::from(body),
    })
}
