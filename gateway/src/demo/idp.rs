//! The DEMO identity provider: a real SAML IdP for varco's SP, on loopback only, started by
//! `varco demo` and nothing else. Two entities share it: `…/demo/spid` (listed among the SPID
//! providers) and `…/demo/cie` (behind "Entra con CIE": level 3, CIE's four attributes).
//!
//! It verifies the SP's signed AuthnRequest (HTTP-Redirect, signature over the raw query with the
//! SP's certificate), shows a page to pick a test citizen and the level to grant, or a SPID error
//! to simulate (nr19-nr25), and posts back a Response signed like a real IdP's. It also answers
//! the SP's LogoutRequest with a signed LogoutResponse.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use idp_bridge::insecure_test_idp::{self as test_idp, ResponseBuilder, TestIdpKey};
use policies::{Attribute, AttributeMask, Level};
use tokio::net::TcpListener;

use super::citizens::CITIZENS;

/// SPID error codes the page can simulate, with what each means.
const ERRORS: &[(u8, &str)] = &[
    (19, "ripetuta sottomissione di credenziali errate"),
    (20, "credenziali non adatte al livello richiesto"),
    (21, "tempo scaduto durante l'autenticazione"),
    (22, "consenso all'invio dei dati negato"),
    (23, "identità sospesa o revocata"),
    (25, "annullamento da parte del cittadino"),
];

/// Which of the two demo entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Listed among the SPID providers.
    Spid,
    /// Behind "Entra con CIE".
    Cie,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Spid => "spid",
            Kind::Cie => "cie",
        }
    }
}

