//! The configured OpenID providers: their configuration, varco's key or secret for each, and
//! what was learnt from them (discovery, signing keys), kept across reloads and refreshed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use josekit::jwk::JwkSet;
use policies::{ClientAuth, OidcConfig};

use super::error::OidcError;
use super::http::{check_url, Http};
use super::jose::RpKey;
use super::lock;
pub(crate) use super::metadata::ProviderMetadata;

/// How long a discovery document is used before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// How long a key set is used before it is fetched again (an unknown `kid` refreshes sooner).
const KEYS_TTL: Duration = Duration::from_secs(3600);
/// The least time between two fetches of a provider's keys for an unknown `kid` (and between two
/// attempts after a failure): a flood of tokens naming made-up keys costs the provider one
/// request a minute.
pub(crate) const KEYS_REFRESH_MIN: Duration = Duration::from_secs(60);
/// The least time between two discovery attempts of a provider that is down.
const RETRY_MIN: Duration = Duration::from_secs(10);

/// The client secret of `client_secret_basic`. Never prints.
#[derive(Clone)]
pub(crate) struct ClientSecret(String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

impl ClientSecret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Default)]
struct Learnt {
    metadata: Option<(Arc<ProviderMetadata>, Instant)>,
    last_discovery_failure: Option<Instant>,
    keys: Option<(Arc<JwkSet>, Instant)>,
    last_keys_fetch: Option<Instant>,
    /// The last fetch made because a token named a key the set lacked.
    last_unknown_kid_fetch: Option<Instant>,
}

/// One `[[oidc]]` provider, ready to use.
#[derive(Debug)]
pub struct OidcProvider {
    /// Its configuration.
    pub config: OidcConfig,
    pub(crate) key: Option<RpKey>,
    pub(crate) secret: Option<ClientSecret>,
    /// The federation that vouches for it (`federation = true`).
    pub(crate) federation: Option<Arc<super::federation::Federation>>,
    learnt: Arc<Mutex<Learnt>>,
}

/// Every configured provider, in configuration order, with the client they are reached with.
#[derive(Debug)]
pub struct OidcRegistry {
    providers: Vec<Arc<OidcProvider>>,
    federation: Option<Arc<super::federation::Federation>>,
    pub(crate) http: Http,
}

impl Default for OidcRegistry {
    fn default() -> Self {
        Self {
            providers: Vec::new(),
            federation: None,
            // A client that cannot even be built leaves no provider to reach anyway.
            #[allow(clippy::expect_used)]
            http: Http::new().expect("the HTTP client builds with fixed settings"),
        }
    }
}

impl OidcRegistry {
    /// Reads every `[[oidc]]` provider's key or secret, and `[oidc_federation]`'s keys. What
    /// `previous` learnt from a provider with the same issuer and client (discovery, keys) is
    /// kept: a reload costs the providers nothing.
    pub fn load(
        config: &policies::Config,
        previous: Option<&OidcRegistry>,
    ) -> Result<Self, Vec<crate::Error>> {
        let configs = &config.oidc;
        let mut errors = Vec::new();
        let federation = match &config.oidc_federation {
            None => None,
            Some(f) => {
                match super::federation::Federation::load(f, &config.server.public_url.origin()) {
                    Ok(f) => Some(Arc::new(f)),
                    Err(e) => {
                        errors.extend(e);
                        None
                    }
                }
            }
        };
        let mut providers = Vec::new();
        for c in configs {
            let key = match &c.key {
                Some(path) => match RpKey::load(path) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                },
                None => None,
            };
            let secret = match &c.client_auth {
                ClientAuth::ClientSecretBasic { secret_file } => match read_secret(secret_file) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                },
                ClientAuth::PrivateKeyJwt => None,
            };
            let learnt = previous
                .and_then(|p| {
                    p.providers
                        .iter()
                        .find(|o| o.config.issuer == c.issuer && o.config.client_id == c.client_id)
                })
                .map_or_else(Default::default, |o| o.learnt.clone());
            providers.push(Arc::new(OidcProvider {
                config: c.clone(),
                key,
                secret,
                federation: federation.clone().filter(|_| c.federation),
                learnt,
            }));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let http = match previous {
            Some(p) => p.http.clone(),
            None => Http::new().map_err(|e| vec![e])?,
        };
        Ok(Self {
            providers,
            federation,
            http,
        })
    }

    /// varco in the OpenID Connect Federation, when it is configured.
    pub fn federation(&self) -> Option<&super::federation::Federation> {
        self.federation.as_deref()
    }

    /// varco's entity configuration (the signed JWT `/.well-known/openid-federation` serves),
    /// when the federation is configured.
    pub fn entity_configuration(
        &self,
        config: &policies::Config,
    ) -> Option<Result<String, super::error::OidcError>> {
        let f = self.federation()?;
        // The relying party's OpenID Connect keys: those of the federation's providers.
        let mut keys: Vec<serde_json::Value> = Vec::new();
        for k in self
            .providers
            .iter()
            .filter(|p| p.config.federation)
            .filter_map(|p| p.key.as_ref())
        {
            if !keys.contains(k.public_jwk()) {
                keys.push(k.public_jwk().clone());
            }
        }
        Some(f.entity_configuration(config, &serde_json::json!({ "keys": keys })))
    }

    /// The provider with this issuer, exactly as configured.
    pub fn get(&self, issuer: &str) -> Option<&OidcProvider> {
        self.providers
            .iter()
            .find(|p| p.config.issuer == issuer)
            .map(|p| &**p)
    }

    /// Every provider.
    pub fn iter(&self) -> impl Iterator<Item = &OidcProvider> {
        self.providers.iter().map(|p| &**p)
    }

    /// The public keys varco signs with at the providers (a JWK Set), for their registration.
    pub fn public_jwks(&self) -> serde_json::Value {
        let mut keys: Vec<serde_json::Value> = Vec::new();
        for k in self.providers.iter().filter_map(|p| p.key.as_ref()) {
            if !keys.contains(k.public_jwk()) {
                keys.push(k.public_jwk().clone());
            }
        }
        serde_json::json!({ "keys": keys })
    }
}

