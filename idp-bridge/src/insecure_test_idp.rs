//! **Dangerous outside tests and the demo.** A SAML IdP's side of the protocol: it reads the SP's
//! signed requests and builds and signs Responses the way SPID IdPs do, for whatever identity it
//! is told to. Behind the `insecure-test-idp` feature, which a production build of the gateway
//! leaves out (`cargo build --no-default-features`): no code here ships in it.

pub mod cns;

use base64::Engine as _;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use policies::Level;
use samael::crypto::{Crypto, CryptoProvider};

use crate::xml::{escape, signature_template};

/// An IdP key pair for signing responses.
#[derive(Debug, Clone)]
pub struct TestIdpKey {
    key_der: Vec<u8>,
    cert_b64: String,
}

impl TestIdpKey {
    /// From PEM key and certificate.
    pub fn from_pem(key_pem: &[u8], cert_pem: &[u8]) -> Result<Self, String> {
        let key = openssl::pkey::PKey::private_key_from_pem(key_pem).map_err(|e| e.to_string())?;
        let cert = openssl::x509::X509::from_pem(cert_pem).map_err(|e| e.to_string())?;
        Ok(Self {
            key_der: key.private_key_to_der().map_err(|e| e.to_string())?,
            cert_b64: base64::engine::general_purpose::STANDARD
                .encode(cert.to_der().map_err(|e| e.to_string())?),
        })
    }
}

