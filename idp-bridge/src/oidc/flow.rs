//! The authorization code flow behind the login door: the authorization request out
//! ([`start`]), the callback in ([`finish`]): token request, ID token, UserInfo, principal.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use policies::{Attribute, AttributeMask, ClientAuth, IdpKind, Level};
use serde_json::{json, Map, Value};
use sha2::Digest as _;

use super::error::OidcError;
use super::jose::{half_hash, verify, VerifyError};
pub(crate) use super::pending::OidcPending;
use super::provider::{OidcProvider, ProviderMetadata};
use crate::audit::{AuditKind, AuditRecord};
use crate::login::model::{
    AuditSink, FinishError, LoginStart, Outgoing, PendingLogin, Sp, StartError, Started,
    VerifiedLogin,
};
use crate::principal::{Principal, Protocol};
use crate::secret::{random_token, BrowserBinding, RelayDigest};

pub use super::metadata::CALLBACK_PATH;
/// How far the clocks of varco and a provider may differ.
const SKEW_SECS: i64 = 120;
/// The longest a field of the callback may be.
const MAX_FIELD: usize = 4096;

/// The redirect URI of this configuration.
pub fn redirect_uri(config: &policies::Config) -> String {
    format!("{}{CALLBACK_PATH}", config.server.public_url.origin())
}

/// The `acr_values` for `level`: every mapped level that satisfies it, weakest first (the
/// order of preference: a citizen is not made to use more than the service needs).
fn acr_values(p: &OidcProvider, level: Level) -> Vec<&str> {
    p.config
        .acr
        .iter()
        .filter(|(l, _)| *l >= level)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// What `prompt` asks: a new authentication from level 2 up and always for CIE (as SAML's
/// `ForceAuthn`), and the consent screen for the SPID/CIE profile.
fn prompt(kind: IdpKind, level: Level) -> Option<&'static str> {
    let login = level >= Level::SpidL2 || kind == IdpKind::Cie;
    match (kind, login) {
        (IdpKind::Spid | IdpKind::Cie, true) => Some("consent login"),
        (IdpKind::Spid | IdpKind::Cie, false) => Some("consent"),
        (IdpKind::Other, true) => Some("login"),
        (IdpKind::Other, false) => None,
    }
}

use super::unix_now as now_secs;

/// The attributes of `wanted` that this provider releases, in the `claims` request parameter's
/// form (`{"userinfo": {claim: null, …}}`).
fn claims_request(p: &OidcProvider, wanted: AttributeMask) -> Map<String, Value> {
    let mut userinfo = Map::new();
    for a in wanted.iter() {
        if let Some(c) = p.config.claim_for(a) {
            userinfo.insert(c.to_string(), Value::Null);
        }
    }
    let mut m = Map::new();
    m.insert("userinfo".into(), Value::Object(userinfo));
    m
}