fn read_secret(path: &std::path::Path) -> Result<ClientSecret, crate::Error> {
    let refuse = |reason: String| crate::Error::SpKey {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| refuse(format!("cannot read: {e}")))?;
    let secret = text.strip_suffix('\n').unwrap_or(&text);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        return Err(refuse("the client secret is empty".into()));
    }
    Ok(ClientSecret(secret.to_string()))
}

impl OidcProvider {
    /// A provider with nothing learnt yet, for tests of what needs no network.
    #[cfg(any(test, feature = "insecure-test-idp"))]
    pub(crate) fn for_tests(config: OidcConfig, key: Option<RpKey>) -> Self {
        Self {
            config,
            key,
            secret: None,
            federation: None,
            learnt: Arc::default(),
        }
    }

    /// Its discovery document: the cached one while fresh, else fetched again (a stale one keeps
    /// serving while the provider cannot be reached).
    pub(crate) async fn metadata(&self, http: &Http) -> Result<Arc<ProviderMetadata>, OidcError> {
        if let Some(f) = &self.federation {
            let resolved = f.resolve(http, &self.config.issuer).await?;
            check_endpoints(&self.config.issuer, &resolved.metadata)?;
            return Ok(resolved.metadata.clone());
        }
        let now = Instant::now();
        let stale = {
            let l = lock(&self.learnt);
            match &l.metadata {
                Some((m, at)) if now.duration_since(*at) < METADATA_TTL => return Ok(m.clone()),
                Some((m, _)) => Some(m.clone()),
                None => {
                    if l.last_discovery_failure
                        .is_some_and(|t| now.duration_since(t) < RETRY_MIN)
                    {
                        return Err(OidcError::Unavailable(format!(
                            "{}: discovery failed moments ago",
                            self.config.issuer
                        )));
                    }
                    None
                }
            }
        };
        match self.discover(http).await {
            Ok(m) => {
                let m = Arc::new(m);
                lock(&self.learnt).metadata = Some((m.clone(), Instant::now()));
                Ok(m)
            }
            Err(e) => {
                lock(&self.learnt).last_discovery_failure = Some(Instant::now());
                match stale {
                    Some(m) => {
                        tracing::warn!(error = %e, "OpenID provider discovery failed; the previous document keeps serving");
                        Ok(m)
                    }
                    None => Err(e),
                }
            }
        }
    }