/// One Response to build.
#[derive(Debug, Clone)]
pub struct ResponseBuilder {
    /// IdP entityID (both Issuers).
    pub idp: String,
    /// SP entityID (Audience).
    pub audience: String,
    /// ACS URL (Destination, Recipient).
    pub acs_url: String,
    /// The AuthnRequest ID.
    pub in_response_to: String,
    /// IssueInstant of Response and Assertion.
    pub issue_instant: DateTime<Utc>,
    /// Level asserted.
    pub level: Level,
    /// Attributes released.
    pub attributes: Vec<(String, String)>,
    /// `None`: Success; `Some(22)`: AuthnFailed with "ErrorCode nr22".
    pub error_code: Option<u8>,
    /// Sign the Response element.
    pub sign_response: bool,
    /// Sign the Assertion element.
    pub sign_assertion: bool,
    /// The transient NameID.
    pub name_id: String,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl ResponseBuilder {
    /// A successful response to `in_response_to`, both elements signed.
    pub fn new(idp: &str, audience: &str, acs_url: &str, in_response_to: &str) -> Self {
        Self {
            idp: idp.into(),
            audience: audience.into(),
            acs_url: acs_url.into(),
            in_response_to: in_response_to.into(),
            issue_instant: Utc::now(),
            level: Level::SpidL2,
            attributes: vec![
                ("fiscalNumber".into(), "TINIT-RSSMRA80A01H501U".into()),
                ("name".into(), "Mario".into()),
                ("familyName".into(), "Rossi".into()),
            ],
            error_code: None,
            sign_response: true,
            sign_assertion: true,
            name_id: format!("_{}", crate::secret::random_token(8, false)),
        }
    }

    /// The unsigned XML, with signature templates where signatures go.
    pub fn unsigned_xml(&self, key: &TestIdpKey) -> String {
        let now = ts(self.issue_instant);
        let later = ts(self.issue_instant + Duration::minutes(5));
        let rid = format!("_r{}", crate::secret::random_token(16, false));
        let aid = format!("_a{}", crate::secret::random_token(16, false));
        let issuer = format!(
            "<saml:Issuer Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:entity\">{}</saml:Issuer>",
            escape(&self.idp)
        );
        let status = match self.error_code {
            None => "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>".to_string(),
            Some(c) => format!(
                "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Responder\"><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:AuthnFailed\"/></samlp:StatusCode><samlp:StatusMessage>ErrorCode nr{c}</samlp:StatusMessage></samlp:Status>"
            ),
        };
        let mut attrs = String::new();
        for (n, v) in &self.attributes {
            attrs.push_str(&format!(
                "<saml:Attribute Name=\"{}\"><saml:AttributeValue xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"xs:string\">{}</saml:AttributeValue></saml:Attribute>",
                escape(n),
                escape(v)
            ));
        }
        let assertion = if self.error_code.is_some() {
            String::new()
        } else {
            format!(
                "<saml:Assertion ID=\"{aid}\" Version=\"2.0\" IssueInstant=\"{now}\">{issuer}{sig}\
<saml:Subject><saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:transient\" NameQualifier=\"{idp}\">{nid}</saml:NameID>\
<saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\"><saml:SubjectConfirmationData InResponseTo=\"{irt}\" NotOnOrAfter=\"{later}\" Recipient=\"{acs}\"/></saml:SubjectConfirmation></saml:Subject>\
<saml:Conditions NotBefore=\"{now}\" NotOnOrAfter=\"{later}\"><saml:AudienceRestriction><saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction></saml:Conditions>\
<saml:AuthnStatement AuthnInstant=\"{now}\"><saml:AuthnContext><saml:AuthnContextClassRef>{class}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>\
<saml:AttributeStatement>{attrs}</saml:AttributeStatement></saml:Assertion>",
                sig = if self.sign_assertion { signature_template(&aid, &key.cert_b64) } else { String::new() },
                idp = escape(&self.idp),
                nid = escape(&self.name_id),
                irt = escape(&self.in_response_to),
                acs = escape(&self.acs_url),
                aud = escape(&self.audience),
                class = self.level.class_ref(),
            )
        };
        format!(
            "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" \
ID=\"{rid}\" Version=\"2.0\" IssueInstant=\"{now}\" Destination=\"{acs}\" InResponseTo=\"{irt}\">{issuer}{sig}{status}{assertion}</samlp:Response>",
            acs = escape(&self.acs_url),
            irt = escape(&self.in_response_to),
            sig = if self.sign_response { signature_template(&rid, &key.cert_b64) } else { String::new() },
        )
    }

    /// The signed XML. The Assertion is signed first, then the Response over it.
    pub fn signed_xml(&self, key: &TestIdpKey) -> Result<String, String> {
        sign_all(&self.unsigned_xml(key), key)
    }

    /// The signed response, base64 as posted to the ACS.
    pub fn to_base64(&self, key: &TestIdpKey) -> Result<String, String> {
        Ok(base64::engine::general_purpose::STANDARD.encode(self.signed_xml(key)?))
    }
}

/// The signature template for the element with `ID="{id}"`, carrying `key`'s certificate: put
/// it where the signature goes (after the element's Issuer) and sign with [`sign_all`].
pub fn signature_template_for(id: &str, key: &TestIdpKey) -> String {
    signature_template(id, &key.cert_b64)
}

/// Signs every signature template of `xml`, innermost (last in document order) first.
pub fn sign_all(xml: &str, key: &TestIdpKey) -> Result<String, String> {
    // xmlsec signs the first template it finds; hide the others until their turn.
    const MARK: &str = "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">";
    let count = xml.matches(MARK).count();
    let mut doc = xml.to_string();
    for n in (0..count).rev() {
        // Template n is signed now; the earlier, outer ones are renamed out of the way (the later,
        // inner ones are already signed and stay as they are).
        let mut parts: Vec<&str> = doc.split(MARK).collect();
        let mut rebuilt = String::from(parts.remove(0));
        for (i, p) in parts.iter().enumerate() {
            rebuilt.push_str(if i >= n {
                MARK
            } else {
                "<ds:Signature xmlns:ds=\"urn:varco:hidden\">"
            });
            rebuilt.push_str(p);
        }
        let signed =
            Crypto::sign_xml(rebuilt.as_bytes(), &key.key_der).map_err(|e| e.to_string())?;
        doc = signed.replace(
            "xmlns:ds=\"urn:varco:hidden\"",
            "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"",
        );
    }
    Ok(doc)
}

/// A SAML message signed for the HTTP-Redirect binding with an IdP's key (PEM files), as an IdP
/// sends its LogoutRequest or LogoutResponse.
pub fn idp_redirect(
    key_pem: &std::path::Path,
    cert_pem: &std::path::Path,
    destination: &str,
    param: &str,
    xml: &str,
) -> Result<String, String> {
    let keys = crate::keys::SpKeys::load(key_pem, cert_pem).map_err(|e| e.to_string())?;
    crate::saml::authn::signed_redirect(&keys, destination, param, xml, None)
        .map_err(|e| e.to_string())
}

/// `xml` without its XML declaration, to embed the document in another one.
pub fn without_declaration(xml: &str) -> &str {
    match xml.strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map_or(xml, |(_, body)| body.trim_start()),
        None => xml,
    }
}