/// What the IdP needs to know about the SP and itself.
pub(super) struct Setup {
    /// `http://127.0.0.1:8081`.
    pub(super) origin: String,
    /// The SP's entityID.
    pub(super) sp_entity_id: String,
    /// The SP's ACS and SLO URLs.
    pub(super) acs_url: String,
    /// The SP's SLO URL.
    pub(super) slo_url: String,
    /// The SP's certificate (verifies its requests).
    pub(super) sp_cert: openssl::x509::X509,
    /// The IdP's signing key, PEM files.
    pub(super) key_pem: std::path::PathBuf,
    /// Its certificate.
    pub(super) cert_pem: std::path::PathBuf,
    /// The SP's configuration (its declared attribute sets).
    pub(super) sp: policies::SpConfig,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Setup {
    /// entityID of one of the demo entities.
    pub(super) fn entity_id(&self, kind: Kind) -> String {
        entity_id(&self.origin, kind)
    }
}

/// entityID of one of the demo entities served at `origin`.
fn entity_id(origin: &str, kind: Kind) -> String {
    format!("{origin}/demo/{}", kind.path())
}

/// A verified request waiting for the citizen's choice.
#[derive(Debug, Clone)]
struct Pending {
    kind: Kind,
    request_id: String,
    relay_state: Option<String>,
    level: Level,
    attribute_set: u16,
}

struct Idp {
    setup: Setup,
    op: super::op::Op,
    key: TestIdpKey,
    pending: moka::sync::Cache<String, Arc<Pending>>,
}

/// The metadata of one demo entity (what varco's `[[idp]]` trusts).
pub(super) fn metadata(origin: &str, kind: Kind, cert_der_b64: &str) -> String {
    let entity = entity_id(origin, kind);
    let redirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
    format!(
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{entity}\">\
<md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\" WantAuthnRequestsSigned=\"true\">\
<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_der_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\
<md:SingleLogoutService Binding=\"{redirect}\" Location=\"{entity}/slo\"/>\
<md:SingleSignOnService Binding=\"{redirect}\" Location=\"{entity}/sso\"/>\
</md:IDPSSODescriptor>\
<md:Organization><md:OrganizationName xml:lang=\"it\">DEMO (non valido)</md:OrganizationName>\
<md:OrganizationDisplayName xml:lang=\"it\">DEMO (non valido)</md:OrganizationDisplayName>\
<md:OrganizationURL xml:lang=\"it\">{origin}/</md:OrganizationURL></md:Organization>\
</md:EntityDescriptor>"
    )
}

/// Serves the IdP, and the DEMO OpenID provider beside it, on `listener` until the process ends.
pub(super) async fn serve(
    listener: TcpListener,
    setup: Setup,
    op: super::op::OpSetup,
) -> std::io::Result<()> {
    let key = TestIdpKey::from_pem(
        &std::fs::read(&setup.key_pem)?,
        &std::fs::read(&setup.cert_pem)?,
    )
    .map_err(std::io::Error::other)?;
    let idp = Arc::new(Idp {
        op: super::op::Op::new(op)?,
        setup,
        key,
        pending: moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(Duration::from_secs(15 * 60))
            .build(),
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let idp = idp.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let idp = idp.clone();
                async move { Ok::<_, Infallible>(idp.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Reply = Response<Full<Bytes>>;

fn chrome(title: &str) -> super::Chrome {
    super::Chrome::new(
        title,
        "DEMO (non valido)",
        "identity provider di prova di varco: nessuna identità qui è reale",
        "demo-idp",
    )
}

/// The CSP of the IdP's own pages.
fn default_csp() -> String {
    super::own_pages_csp()
}

fn refuse(status: StatusCode, why: &str) -> Reply {
    super::refusal(chrome("Richiesta rifiutata"), status, why)
}

#[derive(askama::Template)]
#[template(path = "demo_idp_home.html")]
struct HomeTemplate {
    chrome: super::Chrome,
    spid: String,
    cie: String,
    oidc: String,
}

#[derive(askama::Template)]
#[template(path = "demo_idp_login.html")]
struct LoginTemplate<'a> {
    chrome: super::Chrome,
    sp: &'a str,
    level: String,
    asked: String,
    action: String,
    token: &'a str,
    citizens: Vec<super::CitizenChoice>,
    levels: Vec<super::LevelChoice>,
    errors: &'static [(u8, &'static str)],
}

#[derive(askama::Template)]
#[template(path = "demo_idp_post.html")]
struct PostTemplate<'a> {
    chrome: super::Chrome,
    action: &'a str,
    fields: &'a [(&'a str, &'a str)],
    script: &'static str,
}

impl Idp {
    async fn handle(&self, req: Request<Incoming>) -> Reply {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        if path == "/" {
            let html = super::render(&HomeTemplate {
                chrome: chrome("Identity provider di prova"),
                spid: self.setup.entity_id(Kind::Spid),
                cie: self.setup.entity_id(Kind::Cie),
                oidc: super::op::Op::issuer(&self.setup.origin),
            });
            return super::html_response(StatusCode::OK, html, Some(&default_csp()));
        }
        if path == "/favicon.ico" {
            let mut r = Response::new(Full::new(Bytes::from_static(catalog::FAVICON)));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("image/x-icon"),
            );
            return r;
        }
        // The kit's files for the IdP's own pages (its origin is not varco's).
        if let Some(name) = path.strip_prefix("/.sso/assets/") {
            return match catalog::assets::asset(name) {
                Some(a) => {
                    let mut r = Response::new(Full::new(Bytes::from_static(a.bytes)));
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static(a.content_type),
                    );
                    r
                }
                None => refuse(StatusCode::NOT_FOUND, "Indirizzo sconosciuto."),
            };
        }
        if path.starts_with("/demo/oidc/") {
            let method = req.method().as_str().to_string();
            let authorization = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let Ok(body) = http_body_util::Limited::new(req.into_body(), 16 * 1024)
                .collect()
                .await
                .map(|b| b.to_bytes())
            else {
                return refuse(StatusCode::PAYLOAD_TOO_LARGE, "Richiesta troppo grande.");
            };
            return self
                .op
                .handle(&method, &path, &query, authorization.as_deref(), &body);
        }
        let kind = if path.starts_with("/demo/spid/") {
            Kind::Spid
        } else if path.starts_with("/demo/cie/") {
            Kind::Cie
        } else {
            return refuse(StatusCode::NOT_FOUND, "Indirizzo sconosciuto.");
        };
        let action = path.rsplit('/').next().unwrap_or("");
        match (req.method().as_str(), action) {
            ("GET", "sso") => self.sso(kind, &query),
            ("POST", "answer") => {
                let Ok(body) = http_body_util::Limited::new(req.into_body(), 8192)
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                else {
                    return refuse(StatusCode::PAYLOAD_TOO_LARGE, "Richiesta troppo grande.");
                };
                self.answer(kind, &body)
            }
            ("GET", "slo") => self.slo(kind, &query),
            _ => refuse(StatusCode::METHOD_NOT_ALLOWED, "Metodo non ammesso."),
        }
    }