/// Sends the citizen to `provider`'s authorization endpoint; records the request.
pub(crate) async fn start(
    sp: Sp<'_>,
    provider: &OidcProvider,
    req: LoginStart<'_>,
    audit: &impl AuditSink,
) -> Result<Started, StartError> {
    let md = provider
        .metadata(&sp.oidc.http)
        .await
        .map_err(StartError::Provider)?;
    let mut acr = acr_values(provider, req.level);
    // The federation's reference provider authenticates at the last value it is given: it gets
    // only the level asked (the ID token's acr is still checked to be at least that).
    if provider.config.federation {
        acr.truncate(1);
    }
    let Some(acr) = Some(acr).filter(|v| !v.is_empty()) else {
        return Err(StartError::Provider(OidcError::Unavailable(format!(
            "{} maps no acr value to {} or above",
            provider.config.issuer, req.level
        ))));
    };
    if md.require_signed_request_object && provider.key.is_none() {
        return Err(StartError::Provider(OidcError::Unavailable(format!(
            "{} requires signed request objects: give it a `key`",
            provider.config.issuer
        ))));
    }
    // SPID asks for at least 32 characters of state and nonce; these are 64 hex digits each.
    let state = random_token(32, false);
    let nonce = random_token(32, false);
    let code_verifier = random_token(32, false);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(code_verifier.as_bytes()));
    let redirect_uri = redirect_uri(sp.config);
    let scope = provider.config.scopes.join(" ");
    let acr_values = acr.join(" ");
    let asked: AttributeMask = req
        .wanted
        .iter()
        .filter(|a| provider.config.claim_for(*a).is_some())
        .collect();

    let mut params: Vec<(&str, String)> = vec![
        ("client_id", provider.config.client_id.clone()),
        ("response_type", "code".into()),
        ("scope", scope.clone()),
        ("redirect_uri", redirect_uri.clone()),
        ("state", state.clone()),
        ("nonce", nonce.clone()),
        ("code_challenge", challenge.clone()),
        ("code_challenge_method", "S256".into()),
        ("acr_values", acr_values),
    ];
    // The federation's profile wants a list where OpenID Connect Core has a string: left out.
    if !provider.config.federation {
        params.push(("ui_locales", "it".into()));
    }
    if let Some(p) = prompt(provider.config.kind, req.level) {
        params.push(("prompt", p.into()));
    }
    if md.claims_parameter_supported && !asked.is_empty() {
        params.push((
            "claims",
            Value::Object(claims_request(provider, asked)).to_string(),
        ));
    }
    // The federation's profile always wants one.
    let use_request_object = provider.key.is_some()
        && (md.request_parameter_supported
            || md.require_signed_request_object
            || provider.config.federation);
    let query: Vec<(&str, String)> = match (&provider.key, use_request_object) {
        (Some(key), true) => {
            let now = now_secs();
            let mut claims = Map::new();
            for (k, v) in &params {
                let v = if *k == "claims" {
                    serde_json::from_str(v).unwrap_or(Value::Null)
                } else {
                    Value::String(v.clone())
                };
                claims.insert((*k).to_string(), v);
            }
            claims.insert("iss".into(), provider.config.client_id.clone().into());
            claims.insert("aud".into(), md.issuer.clone().into());
            claims.insert("iat".into(), now.into());
            claims.insert("exp".into(), (now + 300).into());
            claims.insert("jti".into(), random_token(16, true).into());
            let request = key
                .sign(claims, Some("oauth-authz-req+jwt"))
                .map_err(StartError::Provider)?;
            // OpenID Connect Core §6.1: these stay in the query too, with the same values.
            vec![
                ("client_id", provider.config.client_id.clone()),
                ("response_type", "code".into()),
                ("scope", scope),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256".into()),
                ("request", request),
            ]
        }
        _ => params.clone(),
    };
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let sep = if md.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!("{}{sep}{q}", md.authorization_endpoint);

    let state_digest = RelayDigest::of(state.as_bytes());
    let request_id = state_digest.to_param();
    // The audit keeps the request as sent, but the state only as its digest (it is the
    // browser's key to the pending login until the callback).
    let recorded: Map<String, Value> = params
        .iter()
        .map(|(k, v)| {
            let v = if *k == "state" {
                request_id.clone()
            } else {
                v.clone()
            };
            ((*k).to_string(), Value::String(v))
        })
        .collect();
    let message = json!({
        "authorization_endpoint": md.authorization_endpoint,
        "params": recorded,
        "request_object": use_request_object,
    })
    .to_string();
    let record = AuditRecord::new(
        AuditKind::AuthorizationRequest,
        &provider.config.issuer,
        &request_id,
        "sent",
        message.as_bytes(),
    );
    audit.record(record).await.map_err(StartError::Audit)?;
    let pending = PendingLogin::sent(request_id, Utc::now(), state_digest, asked, req).with_oidc(
        OidcPending {
            code_verifier,
            nonce: RelayDigest::of(nonce.as_bytes()),
            redirect_uri,
        },
    );
    Ok(Started {
        outgoing: Outgoing::Redirect(url),
        pending,
    })
}