/// `xml` with its signature templates asking for RSA-SHA1 and SHA-1 digests, as a weak IdP (or an
/// attacker with a downgrade in mind) would sign.
pub fn with_sha1(xml: &str) -> String {
    xml.replace(
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    )
    .replace(
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2000/09/xmldsig#sha1",
    )
}

/// A principal that no IdP asserted, for tests of what comes after verification (stores,
/// headers, tokens). The name says what it is.
pub fn unverified_principal_for_tests(
    idp: &str,
    name_id: &str,
    level: Level,
    attributes: &[(policies::Attribute, &str)],
) -> crate::VerifiedPrincipal {
    crate::principal::Principal::asserted(
        crate::principal::Protocol::Saml,
        idp.into(),
        name_id.into(),
        None,
        level,
        None,
        attributes
            .iter()
            .map(|(a, v)| (*a, v.to_string()))
            .collect(),
    )
}

/// A pending login as if an AuthnRequest `request_id` had been sent to `idp` from the browser
/// with `binding`, for tests of the stores that keep them.
pub fn pending_login_for_tests(
    request_id: &str,
    idp: &crate::Idp,
    binding: &crate::BrowserBinding,
) -> crate::PendingLogin {
    crate::PendingLogin::sent(
        request_id.into(),
        Utc::now(),
        crate::RelayDigest::of(request_id.as_bytes()),
        policies::AttributeMask::EMPTY,
        crate::LoginStart {
            provider: crate::Provider::Saml(idp),
            wanted: policies::AttributeMask::EMPTY,
            level: Level::SpidL2,
            attribute_set: 1,
            binding,
            return_to: "http://portal.localhost/".into(),
            replaces: None,
            handoff_binding: None,
            prefer_post: false,
            audience: policies::Audience::Sp,
        },
    )
}

/// Polls a future that needs no waking (an audit sink that writes nowhere, say) to its end.
pub fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// An audit sink that keeps nothing, for benchmarks and fuzzing of the login door.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardAudit;

impl crate::AuditSink for DiscardAudit {
    fn record(
        &self,
        _record: crate::AuditRecord,
    ) -> impl std::future::Future<Output = Result<(), crate::AuditError>> + Send {
        std::future::ready(Ok(()))
    }
}

/// Largest inflated message an IdP reads from the SP.
const MAX_SP_MESSAGE: u64 = 64 * 1024;

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

use crate::saml::slo::{decode_form as form_decode, form_field as raw_param};

/// A signed HTTP-Redirect message from the SP, as an IdP reads it: the signature checked over
/// the raw query (RSA-SHA256, the SP's certificate), then inflated (bounded) and parsed through
/// [`crate::untrusted`]. The document and the RelayState.
fn verified_sp_message(
    query: &str,
    param: &str,
    sp_cert: &openssl::x509::X509,
) -> Result<(libxml::tree::Document, Option<String>), String> {
    use std::io::Read as _;
    let value = raw_param(query, param).ok_or("the message is missing")?;
    let sig_alg = raw_param(query, "SigAlg").ok_or("the request is not signed (no SigAlg)")?;
    let signature = raw_param(query, "Signature").ok_or("the request is not signed")?;
    if form_decode(sig_alg) != RSA_SHA256 {
        return Err("signature algorithm other than RSA-SHA256".into());
    }
    let mut signed = format!("{param}={value}");
    let relay = raw_param(query, "RelayState");
    if let Some(rs) = relay {
        signed.push_str("&RelayState=");
        signed.push_str(rs);
    }
    signed.push_str("&SigAlg=");
    signed.push_str(sig_alg);
    let signature = base64::engine::general_purpose::STANDARD
        .decode(form_decode(signature))
        .map_err(|_| "the signature is not base64")?;
    let key = sp_cert.public_key().map_err(|e| e.to_string())?;
    let ok = openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key)
        .and_then(|mut v| {
            v.update(signed.as_bytes())?;
            v.verify(&signature)
        })
        .unwrap_or(false);
    if !ok {
        return Err("the signature does not verify with the SP's certificate".into());
    }
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(form_decode(value))
        .map_err(|_| "the message is not base64")?;
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .take(MAX_SP_MESSAGE)
        .read_to_string(&mut xml)
        .map_err(|_| "the message does not inflate")?;
    let doc = crate::untrusted::parse(&xml, MAX_SP_MESSAGE as usize)
        .map_err(|r| format!("the message is not acceptable XML: {}", r.reason()))?;
    Ok((doc, relay.map(form_decode)))
}

