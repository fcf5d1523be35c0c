//! The DEMO OpenID provider: a real OpenID Connect provider for varco's relying party, beside the
//! DEMO SAML IdP on the same loopback origin (`…/demo/oidc`), started by `varco demo` and nothing
//! else. A newcomer sees both protocols end in the same session, headers and JWT.
//!
//! It serves discovery, its keys, the authorization endpoint (a page to pick a test citizen and
//! the level, or an OpenID Connect error to simulate), the token endpoint (varco's client
//! assertion and the PKCE verifier checked, a signed ID token), UserInfo and the end of a
//! session. It verifies varco's signed request objects and client assertions with varco's
//! public key; codes and access tokens are one-shot and short-lived.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use idp_bridge::insecure_test_idp::{verify_jws, TestOpKey};
use policies::{Attribute, Level};
use serde_json::{json, Map, Value};
use sha2::Digest as _;

use super::citizens::CITIZENS;

/// The errors the page can simulate, with what each means.
const ERRORS: &[(&str, &str)] = &[
    ("access_denied", "il cittadino nega il consenso o annulla"),
    ("login_required", "il gestore chiede di accedere di nuovo"),
    ("consent_required", "il gestore chiede il consenso"),
    ("server_error", "errore del gestore"),
];

/// varco's client ID at the DEMO provider.
pub(super) const CLIENT_ID: &str = "varco-demo";

/// What the provider needs to know about itself and varco.
pub(super) struct OpSetup {
    /// `http://127.0.0.1:8081`: the issuer is this plus `/demo/oidc`.
    pub(super) origin: String,
    /// varco's redirect URI.
    pub(super) redirect_uri: String,
    /// Where varco wants the citizen back after a logout here.
    pub(super) logged_out_uri: String,
    /// The provider's signing key (PEM file).
    pub(super) key_pem: std::path::PathBuf,
    /// varco's key for this provider (PEM file): its public half verifies varco's assertions.
    pub(super) rp_key_pem: std::path::PathBuf,
}

/// An authorization request waiting for the citizen's choice.
#[derive(Debug, Clone)]
struct Asked {
    state: String,
    nonce: String,
    code_challenge: String,
    level: Level,
    claims: Vec<String>,
}

/// A code issued, or an access token: for whom, and what was asked.
#[derive(Debug, Clone)]
struct Granted {
    citizen: usize,
    level: Level,
    nonce: String,
    code_challenge: String,
    claims: Vec<String>,
    auth_time: u64,
}

pub(super) struct Op {
    setup: OpSetup,
    key: TestOpKey,
    rp_jwks: Value,
    asked: moka::sync::Cache<String, Arc<Asked>>,
    codes: moka::sync::Cache<String, Arc<Granted>>,
    tokens: moka::sync::Cache<String, Arc<Granted>>,
}

type Reply = Response<Full<Bytes>>;