/// The callback's query, read but not trusted.
#[derive(Clone, Default)]
pub(crate) struct OidcCallback {
    pub(crate) code: Option<String>,
    pub(crate) state: Option<String>,
    pub(crate) iss: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) error_description: Option<String>,
    pub(crate) malformed: Option<&'static str>,
}

impl OidcCallback {
    pub(crate) fn parse(query: &str) -> Self {
        let mut c = OidcCallback::default();
        // A bounded look, as for the ACS form.
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()).take(12) {
            let slot = match &*k {
                "code" => &mut c.code,
                "state" => &mut c.state,
                "iss" => &mut c.iss,
                "error" => &mut c.error,
                "error_description" => &mut c.error_description,
                _ => continue,
            };
            if slot.is_some() {
                c.malformed = Some("a parameter is repeated");
            } else if v.len() > MAX_FIELD {
                c.malformed = Some("a parameter is too long");
            } else {
                *slot = Some(v.into_owned());
            }
        }
        if c.state.is_none() && c.malformed.is_none() {
            c.malformed = Some("no state");
        }
        if c.code.is_none() && c.error.is_none() && c.malformed.is_none() {
            c.malformed = Some("neither code nor error");
        }
        c
    }

    /// The pending login's ID this callback names (the digest of its `state`).
    pub(crate) fn answers(&self) -> Option<String> {
        self.state
            .as_deref()
            .filter(|_| self.malformed.is_none())
            .map(|s| RelayDigest::of(s.as_bytes()).to_param())
    }

    /// The callback as the audit keeps it: the code (single-use, but a credential until used)
    /// and the state only as digests.
    fn for_audit(&self) -> Value {
        let digest = |v: &Option<String>| {
            v.as_deref()
                .map(|s| RelayDigest::of(s.as_bytes()).to_param())
        };
        json!({
            "code_sha256": digest(&self.code),
            "state_sha256": digest(&self.state),
            "iss": self.iss,
            "error": self.error,
            "error_description": self.error_description,
        })
    }
}

impl std::fmt::Debug for OidcCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcCallback")
            .field("code", &self.code.as_ref().map(|_| "[redacted]"))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// What the token endpoint answered, as the audit keeps it: the access and refresh tokens
/// redacted (bearer credentials), the ID token kept (it is what the provider asserted, as a SAML
/// assertion is kept).
fn redacted_token_response(body: &Value) -> Value {
    let mut b = body.clone();
    if let Value::Object(m) = &mut b {
        for k in ["access_token", "refresh_token"] {
            if m.contains_key(k) {
                m.insert(k.into(), "[redacted]".into());
            }
        }
    }
    b
}