fn element_text(root: &libxml::tree::Node, name: &str) -> Option<String> {
    if root.get_name() == name {
        return Some(root.get_content().trim().to_string());
    }
    root.get_child_elements()
        .iter()
        .find_map(|c| element_text(c, name))
}

/// An SP's AuthnRequest as an IdP reads it.
#[derive(Debug, Clone)]
pub struct ReadAuthnRequest {
    /// `ID`.
    pub id: String,
    /// `Destination`.
    pub destination: Option<String>,
    /// The `Issuer`'s text.
    pub issuer: Option<String>,
    /// The level asked for (level 1 when none is named).
    pub level: Level,
    /// `AttributeConsumingServiceIndex` (0 when absent).
    pub attribute_set: u16,
    /// The RelayState that came with it.
    pub relay_state: Option<String>,
}

/// Reads the SP's signed AuthnRequest from an HTTP-Redirect query.
pub fn read_authn_request(
    query: &str,
    sp_cert: &openssl::x509::X509,
) -> Result<ReadAuthnRequest, String> {
    let (doc, relay_state) = verified_sp_message(query, "SAMLRequest", sp_cert)?;
    let root = doc
        .get_root_element()
        .filter(|r| r.get_name() == "AuthnRequest")
        .ok_or("not an AuthnRequest")?;
    let id = root
        .get_attribute("ID")
        .filter(|i| !i.is_empty())
        .ok_or("an AuthnRequest without ID")?;
    Ok(ReadAuthnRequest {
        id,
        destination: root.get_attribute("Destination"),
        issuer: element_text(&root, "Issuer"),
        level: element_text(&root, "AuthnContextClassRef")
            .and_then(|r| Level::ALL.into_iter().find(|l| l.class_ref() == r))
            .unwrap_or(Level::SpidL1),
        attribute_set: root
            .get_attribute("AttributeConsumingServiceIndex")
            .and_then(|i| i.parse().ok())
            .unwrap_or(0),
        relay_state,
    })
}

/// Reads the SP's signed LogoutRequest from an HTTP-Redirect query: its `ID`.
pub fn read_logout_request(query: &str, sp_cert: &openssl::x509::X509) -> Result<String, String> {
    let (doc, _) = verified_sp_message(query, "SAMLRequest", sp_cert)?;
    doc.get_root_element()
        .filter(|r| r.get_name() == "LogoutRequest")
        .and_then(|r| r.get_attribute("ID"))
        .ok_or_else(|| "not a LogoutRequest".to_string())
}

/// The IdP's successful LogoutResponse to `in_response_to`, signed for the HTTP-Redirect binding
/// to the SP's `slo_url`: the URL to send the browser to.
pub fn logout_response_redirect(
    key_pem: &std::path::Path,
    cert_pem: &std::path::Path,
    issuer: &str,
    slo_url: &str,
    in_response_to: &str,
) -> Result<String, String> {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let response = format!(
        "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_{rid}\" Version=\"2.0\" IssueInstant=\"{now}\" Destination=\"{dest}\" InResponseTo=\"{id}\">\
<saml:Issuer Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:entity\">{issuer}</saml:Issuer>\
<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status></samlp:LogoutResponse>",
        rid = crate::random_token(16, false),
        dest = escape(slo_url),
        id = escape(in_response_to),
        issuer = escape(issuer),
    );
    idp_redirect(key_pem, cert_pem, slo_url, "SAMLResponse", &response)
}

