//! The DEMO identity provider: a real SAML IdP for varco's SP, on loopback only, started by
//! `varco demo` and nothing else. Two entities share it: `…/demo/spid` (listed among the SPID
//! providers) and `…/demo/cie` (behind "Entra con CIE": level 3, CIE's four attributes).
//!
//! It verifies the SP's signed AuthnRequest (HTTP-Redirect, signature over the raw query with the
//! SP's certificate), shows a page to pick a test citizen and the level to grant, or a SPID error
//! to simulate (nr19-nr25), and posts back a Response signed like a real IdP's. It also answers
//! the SP's LogoutRequest with a signed LogoutResponse.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use idp_bridge::testing::{ResponseBuilder, TestIdpKey};
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use policies::{Attribute, AttributeMask, Level};
use tokio::net::TcpListener;

use super::citizens::CITIZENS;
use catalog::escape;

/// SPID error codes the page can simulate, with what each means.
const ERRORS: &[(u8, &str)] = &[
    (19, "ripetuta sottomissione di credenziali errate"),
    (20, "credenziali non adatte al livello richiesto"),
    (21, "tempo scaduto durante l'autenticazione"),
    (22, "consenso all'invio dei dati negato"),
    (23, "identità sospesa o revocata"),
    (25, "annullamento da parte del cittadino"),
];

/// Largest inflated AuthnRequest or LogoutRequest read.
const MAX_MESSAGE: u64 = 64 * 1024;

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
    /// The SP's declared attribute sets.
    pub(super) attribute_sets: Vec<policies::AttributeSet>,
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