/// Verifies the callback against its pending login, redeems the code and verifies what comes
/// back; records the exchange with the outcome.
pub(crate) async fn finish(
    sp: Sp<'_>,
    callback: OidcCallback,
    pending: Option<PendingLogin>,
    binding: Option<&BrowserBinding>,
    audit: &impl AuditSink,
) -> Result<VerifiedLogin, FinishError> {
    let mut exchange = Map::new();
    exchange.insert("callback".into(), callback.for_audit());
    let request_id = pending
        .as_ref()
        .map_or("-".into(), |p| p.request_id().to_string());
    let checked = check_callback(sp, &callback, pending, binding);
    let (provider, pending, code) = match checked {
        Ok(x) => x,
        Err(e) => {
            // Not verified in any way: kept in bounded form (a flood of junk fills nothing).
            let unverified = matches!(
                e,
                OidcError::Malformed(_) | OidcError::NoPendingLogin | OidcError::WrongBrowser
            );
            let issuer = match &e {
                OidcError::Provider { .. } | OidcError::MixUp(_) => {
                    callback.iss.clone().unwrap_or_else(|| "-".into())
                }
                _ => "-".into(),
            };
            let message = Value::Object(exchange).to_string();
            let outcome = format!("refused: {e}");
            let record = if unverified {
                AuditRecord::bounded(
                    AuditKind::AuthorizationResponse,
                    &issuer,
                    &request_id,
                    &outcome,
                    message.as_bytes(),
                )
            } else {
                AuditRecord::new(
                    AuditKind::AuthorizationResponse,
                    &issuer,
                    &request_id,
                    &outcome,
                    message.as_bytes(),
                )
            };
            let recorded = audit.record(record).await;
            recorded.map_err(FinishError::Audit)?;
            return Err(FinishError::Oidc(e));
        }
    };
    let result = redeem(sp, provider, &pending, &code, &mut exchange).await;
    let outcome = match &result {
        Ok(_) => "accepted".to_string(),
        Err(e) => format!("refused: {e}"),
    };
    let record = AuditRecord::new(
        AuditKind::TokenResponse,
        &provider.config.issuer,
        pending.request_id(),
        &outcome,
        Value::Object(exchange).to_string().as_bytes(),
    );
    let recorded = audit.record(record).await;
    let principal = result.map_err(FinishError::Oidc)?;
    recorded.map_err(FinishError::Audit)?;
    Ok(pending.verified(principal))
}

/// The checks that need no network: the pending login, the browser, the provider, `iss`.
fn check_callback<'s>(
    sp: Sp<'s>,
    callback: &OidcCallback,
    pending: Option<PendingLogin>,
    binding: Option<&BrowserBinding>,
) -> Result<(&'s OidcProvider, PendingLogin, String), OidcError> {
    if let Some(m) = callback.malformed {
        return Err(OidcError::Malformed(m));
    }
    let pending = pending.ok_or(OidcError::NoPendingLogin)?;
    let state = callback.state.as_deref().unwrap_or("");
    if RelayDigest::of(state.as_bytes()) != *pending.relay_state() || pending.oidc().is_none() {
        return Err(OidcError::NoPendingLogin);
    }
    match binding {
        Some(b) if b.digest() == *pending.binding() => {}
        _ => return Err(OidcError::WrongBrowser),
    }
    let provider = sp
        .oidc
        .get(pending.idp())
        .ok_or(OidcError::NoPendingLogin)?;
    // RFC 9207: an `iss` that names another provider is an answer from the wrong one (a mix-up).
    if let Some(iss) = &callback.iss {
        if *iss != provider.config.issuer {
            return Err(OidcError::MixUp(format!(
                "the callback's iss {iss:?} is not the provider the login went to ({:?})",
                provider.config.issuer
            )));
        }
    }
    if let Some(error) = &callback.error {
        return Err(OidcError::Provider {
            error: for_log(error, 64),
            description: for_log(callback.error_description.as_deref().unwrap_or(""), 256),
        });
    }
    let code = callback
        .code
        .clone()
        .ok_or(OidcError::Malformed("no code"))?;
    Ok((provider, pending, code))
}