/// The OpenID Connect inputs from outside, for the fuzz target: a callback query, a provider's
/// JWK Set and a token verified with it, then checked as an ID token of a pending login. Returns
/// whether the token was accepted (never, for fuzzed bytes).
pub fn oidc_untrusted_inputs(query: &str, jwks: &[u8], token: &str) -> bool {
    let callback = crate::Callback::oidc_redirect(query);
    let _ = callback.answers();
    let _ = format!("{callback:?}");
    let Ok(keys) = josekit::jwk::JwkSet::from_bytes(jwks) else {
        return false;
    };
    let Ok((claims, alg)) = crate::oidc::jose::verify(token, &keys) else {
        return false;
    };
    let config = policies::OidcConfig {
        issuer: "https://op.example".into(),
        client_id: "varco".into(),
        client_auth: policies::ClientAuth::PrivateKeyJwt,
        key: None,
        display_name: "OP".into(),
        kind: policies::IdpKind::Spid,
        scopes: vec!["openid".into()],
        claims: Vec::new(),
        acr: Level::ALL
            .into_iter()
            .map(|l| (l, l.class_ref().to_string()))
            .collect(),
        federation: false,
    };
    let provider = crate::oidc::provider::OidcProvider::for_tests(config, None);
    let binding = crate::BrowserBinding::new();
    let pending = crate::PendingLogin::sent(
        "rid".into(),
        Utc::now(),
        crate::RelayDigest::of(b"state"),
        policies::AttributeMask::EMPTY,
        crate::LoginStart {
            provider: crate::Provider::Oidc(&provider),
            wanted: policies::AttributeMask::EMPTY,
            level: Level::SpidL2,
            attribute_set: 0,
            binding: &binding,
            return_to: "https://portal.example/".into(),
            replaces: None,
            handoff_binding: None,
            prefer_post: false,
            audience: policies::Audience::Sp,
        },
    );
    crate::oidc::flow::check_id_token(
        &provider,
        &pending,
        &crate::RelayDigest::of(b"nonce"),
        &claims,
        alg,
        Some("token"),
        Utc::now().timestamp(),
    )
    .is_ok()
}

/// An OpenID provider's signing key, for the DEMO OpenID provider and tests: signs whatever
/// claims it is given.
#[derive(Debug)]
pub struct TestOpKey(crate::oidc::jose::RpKey);

impl TestOpKey {
    /// Reads a PEM private key (RSA 2048+ signs RS256, EC P-256 ES256).
    pub fn load(path: &std::path::Path) -> Result<Self, crate::Error> {
        crate::oidc::jose::RpKey::load(path).map(Self)
    }

    /// Its public key as a JWK Set.
    pub fn public_jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [self.0.public_jwk()] })
    }

    /// `claims` as a compact JWS with this key.
    pub fn sign(&self, claims: serde_json::Map<String, serde_json::Value>) -> Option<String> {
        self.0.sign(claims, None).ok()
    }

    /// The `at_hash` of an access token for an ID token signed with this key.
    pub fn at_hash(&self, access_token: &str) -> String {
        crate::oidc::jose::half_hash(
            self.0.public_jwk()["alg"].as_str().unwrap_or("RS256"),
            access_token,
        )
    }
}

/// The claims of `token` if a key of the JWK Set `jwks` verifies it (RS/PS/ES only): how the
/// DEMO OpenID provider checks varco's client assertions and request objects.
pub fn verify_jws(
    token: &str,
    jwks: &serde_json::Value,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let set = josekit::jwk::JwkSet::from_bytes(jwks.to_string()).ok()?;
    crate::oidc::jose::verify(token, &set).ok().map(|(c, _)| c)
}

/// A federation registry as AgID publishes one: an `md:EntitiesDescriptor` with ID `id` holding
/// `entities` (each an `EntityDescriptor` document of its own; an XML declaration is dropped),
/// with `validUntil` when given, signed on its root with `key` (the federation's, here a test
/// one).
pub fn signed_registry(
    entities: &[&str],
    id: &str,
    valid_until: Option<DateTime<Utc>>,
    key: &TestIdpKey,
) -> Result<String, String> {
    let until = valid_until
        .map(|t| format!(" validUntil=\"{}\"", ts(t)))
        .unwrap_or_default();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" ID=\"{id}\" Name=\"https://registry.test\"{until}>"
    );
    xml.push_str(&signature_template(id, &key.cert_b64));
    for e in entities {
        let e = e.trim_start();
        let body = if e.starts_with("<?xml") {
            e.split_once("?>").map_or(e, |(_, rest)| rest)
        } else {
            e
        };
        xml.push_str(body);
    }
    xml.push_str("</md:EntitiesDescriptor>");
    Crypto::sign_xml(xml.as_bytes(), &key.key_der).map_err(|e| e.to_string())
}