/// Binds `listener` and serves the IdP until the process ends.
pub(super) async fn serve(listener: TcpListener, setup: Setup) -> std::io::Result<()> {
    let key = TestIdpKey::from_pem(
        &std::fs::read(&setup.key_pem)?,
        &std::fs::read(&setup.cert_pem)?,
    )
    .map_err(std::io::Error::other)?;
    let idp = Arc::new(Idp {
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
    format!(
        "default-src 'none'; {}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        super::DEMO_STYLES
    )
}

#[derive(askama::Template)]
#[template(path = "demo_idp_refuse.html")]
struct RefuseTemplate<'a> {
    chrome: super::Chrome,
    why: &'a str,
}

fn refuse(status: StatusCode, why: &str) -> Reply {
    let html = super::render(&RefuseTemplate {
        chrome: chrome("Richiesta rifiutata"),
        why,
    });
    super::html_response(status, html, Some(&default_csp()))
}

#[derive(askama::Template)]
#[template(path = "demo_idp_home.html")]
struct HomeTemplate {
    chrome: super::Chrome,
    spid: String,
    cie: String,
}

/// One test citizen on the login page.
struct CitizenChoice {
    index: usize,
    label: String,
}

/// One level on the login page.
struct LevelChoice {
    value: &'static str,
    label: &'static str,
    checked: bool,
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
    citizens: Vec<CitizenChoice>,
    levels: Vec<LevelChoice>,
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

fn raw_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

fn decode(v: &str) -> String {
    url::form_urlencoded::parse(format!("v={v}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The DOM of a signed HTTP-Redirect message from the SP: signature checked over the raw query
/// (RSA-SHA256, the SP's certificate), then inflated (bounded) and parsed.
fn verified_message(
    setup: &Setup,
    query: &str,
    param: &str,
) -> Result<(String, Option<String>), String> {
    let value = raw_param(query, param).ok_or("the message is missing")?;
    let sig_alg = raw_param(query, "SigAlg").ok_or("the request is not signed (no SigAlg)")?;
    let signature = raw_param(query, "Signature").ok_or("the request is not signed")?;
    if decode(sig_alg) != "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" {
        return Err("signature algorithm other than RSA-SHA256".into());
    }
    let mut signed = format!("{param}={value}");
    let relay = raw_param(query, "RelayState");
    if let Some(rs) = relay {
        let _ = write!(signed, "&RelayState={rs}");
    }
    let _ = write!(signed, "&SigAlg={sig_alg}");
    let signature = base64::engine::general_purpose::STANDARD
        .decode(decode(signature))
        .map_err(|_| "the signature is not base64")?;
    let key = setup.sp_cert.public_key().map_err(|e| e.to_string())?;
    let ok = Verifier::new(MessageDigest::sha256(), &key)
        .and_then(|mut v| {
            v.update(signed.as_bytes())?;
            v.verify(&signature)
        })
        .unwrap_or(false);
    if !ok {
        return Err("the signature does not verify with the SP's certificate".into());
    }
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(decode(value))
        .map_err(|_| "the message is not base64")?;
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .take(MAX_MESSAGE)
        .read_to_string(&mut xml)
        .map_err(|_| "the message does not inflate")?;
    Ok((xml, relay.map(decode)))
}

fn element_text(root: &libxml::tree::Node, name: &str) -> Option<String> {
    if root.get_name() == name {
        return Some(root.get_content().trim().to_string());
    }
    root.get_child_elements()
        .iter()
        .find_map(|c| element_text(c, name))
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
        let (xml, relay_state) = match verified_message(&self.setup, query, "SAMLRequest") {
            Ok(m) => m,
            Err(why) => return refuse(StatusCode::FORBIDDEN, &why),
        };
        let Ok(doc) = libxml::parser::Parser::default().parse_string(&xml) else {
            return refuse(StatusCode::BAD_REQUEST, "AuthnRequest non leggibile.");
        };
        let Some(root) = doc
            .get_root_element()
            .filter(|r| r.get_name() == "AuthnRequest")
        else {
            return refuse(StatusCode::BAD_REQUEST, "Non è una AuthnRequest.");
        };
        let entity = self.setup.entity_id(kind);
        if root.get_attribute("Destination").as_deref() != Some(format!("{entity}/sso").as_str()) {
            return refuse(StatusCode::FORBIDDEN, "Destination non è questo IdP.");
        }
        if element_text(&root, "Issuer").as_deref() != Some(self.setup.sp_entity_id.as_str()) {
            return refuse(
                StatusCode::FORBIDDEN,
                "Issuer non è il Service Provider atteso.",
            );
        }
        let Some(request_id) = root.get_attribute("ID").filter(|i| !i.is_empty()) else {
            return refuse(StatusCode::BAD_REQUEST, "AuthnRequest senza ID.");
        };
        let level = element_text(&root, "AuthnContextClassRef")
            .and_then(|r| Level::ALL.into_iter().find(|l| l.class_ref() == r))
            .unwrap_or(Level::SpidL1);
        let attribute_set = root
            .get_attribute("AttributeConsumingServiceIndex")
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        let level = if kind == Kind::Cie {
            Level::SpidL3
        } else {
            level
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
            citizens: CITIZENS
                .iter()
                .enumerate()
                .map(|(index, c)| CitizenChoice {
                    index,
                    label: format!(
                        "{} {} · nato/a a {} il {} · {}",
                        c.name,
                        c.family_name,
                        c.birthplace_name,
                        c.birth,
                        c.fiscal_number()
                    ),
                })
                .collect(),
            levels: levels
                .iter()
                .map(|l| LevelChoice {
                    value: l.as_str(),
                    label: match l {
                        Level::SpidL1 => "SPID livello 1 (password)",
                        Level::SpidL2 => "SPID livello 2 (password e codice)",
                        Level::SpidL3 => "SPID livello 3 / CIE (dispositivo)",
                    },
                    checked: *l == level,
                })
                .collect(),
            errors: ERRORS,
        });
        super::html_response(StatusCode::OK, html, Some(&default_csp()))
    }

    fn attributes_for(&self, kind: Kind, index: u16) -> AttributeMask {
        let kind = match kind {
            Kind::Spid => policies::IdpKind::Spid,
            Kind::Cie => policies::IdpKind::Cie,
        };
        self.setup
            .attribute_sets
            .iter()
            .find(|s| s.index == index)
            .map(|s| s.asked_of(kind))
            .unwrap_or_default()
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
        let (xml, _) = match verified_message(&self.setup, query, "SAMLRequest") {
            Ok(m) => m,
            Err(why) => return refuse(StatusCode::FORBIDDEN, &why),
        };
        let Ok(doc) = libxml::parser::Parser::default().parse_string(&xml) else {
            return refuse(StatusCode::BAD_REQUEST, "LogoutRequest non leggibile.");
        };
        let Some(id) = doc
            .get_root_element()
            .filter(|r| r.get_name() == "LogoutRequest")
            .and_then(|r| r.get_attribute("ID"))
        else {
            return refuse(StatusCode::BAD_REQUEST, "Non è una LogoutRequest.");
        };
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let response = format!(
            "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_{rid}\" Version=\"2.0\" IssueInstant=\"{now}\" Destination=\"{dest}\" InResponseTo=\"{id}\">\
<saml:Issuer Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:entity\">{issuer}</saml:Issuer>\
<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status></samlp:LogoutResponse>",
            rid = idp_bridge::random_token(16, false),
            dest = escape(&self.setup.slo_url),
            id = escape(&id),
            issuer = escape(&self.setup.entity_id(kind)),
        );
        match idp_bridge::testing::idp_redirect(
            &self.setup.key_pem,
            &self.setup.cert_pem,
            &self.setup.slo_url,
            "SAMLResponse",
            &response,
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