/// The token request, the ID token, UserInfo: the network part of a callback.
async fn redeem(
    sp: Sp<'_>,
    provider: &OidcProvider,
    pending: &PendingLogin,
    code: &str,
    exchange: &mut Map<String, Value>,
) -> Result<crate::principal::VerifiedPrincipal, OidcError> {
    let http = &sp.oidc.http;
    let md = provider.metadata(http).await?;
    if md.authorization_response_iss_parameter_supported && exchange["callback"]["iss"].is_null() {
        return Err(OidcError::MixUp(
            "the provider sends iss with its answers, and this one has none".into(),
        ));
    }
    let oidc = pending.oidc().ok_or(OidcError::NoPendingLogin)?;
    let assertion;
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &oidc.redirect_uri),
        ("code_verifier", &oidc.code_verifier),
    ];
    let basic = match &provider.config.client_auth {
        ClientAuth::PrivateKeyJwt => {
            let key = provider
                .key
                .as_ref()
                .ok_or_else(|| OidcError::Unavailable("private_key_jwt without a key".into()))?;
            assertion = client_assertion(key, &provider.config.client_id, &md)?;
            form.extend([
                ("client_id", provider.config.client_id.as_str()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ]);
            None
        }
        ClientAuth::ClientSecretBasic { .. } => provider
            .secret
            .as_ref()
            .map(|s| (provider.config.client_id.as_str(), s.expose())),
    };
    let got = http.post_form(&md.token_endpoint, &form, basic).await?;
    let body: Value = serde_json::from_slice(&got.body).map_err(|_| {
        OidcError::Unavailable(format!(
            "{}: HTTP {}, not JSON",
            md.token_endpoint, got.status
        ))
    })?;
    exchange.insert("token_response".into(), redacted_token_response(&body));
    if got.status != 200 {
        let error = body["error"].as_str().unwrap_or("no error code");
        return Err(OidcError::TokenRefused(format!(
            "HTTP {}: {}",
            got.status,
            for_log(error, 64)
        )));
    }
    let token_type = body["token_type"].as_str().unwrap_or("");
    let access_token = body["access_token"].as_str();
    if !token_type.eq_ignore_ascii_case("bearer") || access_token.is_none() {
        return Err(OidcError::TokenRefused("no bearer access token".into()));
    }
    let id_token = body["id_token"]
        .as_str()
        .ok_or_else(|| OidcError::TokenRefused("no id_token".into()))?;
    let id_token = decrypted(provider, id_token)?;
    let claims = verified_jwt(provider, http, &md, &id_token).await?;
    let checked = check_id_token(
        provider,
        pending,
        &oidc.nonce,
        &claims.0,
        claims.1,
        access_token,
        now_secs(),
    )?;

    // UserInfo when a released attribute is not in the ID token.
    let mut released = claims.0;
    let missing = pending
        .asked()
        .iter()
        .filter_map(|a| provider.config.claim_for(a))
        .any(|c| !released.contains_key(c));
    if missing {
        if let (Some(endpoint), Some(token)) = (&md.userinfo_endpoint, access_token) {
            let info = userinfo(provider, http, &md, endpoint, token).await?;
            exchange.insert("userinfo".into(), Value::Object(info.clone()));
            // OpenID Connect Core §5.3.2: the UserInfo `sub` must be the ID token's.
            if info.get("sub").and_then(Value::as_str) != Some(checked.sub.as_str()) {
                return Err(OidcError::IdToken(
                    "the UserInfo sub is not the ID token's".into(),
                ));
            }
            for (k, v) in info {
                released.entry(k).or_insert(v);
            }
        }
    }
    Ok(principal(provider, checked, &released))
}

/// The client assertion of `private_key_jwt` (RFC 7523): iss = sub = client_id, aud = the token
/// endpoint, short-lived, with a fresh jti.
fn client_assertion(
    key: &super::jose::RpKey,
    client_id: &str,
    md: &ProviderMetadata,
) -> Result<String, OidcError> {
    let now = now_secs();
    let mut c = Map::new();
    c.insert("iss".into(), client_id.into());
    c.insert("sub".into(), client_id.into());
    c.insert("aud".into(), md.token_endpoint.clone().into());
    c.insert("iat".into(), now.into());
    c.insert("exp".into(), (now + 60).into());
    c.insert("jti".into(), random_token(16, true).into());
    key.sign(c, None)
}