fn cache<V: Send + Sync + 'static>(secs: u64) -> moka::sync::Cache<String, Arc<V>> {
    moka::sync::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(secs))
        .build()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn json_reply(status: StatusCode, v: &Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    json_reply(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

fn redirect(to: &str) -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = http::HeaderValue::from_str(to) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .take(24)
        .collect()
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[derive(askama::Template)]
#[template(path = "demo_op_login.html")]
struct LoginTemplate<'a> {
    chrome: super::Chrome,
    level: String,
    asked: String,
    token: &'a str,
    citizens: Vec<super::CitizenChoice>,
    levels: Vec<super::LevelChoice>,
    errors: &'static [(&'static str, &'static str)],
}

impl Op {
    pub(super) fn new(setup: OpSetup) -> std::io::Result<Self> {
        let key = TestOpKey::load(&setup.key_pem).map_err(std::io::Error::other)?;
        let rp_jwks = TestOpKey::load(&setup.rp_key_pem)
            .map_err(std::io::Error::other)?
            .public_jwks();
        Ok(Self {
            setup,
            key,
            rp_jwks,
            asked: cache(15 * 60),
            codes: cache(60),
            tokens: cache(5 * 60),
        })
    }

    /// The issuer: `<origin>/demo/oidc`.
    pub(super) fn issuer(origin: &str) -> String {
        format!("{origin}/demo/oidc")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", Self::issuer(&self.setup.origin))
    }

    /// Answers a request under `/demo/oidc/`.
    pub(super) fn handle(
        &self,
        method: &str,
        path: &str,
        query: &str,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Reply {
        match (method, path) {
            ("GET", "/demo/oidc/.well-known/openid-configuration") => self.discovery(),
            ("GET", "/demo/oidc/jwks") => json_reply(StatusCode::OK, &self.key.public_jwks()),
            ("GET", "/demo/oidc/authorize") => self.authorize(query),
            ("POST", "/demo/oidc/answer") => self.answer(body),
            ("POST", "/demo/oidc/token") => self.token(body),
            ("GET", "/demo/oidc/userinfo") => self.userinfo(authorization),
            ("GET", "/demo/oidc/end_session") => self.end_session(query),
            _ => refuse(StatusCode::NOT_FOUND, "Indirizzo sconosciuto."),
        }
    }

    fn discovery(&self) -> Reply {
        let acr: Vec<&str> = Level::ALL.iter().map(|l| l.class_ref()).collect();
        let claims: Vec<&str> = policies::DEFAULT_CLAIMS.iter().map(|(_, c)| *c).collect();
        json_reply(
            StatusCode::OK,
            &json!({
                "issuer": Self::issuer(&self.setup.origin),
                "authorization_endpoint": self.url("/authorize"),
                "token_endpoint": self.url("/token"),
                "userinfo_endpoint": self.url("/userinfo"),
                "jwks_uri": self.url("/jwks"),
                "end_session_endpoint": self.url("/end_session"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "request_parameter_supported": true,
                "claims_parameter_supported": true,
                "authorization_response_iss_parameter_supported": true,
                "acr_values_supported": acr,
                "claims_supported": claims,
                "scopes_supported": ["openid", "profile", "email"],
            }),
        )
    }

    /// The authorization request (its parameters, or varco's signed request object), then the
    /// page to pick a citizen.
    fn authorize(&self, query: &str) -> Reply {
        let q = form(query.as_bytes());
        let mut params: Map<String, Value> = q
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        if let Some(request) = field(&q, "request") {
            let Some(claims) = verify_jws(request, &self.rp_jwks) else {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "L'oggetto request non è firmato dalla chiave di varco.",
                );
            };
            if claims.get("iss").and_then(Value::as_str) != Some(CLIENT_ID)
                || claims.get("aud").and_then(Value::as_str)
                    != Some(Self::issuer(&self.setup.origin).as_str())
            {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "L'oggetto request non è per questo provider.",
                );
            }
            params.extend(claims);
        }
        let p = |k: &str| params.get(k).and_then(Value::as_str).unwrap_or("");
        if p("client_id") != CLIENT_ID || p("redirect_uri") != self.setup.redirect_uri {
            // Never redirect to a URI that is not the client's (RFC 6749 §4.1.2.1).
            return refuse(
                StatusCode::BAD_REQUEST,
                "Client o redirect_uri sconosciuti.",
            );
        }
        if p("response_type") != "code"
            || p("code_challenge_method") != "S256"
            || p("code_challenge").len() < 43
            || p("state").is_empty()
            || p("nonce").is_empty()
            || !p("scope").split(' ').any(|s| s == "openid")
        {
            return refuse(
                StatusCode::BAD_REQUEST,
                "Richiesta incompleta: servono response_type=code, PKCE S256, state, nonce e lo scope openid.",
            );
        }
        let level = p("acr_values")
            .split(' ')
            .filter_map(|a| Level::ALL.into_iter().find(|l| l.class_ref() == a))
            .next()
            .unwrap_or(Level::SpidL1);
        let claims: Vec<String> = match params.get("claims") {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok(),
            Some(v @ Value::Object(_)) => Some(v.clone()),
            _ => None,
        }
        .and_then(|c| c.get("userinfo").and_then(Value::as_object).cloned())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
        let token = idp_bridge::random_token(16, true);
        let asked_names = claims
            .iter()
            .filter_map(|c| policies::DEFAULT_CLAIMS.iter().find(|(_, n)| n == c))
            .map(|(a, _)| a.label_it())
            .collect::<Vec<_>>()
            .join(", ");
        self.asked.insert(
            token.clone(),
            Arc::new(Asked {
                state: p("state").to_string(),
                nonce: p("nonce").to_string(),
                code_challenge: p("code_challenge").to_string(),
                level,
                claims,
            }),
        );
        let html = super::render(&LoginTemplate {
            chrome: chrome("Accesso di prova (OpenID Connect)"),
            level: level.label_it(),
            asked: if asked_names.is_empty() {
                "nessun dato oltre all'identificativo".into()
            } else {
                asked_names
            },
            token: &token,
            citizens: super::citizen_choices(),
            levels: super::level_choices(&Level::ALL, level, false),
            errors: ERRORS,
        });
        super::html_response(StatusCode::OK, html, Some(&self.page_csp()))
    }

    /// The page's CSP: its form posts here, and the answer redirects to varco.
    fn page_csp(&self) -> String {
        let varco = url::Url::parse(&self.setup.redirect_uri)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        format!(
            "default-src 'none'; {}; form-action 'self' {varco}; frame-ancestors 'none'; base-uri 'none'",
            super::DEMO_STYLES
        )
    }

    /// The citizen's choice: back to varco with a code, or with the error chosen.
    fn answer(&self, body: &[u8]) -> Reply {
        let f = form(body);
        let Some(asked) = field(&f, "request").and_then(|t| self.asked.remove(t)) else {
            return refuse(
                StatusCode::FORBIDDEN,
                "Richiesta sconosciuta o già usata: ricomincia dal servizio.",
            );
        };
        let iss = Self::issuer(&self.setup.origin);
        let mut back = url::form_urlencoded::Serializer::new(String::new());
        if field(&f, "action") == Some("error") {
            let error = field(&f, "error")
                .filter(|e| ERRORS.iter().any(|(c, _)| c == e))
                .unwrap_or("access_denied");
            back.append_pair("error", error)
                .append_pair("error_description", "simulato dal provider di prova");
        } else {
            let citizen = field(&f, "citizen")
                .and_then(|c| c.parse::<usize>().ok())
                .filter(|i| *i < CITIZENS.len())
                .unwrap_or(0);
            let level = field(&f, "level")
                .and_then(|l| l.parse().ok())
                .unwrap_or(asked.level);
            let code = idp_bridge::random_token(32, true);
            self.codes.insert(
                code.clone(),
                Arc::new(Granted {
                    citizen,
                    level,
                    nonce: asked.nonce.clone(),
                    code_challenge: asked.code_challenge.clone(),
                    claims: asked.claims.clone(),
                    auth_time: now(),
                }),
            );
            back.append_pair("code", &code);
        }
        back.append_pair("state", &asked.state)
            .append_pair("iss", &iss);
        redirect(&format!("{}?{}", self.setup.redirect_uri, back.finish()))
    }

    /// The code for tokens: varco's client assertion, the code (once), PKCE.
    fn token(&self, body: &[u8]) -> Reply {
        let f = form(body);
        if field(&f, "grant_type") != Some("authorization_code")
            || field(&f, "redirect_uri") != Some(self.setup.redirect_uri.as_str())
        {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "bad grant");
        }
        let assertion_ok = field(&f, "client_assertion_type")
            == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            && field(&f, "client_assertion")
                .and_then(|a| verify_jws(a, &self.rp_jwks))
                .is_some_and(|c| {
                    let s = |k: &str| c.get(k).and_then(Value::as_str);
                    let exp = c.get("exp").and_then(Value::as_u64).unwrap_or(0);
                    s("iss") == Some(CLIENT_ID)
                        && s("sub") == Some(CLIENT_ID)
                        && s("aud") == Some(self.url("/token").as_str())
                        && exp >= now()
                        && s("jti").is_some()
                });
        if !assertion_ok {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client assertion",
            );
        }
        let Some(grant) = field(&f, "code").and_then(|c| self.codes.remove(c)) else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "unknown or used code",
            );
        };
        let verifier = field(&f, "code_verifier").unwrap_or("");
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        if challenge != grant.code_challenge {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "PKCE");
        }
        let access_token = idp_bridge::random_token(32, true);
        let t = now();
        let mut claims = Map::new();
        for (k, v) in [
            ("iss", json!(Self::issuer(&self.setup.origin))),
            ("sub", json!(subject(grant.citizen))),
            ("aud", json!(CLIENT_ID)),
            ("iat", json!(t)),
            ("nbf", json!(t)),
            ("exp", json!(t + 300)),
            ("auth_time", json!(grant.auth_time)),
            ("nonce", json!(grant.nonce)),
            ("acr", json!(grant.level.class_ref())),
            ("at_hash", json!(self.key.at_hash(&access_token))),
            ("jti", json!(idp_bridge::random_token(16, true))),
        ] {
            claims.insert(k.into(), v);
        }
        let Some(id_token) = self.key.sign(claims) else {
            return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing");
        };
        self.tokens.insert(access_token.clone(), grant);
        json_reply(
            StatusCode::OK,
            &json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            }),
        )
    }

    /// The claims asked for, for a valid access token.
    fn userinfo(&self, authorization: Option<&str>) -> Reply {
        let Some(grant) = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .and_then(|t| self.tokens.get(t))
        else {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", "access token");
        };
        let c = &CITIZENS[grant.citizen];
        let mut out = Map::new();
        out.insert("sub".into(), json!(subject(grant.citizen)));
        for (name, value) in c.attributes() {
            let claim = name
                .parse::<Attribute>()
                .ok()
                .and_then(|a| policies::DEFAULT_CLAIMS.iter().find(|(x, _)| *x == a))
                .map(|(_, claim)| *claim);
            if let Some(claim) = claim.filter(|c| grant.claims.iter().any(|g| g == c)) {
                out.insert(claim.into(), json!(value));
            }
        }
        json_reply(StatusCode::OK, &Value::Object(out))
    }

    /// The end of the citizen's session here, back to varco's page.
    fn end_session(&self, query: &str) -> Reply {
        let q = form(query.as_bytes());
        match field(&q, "post_logout_redirect_uri") {
            Some(u) if u == self.setup.logged_out_uri => redirect(u),
            // No (known) way back to varco: a page that says so, not a refusal.
            _ => super::refusal(
                chrome("Sei uscito"),
                StatusCode::OK,
                "Sei uscito dal provider di prova. Puoi chiudere questa pagina.",
            ),
        }
    }
}

/// A pairwise-looking subject for a test citizen, stable across logins.
fn subject(citizen: usize) -> String {
    let fiscal = CITIZENS[citizen].fiscal_number();
    let d = sha2::Sha256::digest(format!("varco-demo\0{fiscal}").as_bytes());
    idp_bridge::to_hex(&d[..16])
}

fn refuse(status: StatusCode, why: &str) -> Reply {
    super::refusal(chrome("Richiesta rifiutata"), status, why)
}

fn chrome(title: &str) -> super::Chrome {
    super::Chrome::new(
        title,
        "DEMO OpenID (non valido)",
        "provider OpenID Connect di prova di varco: nessuna identità qui è reale",
        "demo-idp",
    )
}