    async fn discover(&self, http: &Http) -> Result<ProviderMetadata, OidcError> {
        let issuer = &self.config.issuer;
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let got = http.get(&url, None).await?;
        if got.status != 200 {
            return Err(OidcError::Unavailable(format!(
                "{url}: HTTP {}",
                got.status
            )));
        }
        let m: ProviderMetadata = serde_json::from_slice(&got.body)
            .map_err(|e| OidcError::Unavailable(format!("{url}: not a discovery document: {e}")))?;
        // OpenID Connect Discovery §4.3: the document must name the issuer it was asked of,
        // exactly (or one provider could speak for another).
        if m.issuer != *issuer {
            return Err(OidcError::Unavailable(format!(
                "{url}: the document is for issuer {:?}, not {issuer:?}",
                m.issuer
            )));
        }
        check_url(&m.jwks_uri)?;
        check_endpoints(issuer, &m)?;
        Ok(m)
    }

    /// Its signing keys: the cached set, unless it is old or lacks `kid` (then fetched again, at
    /// most once per [`KEYS_REFRESH_MIN`]).
    pub(crate) async fn keys(
        &self,
        http: &Http,
        metadata: &ProviderMetadata,
        kid: Option<&str>,
    ) -> Result<Arc<JwkSet>, OidcError> {
        // The federation's metadata carries the keys, vouched for by the chain.
        if let Some(inline) = &metadata.jwks {
            return JwkSet::from_bytes(inline.to_string())
                .map(Arc::new)
                .map_err(|e| OidcError::Federation(format!("bad jwks in the metadata: {e}")));
        }
        let now = Instant::now();
        let (cached, unknown_kid) = {
            let l = lock(&self.learnt);
            let within =
                |t: Option<Instant>| t.is_some_and(|t| now.duration_since(t) < KEYS_REFRESH_MIN);
            match &l.keys {
                Some((k, at)) => {
                    let has = kid.is_none_or(|kid| !k.get(kid).is_empty());
                    let fresh = now.duration_since(*at) < KEYS_TTL;
                    // A key the set has, fresh: nothing to fetch. A `kid` it lacks: fetched
                    // again at most once a minute, so that tokens naming made-up keys cost the
                    // provider little. A stale set whose refresh just failed keeps serving.
                    let keep = if has {
                        fresh || within(l.last_keys_fetch)
                    } else {
                        within(l.last_unknown_kid_fetch)
                    };
                    if keep {
                        return Ok(k.clone());
                    }
                    (Some(k.clone()), !has)
                }
                None if within(l.last_keys_fetch) => {
                    return Err(OidcError::Unavailable(format!(
                        "{}: the keys could not be fetched moments ago",
                        self.config.issuer
                    )))
                }
                None => (None, false),
            }
        };
        {
            let mut l = lock(&self.learnt);
            l.last_keys_fetch = Some(now);
            if unknown_kid {
                l.last_unknown_kid_fetch = Some(now);
            }
        }
        let fetched = async {
            let got = http.get(&metadata.jwks_uri, None).await?;
            if got.status != 200 {
                return Err(OidcError::Unavailable(format!(
                    "{}: HTTP {}",
                    metadata.jwks_uri, got.status
                )));
            }
            JwkSet::from_bytes(&got.body).map_err(|e| {
                OidcError::Unavailable(format!("{}: not a JWK Set: {e}", metadata.jwks_uri))
            })
        }
        .await;
        match fetched {
            Ok(set) => {
                let set = Arc::new(set);
                lock(&self.learnt).keys = Some((set.clone(), Instant::now()));
                Ok(set)
            }
            Err(e) => cached.ok_or(e),
        }
    }
}

/// Every endpoint https (plain http only for a loopback provider), and PKCE S256 offered.
fn check_endpoints(issuer: &str, m: &ProviderMetadata) -> Result<(), OidcError> {
    for u in [&m.authorization_endpoint, &m.token_endpoint]
        .into_iter()
        .chain(m.userinfo_endpoint.as_ref())
        .chain(m.end_session_endpoint.as_ref())
        .chain(Some(&m.jwks_uri).filter(|u| !u.is_empty()))
    {
        check_url(u)?;
        if issuer.starts_with("https:") && !u.starts_with("https:") {
            return Err(OidcError::Unavailable(format!(
                "{issuer}: an https provider with a plain http endpoint"
            )));
        }
    }
    if m.jwks_uri.is_empty() && m.jwks.is_none() {
        return Err(OidcError::Unavailable(format!(
            "{issuer}: neither jwks nor jwks_uri"
        )));
    }
    if let Some(methods) = &m.code_challenge_methods_supported {
        if !methods.iter().any(|x| x == "S256") {
            return Err(OidcError::Unavailable(format!("{issuer}: no PKCE S256")));
        }
    }
    Ok(())
}