/// A JWT from the provider, verified with its keys (fetched again once for an unknown `kid`).
pub(crate) async fn verified_jwt(
    provider: &OidcProvider,
    http: &super::http::Http,
    md: &ProviderMetadata,
    token: &str,
) -> Result<(Map<String, Value>, &'static str), OidcError> {
    let keys = provider.keys(http, md, None).await?;
    match verify(token, &keys) {
        Ok(c) => Ok(c),
        Err(VerifyError::UnknownKey(kid)) => {
            let keys = provider.keys(http, md, Some(&kid)).await?;
            verify(token, &keys).map_err(|e| match e {
                VerifyError::UnknownKey(k) => {
                    OidcError::IdToken(format!("signed with an unknown key {k:?}"))
                }
                VerifyError::Refused(m) => OidcError::IdToken(m),
            })
        }
        Err(VerifyError::Refused(m)) => Err(OidcError::IdToken(m)),
    }
}

async fn userinfo(
    provider: &OidcProvider,
    http: &super::http::Http,
    md: &ProviderMetadata,
    endpoint: &str,
    token: &str,
) -> Result<Map<String, Value>, OidcError> {
    let got = http.get(endpoint, Some(token)).await?;
    if got.status != 200 {
        return Err(OidcError::Unavailable(format!(
            "{endpoint}: HTTP {}",
            got.status
        )));
    }
    if got.is_json() {
        return match serde_json::from_slice(&got.body) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(OidcError::IdToken(
                "the UserInfo answer is not a JSON object".into(),
            )),
        };
    }
    // A signed answer (application/jwt): verified like the ID token, and it must be from this
    // provider, for this client.
    let text = std::str::from_utf8(&got.body)
        .map_err(|_| OidcError::IdToken("the UserInfo answer is not text".into()))?
        .trim();
    let text = decrypted(provider, text)?;
    let (claims, _) = verified_jwt(provider, http, md, &text).await?;
    // OpenID Connect Core §5.3.2: `iss` and `aud` SHOULD be there (the SPID/CIE reference
    // provider sends neither: its signature is what binds the answer to it); when they are,
    // they must be this provider and this client.
    if claims
        .get("iss")
        .is_some_and(|i| i.as_str() != Some(provider.config.issuer.as_str()))
    {
        return Err(OidcError::IdToken(
            "the signed UserInfo is from another issuer".into(),
        ));
    }
    if claims.contains_key("aud") && !audience_is(&claims, &provider.config.client_id) {
        return Err(OidcError::IdToken(
            "the signed UserInfo is for another client".into(),
        ));
    }
    Ok(claims)
}

/// The JWS inside a JWE encrypted to varco (signed, then encrypted: the SPID/CIE profile's
/// UserInfo and CIE's ID token); a JWS as it is.
fn decrypted(provider: &OidcProvider, token: &str) -> Result<String, OidcError> {
    if token.split('.').count() != 5 {
        return Ok(token.to_string());
    }
    let key = provider
        .federation
        .as_ref()
        .and_then(|f| f.encryption())
        .ok_or_else(|| OidcError::IdToken("encrypted, and varco has no encryption key".into()))?;
    let plain = key
        .decrypt(token)
        .map_err(|e| OidcError::IdToken(format!("cannot decrypt: {e}")))?;
    String::from_utf8(plain)
        .map(|s| s.trim().to_string())
        .map_err(|_| OidcError::IdToken("the decrypted token is not text".into()))
}

/// A value from the provider as the log may carry it: bounded, without control characters (no
/// forged log lines).
fn for_log(value: &str, max: usize) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect()
}

/// Whether `client_id` is the token's audience (`aud` a string, or an array holding it).
pub(crate) fn audience_is(claims: &Map<String, Value>, client_id: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == client_id,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(client_id)),
        _ => false,
    }
}

/// What the ID token establishes.
#[derive(Debug)]
pub(crate) struct CheckedIdToken {
    sub: String,
    level: Level,
    auth_time: Option<DateTime<Utc>>,
    sid: Option<String>,
}