    /// The SP's AuthnRequest: verified, then the choice page.
    fn sso(&self, kind: Kind, query: &str) -> Reply {
        let read = match test_idp::read_authn_request(query, &self.setup.sp_cert) {
            Ok(r) => r,
            Err(why) => return refuse(StatusCode::FORBIDDEN, &why),
        };
        let entity = self.setup.entity_id(kind);
        if read.destination.as_deref() != Some(format!("{entity}/sso").as_str()) {
            return refuse(StatusCode::FORBIDDEN, "Destination non è questo IdP.");
        }
        if read.issuer.as_deref() != Some(self.setup.sp_entity_id.as_str()) {
            return refuse(
                StatusCode::FORBIDDEN,
                "Issuer non è il Service Provider atteso.",
            );
        }
        let (request_id, relay_state, attribute_set) =
            (read.id, read.relay_state, read.attribute_set);
        let level = if kind == Kind::Cie {
            Level::SpidL3
        } else {
            read.level
        };
        let token = idp_bridge::random_token(16, true);
        self.pending.insert(
            token.clone(),
            Arc::new(Pending {
                kind,
                request_id,
                relay_state,
                level,
                attribute_set,
            }),
        );
        let asked: Vec<&str> = self
            .attributes_for(kind, attribute_set)
            .iter()
            .map(Attribute::as_str)
            .collect();
        let levels: &[Level] = if kind == Kind::Cie {
            &[Level::SpidL3]
        } else {
            &Level::ALL
        };
        let html = super::render(&LoginTemplate {
            chrome: chrome("Accesso di prova"),
            sp: &self.setup.sp_entity_id,
            level: level.label_it(),
            asked: asked.join(", "),
            action: format!("/demo/{}/answer", kind.path()),
            token: &token,
            citizens: super::citizen_choices(),
            levels: super::level_choices(levels, level, true),
            errors: ERRORS,
        });
        super::html_response(StatusCode::OK, html, Some(&default_csp()))
    }

    fn attributes_for(&self, kind: Kind, index: u16) -> AttributeMask {
        let kind = match kind {
            Kind::Spid => policies::IdpKind::Spid,
            Kind::Cie => policies::IdpKind::Cie,
        };
        self.setup.sp.asked_by(index, kind)
    }

    /// The citizen's choice: a signed Response posted to the SP's ACS.
    fn answer(&self, kind: Kind, body: &[u8]) -> Reply {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .take(16)
            .collect();
        let get = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let Some(pending) = get("request").and_then(|t| self.pending.remove(t)) else {
            return refuse(
                StatusCode::FORBIDDEN,
                "Richiesta sconosciuta o già usata: ricomincia dal servizio.",
            );
        };
        if pending.kind != kind {
            return refuse(
                StatusCode::FORBIDDEN,
                "Richiesta di un altro identity provider.",
            );
        }
        let citizen = get("citizen")
            .and_then(|c| c.parse::<usize>().ok())
            .and_then(|i| CITIZENS.get(i))
            .unwrap_or(&CITIZENS[0]);
        let level = match kind {
            Kind::Cie => Level::SpidL3,
            Kind::Spid => get("level")
                .and_then(|l| l.parse().ok())
                .unwrap_or(pending.level),
        };
        let mut b = ResponseBuilder::new(
            &self.setup.entity_id(kind),
            &self.setup.sp_entity_id,
            &self.setup.acs_url,
            &pending.request_id,
        );
        b.level = level;
        let wanted = self.attributes_for(kind, pending.attribute_set);
        b.attributes = citizen
            .attributes()
            .into_iter()
            .filter(|(name, _)| wanted.iter().any(|a| a.as_str() == *name))
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        b.name_id = format!("_demo-{}", idp_bridge::random_token(12, false));
        if get("action") == Some("error") {
            b.error_code = get("error")
                .and_then(|e| e.parse::<u8>().ok())
                .filter(|c| ERRORS.iter().any(|(code, _)| code == c));
        }
        let response = match b.to_base64(&self.key) {
            Ok(r) => r,
            Err(e) => {
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("firma non riuscita: {e}"),
                )
            }
        };
        let mut fields = vec![("SAMLResponse", response.as_str())];
        if let Some(rs) = &pending.relay_state {
            fields.push(("RelayState", rs.as_str()));
        }
        // The same one-line script as varco's POST-binding page, so its CSP hash applies.
        let html = super::render(&PostTemplate {
            chrome: chrome("Accesso in corso"),
            action: &self.setup.acs_url,
            fields: &fields,
            script: catalog::POST_BINDING_SCRIPT,
        });
        let acs_origin = url::Url::parse(&self.setup.acs_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        super::html_response(
            StatusCode::OK,
            html,
            Some(&format!(
                "default-src 'none'; {}; script-src '{}'; form-action {acs_origin}; base-uri 'none'",
                super::DEMO_STYLES,
                crate::sso::script_hash()
            )),
        )
    }

    /// The SP's LogoutRequest: verified, answered with a signed LogoutResponse by redirect.
    fn slo(&self, kind: Kind, query: &str) -> Reply {
        let id = match test_idp::read_logout_request(query, &self.setup.sp_cert) {
            Ok(id) => id,
            Err(why) => return refuse(StatusCode::FORBIDDEN, &why),
        };
        match test_idp::logout_response_redirect(
            &self.setup.key_pem,
            &self.setup.cert_pem,
            &self.setup.entity_id(kind),
            &self.setup.slo_url,
            &id,
        ) {
            Ok(url) => {
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = StatusCode::FOUND;
                if let Ok(v) = http::HeaderValue::from_str(&url) {
                    r.headers_mut().insert(http::header::LOCATION, v);
                }
                r
            }
            Err(e) => refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("firma non riuscita: {e}"),
            ),
        }
    }
}