/// OpenID Connect Core §3.1.3.7, every step that applies, and the level: the signature was
/// checked already (with `alg`).
pub(crate) fn check_id_token(
    provider: &OidcProvider,
    pending: &PendingLogin,
    nonce: &RelayDigest,
    claims: &Map<String, Value>,
    alg: &str,
    access_token: Option<&str>,
    now: i64,
) -> Result<CheckedIdToken, OidcError> {
    let bad = |m: &str| OidcError::IdToken(m.to_string());
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str);
    let int_claim = |k: &str| claims.get(k).and_then(Value::as_i64);
    // 2. The issuer, exactly: a token from another provider is a mix-up.
    if str_claim("iss") != Some(provider.config.issuer.as_str()) {
        return Err(OidcError::MixUp(
            "the ID token's iss is not the provider the login went to".into(),
        ));
    }
    // 3-5. This client is the audience, and the only one unless `azp` names it.
    let client_id = provider.config.client_id.as_str();
    if !audience_is(claims, client_id) {
        return Err(bad("the audience is not this client"));
    }
    let several = matches!(claims.get("aud"), Some(Value::Array(a)) if a.len() > 1);
    match str_claim("azp") {
        Some(azp) if azp != client_id => return Err(bad("azp is another client")),
        None if several => return Err(bad("several audiences and no azp")),
        _ => {}
    }
    // 9-10. Time.
    let exp = int_claim("exp").ok_or_else(|| bad("no exp"))?;
    if now > exp + SKEW_SECS {
        return Err(bad("expired"));
    }
    let iat = int_claim("iat").ok_or_else(|| bad("no iat"))?;
    if iat > now + SKEW_SECS {
        return Err(bad("issued in the future"));
    }
    if iat < pending.issue_instant().timestamp() - SKEW_SECS {
        return Err(bad("issued before the login started"));
    }
    if let Some(nbf) = int_claim("nbf") {
        if nbf > now + SKEW_SECS {
            return Err(bad("not valid yet"));
        }
    }
    // 11. The nonce of this login (compared by digest: no timing to learn from).
    let got_nonce = str_claim("nonce").ok_or_else(|| bad("no nonce"))?;
    if RelayDigest::of(got_nonce.as_bytes()) != *nonce {
        return Err(bad("the nonce is not this login's"));
    }
    // 12. The level: at least the one asked for.
    let acr = str_claim("acr").ok_or_else(|| bad("no acr"))?;
    let level = provider
        .config
        .level_of(acr)
        .ok_or_else(|| OidcError::LevelTooLow {
            got: for_log(acr, 128),
            asked: pending.level(),
        })?;
    if level < pending.level() {
        return Err(OidcError::LevelTooLow {
            got: for_log(acr, 128),
            asked: pending.level(),
        });
    }
    // §3.1.3.8: at_hash, when present, binds the access token to this ID token.
    if let (Some(at_hash), Some(token)) = (str_claim("at_hash"), access_token) {
        if at_hash != half_hash(alg, token) {
            return Err(bad("at_hash does not match the access token"));
        }
    }
    let sub = str_claim("sub")
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or_else(|| bad("no sub"))?;
    let auth_time = int_claim("auth_time").and_then(|t| DateTime::from_timestamp(t, 0));
    Ok(CheckedIdToken {
        sub: sub.to_string(),
        level,
        auth_time,
        sid: str_claim("sid").map(str::to_string),
    })
}

/// The verified principal: the configured claims, as strings (an address object by its
/// `formatted` member; numbers as written).
fn principal(
    provider: &OidcProvider,
    t: CheckedIdToken,
    released: &Map<String, Value>,
) -> crate::principal::VerifiedPrincipal {
    let mut attributes: Vec<(Attribute, String)> = Vec::new();
    for (a, claim) in &provider.config.claims {
        let value = match released.get(claim) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Object(o)) => o
                .get("formatted")
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        };
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            attributes.push((*a, v));
        }
    }
    Principal::asserted(
        Protocol::Oidc,
        provider.config.issuer.clone(),
        t.sub,
        t.sid,
        t.level,
        t.auth_time,
        attributes,
    )
}

#[cfg(test)]
mod tests;
