//! Hostile responses against the ACS. Each is built from a valid response signed with the test
//! IdP key (`test_vectors/spid-sp-test-idp/`) and then altered the way the attack alters it; see
//! `test_vectors/README.md`.

use std::path::PathBuf;

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::insecure_test_idp::{ready, sign_all, DiscardAudit, ResponseBuilder, TestIdpKey};
use crate::login::{Callback, FinishError, LoginStart, PendingLogin, Sp};
use crate::secret::RelayDigest;
use policies::LoginFailure;

const IDP: &str = "https://localhost:8443";

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_vectors")
}

/// A one-shot store of pending logins, as the gateway's are.
#[derive(Default)]
struct Store(Mutex<HashMap<String, PendingLogin>>);

impl Store {
    fn put(&self, p: PendingLogin) {
        self.0.lock().expect("store").insert(p.store_key(), p);
    }
    fn take(&self, id: &str, binding: &crate::BindingDigest) -> Option<PendingLogin> {
        self.0
            .lock()
            .expect("store")
            .remove(&PendingLogin::key_for(id, binding))
    }
}

/// The example deployment's configuration: its SP is the one answers are addressed to.
fn config() -> &'static policies::Config {
    static CONFIG: std::sync::OnceLock<policies::Config> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/varco.toml");
        policies::load(&path).expect("the example loads").config
    })
}

/// The same deployment with the Region as SPID aggregator of its comuni.
fn aggregator_config() -> &'static policies::Config {
    static CONFIG: std::sync::OnceLock<policies::Config> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        let mut c = config().clone();
        c.sp.mode = policies::SpMode::Aggregator(policies::Aggregator {
            ipa_code: Some("r_toscan".into()),
            vat_number: None,
            fiscal_code: None,
            company: "Regione Toscana".into(),
            email: "spid@regione.toscana.example".into(),
            phone: None,
        });
        c
    })
}

/// The audience of an example comune (the snapshot's own code, so that it is a real one).
fn comune(ipa: &str) -> policies::Audience {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/varco.toml");
    let snap = policies::load(&path).expect("the example loads");
    let c = snap
        .comuni
        .iter()
        .find(|c| c.ipa_code.as_str() == ipa)
        .expect("an example comune");
    policies::Audience::Comune(c.ipa_code.clone())
}

struct Fixture {
    config: &'static policies::Config,
    audience: policies::Audience,
    idps: IdpRegistry,
    oidc: crate::OidcRegistry,
    keys: crate::SpKeys,
    store: Store,
    key: TestIdpKey,
    binding: BrowserBinding,
    request_id: String,
}

impl Fixture {
    fn new(level: Level) -> Self {
        Self::for_entity(level, config(), policies::Audience::Sp)
    }

    /// A login made for `audience`'s entity under `config`.
    fn for_entity(
        level: Level,
        config: &'static policies::Config,
        audience: policies::Audience,
    ) -> Self {
        let idps = IdpRegistry::load(&[policies::IdpConfig {
            metadata: vectors().join("spid-sp-test-idp.xml"),
            kind: IdpKind::Spid,
            federation_cert: None,
        }])
        .expect("idp");
        let key = TestIdpKey::from_pem(
            &std::fs::read(vectors().join("spid-sp-test-idp/private.key")).expect("key"),
            &std::fs::read(vectors().join("spid-sp-test-idp/public.cert")).expect("cert"),
        )
        .expect("key pair");
        let store = Store::default();
        let binding = BrowserBinding::new();
        let request_id = crate::saml::authn::new_request_id();
        let mut p = pending(&idps, &request_id, &binding, level);
        p.audience = audience.clone();
        store.put(p);
        Self {
            config,
            audience,
            idps,
            oidc: crate::OidcRegistry::default(),
            keys: crate::SpKeys::load(
                &vectors().join("spid-sp-test-idp/private.key"),
                &vectors().join("spid-sp-test-idp/public.cert"),
            )
            .expect("sp keys"),
            store,
            key,
            binding,
            request_id,
        }
    }

    fn response(&self) -> ResponseBuilder {
        let entity = self.config.entity_id(&self.audience);
        let acs = crate::SpEndpoints::of(self.config, &self.audience).acs;
        ResponseBuilder::new(IDP, &entity, &acs, &self.request_id)
    }

    fn post_xml(&self, xml: &str) -> Result<VerifiedLogin, AcsError> {
        self.post_xml_at(xml, self.audience.clone())
    }

    /// Posted to the ACS of `at`'s entity.
    fn post_xml_at(&self, xml: &str, at: policies::Audience) -> Result<VerifiedLogin, AcsError> {
        self.post_b64_at(
            &base64::engine::general_purpose::STANDARD.encode(xml),
            Some(&self.binding),
            at,
        )
    }

    fn post_b64(
        &self,
        b64: &str,
        binding: Option<&BrowserBinding>,
    ) -> Result<VerifiedLogin, AcsError> {
        self.post_b64_at(b64, binding, self.audience.clone())
    }

    /// Through the login door, as the gateway's ACS does it.
    fn post_b64_at(
        &self,
        b64: &str,
        binding: Option<&BrowserBinding>,
        at: policies::Audience,
    ) -> Result<VerifiedLogin, AcsError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("SAMLResponse", b64)
            .finish();
        let callback = Callback::saml_post(form.as_bytes(), at);
        let pending = match (callback.answers(), binding) {
            (Some(id), Some(b)) => self.store.take(&id, &b.digest()),
            _ => None,
        };
        let sp = Sp {
            config: self.config,
            keys: &self.keys,
            idps: &self.idps,
            oidc: &self.oidc,
            cns: None,
        };
        ready(crate::login::finish(
            sp,
            callback,
            pending,
            binding,
            &DiscardAudit,
        ))
        .map_err(|e| match e {
            FinishError::Refused(e) => e,
            other => panic!("{other}"),
        })
    }

    fn signed(&self, b: &ResponseBuilder) -> String {
        b.signed_xml(&self.key).expect("sign")
    }
}

/// The pending login an AuthnRequest with `request_id` left, five seconds ago.
fn pending(
    idps: &IdpRegistry,
    request_id: &str,
    binding: &BrowserBinding,
    level: Level,
) -> PendingLogin {
    PendingLogin::sent(
        request_id.into(),
        Utc::now() - chrono::Duration::seconds(5),
        RelayDigest::of(b""),
        policies::AttributeMask::EMPTY,
        LoginStart {
            provider: crate::Provider::Saml(idps.get(IDP).expect("the IdP")),
            wanted: policies::AttributeMask::EMPTY,
            level,
            attribute_set: 0,
            binding,
            return_to: "https://portal.example/".into(),
            replaces: None,
            handoff_binding: None,
            prefer_post: false,
            audience: policies::Audience::Sp,
        },
    )
}

fn signature_error(r: Result<VerifiedLogin, AcsError>) {
    match r {
        Err(AcsError::Signature(_)) => {}
        other => panic!("expected a signature error, got {other:?}"),
    }
}

#[test]
fn a_valid_response_gives_a_verified_principal() {
    let f = Fixture::new(Level::SpidL2);
    let ok = f.post_xml(&f.signed(&f.response())).expect("accepted");
    assert_eq!(ok.principal.level(), Level::SpidL2);
    assert_eq!(ok.principal.idp(), IDP);
    assert_eq!(
        ok.principal.attribute(Attribute::FiscalNumber),
        Some("TINIT-RSSMRA80A01H501U")
    );
    assert_eq!(ok.return_to, "https://portal.example/");
}

#[test]
fn a_response_is_accepted_once() {
    let f = Fixture::new(Level::SpidL2);
    let xml = f.signed(&f.response());
    assert!(f.post_xml(&xml).is_ok());
    assert_eq!(f.post_xml(&xml).map(|_| ()), Err(AcsError::NoPendingLogin));
}

#[test]
fn unsolicited_and_foreign_browser_responses_are_refused() {
    let f = Fixture::new(Level::SpidL2);
    let mut other = f.response();
    other.in_response_to = "_never_requested".into();
    assert_eq!(
        f.post_xml(&f.signed(&other)).map(|_| ()),
        Err(AcsError::NoPendingLogin)
    );
    let b64 = f.response().to_base64(&f.key).expect("sign");
    assert_eq!(
        f.post_b64(&b64, Some(&BrowserBinding::new())).map(|_| ()),
        Err(AcsError::NoPendingLogin),
        "another browser does not even find the login"
    );
    assert!(
        f.post_b64(&b64, Some(&f.binding)).is_ok(),
        "so the forged POST did not burn it"
    );
}

#[test]
fn a_response_for_another_sp_is_refused() {
    let f = Fixture::new(Level::SpidL2);
    let mut r = f.response();
    r.audience = "https://other-sp.example/metadata".into();
    assert!(
        matches!(f.post_xml(&f.signed(&r)), Err(AcsError::Invalid(m)) if m.contains("Audience"))
    );
    let f = Fixture::new(Level::SpidL2);
    let mut r = f.response();
    r.acs_url = "https://other-sp.example/acs".into();
    assert!(
        matches!(f.post_xml(&f.signed(&r)), Err(AcsError::Invalid(m)) if m.contains("Destination"))
    );
}

#[test]
fn an_aggregated_comunes_login_is_asserted_to_that_comune_only() {
    let capannori = comune("c_b648");
    let f = Fixture::for_entity(Level::SpidL2, aggregator_config(), capannori.clone());
    let ok = f.post_xml(&f.signed(&f.response())).expect("accepted");
    assert_eq!(ok.principal.audience(), &capannori);

    // Asserted to the Region's own SP, or to another comune: not this login's.
    for other in [
        aggregator_config().sp.entity_id.clone(),
        aggregator_config()
            .entity_id(&comune("c_e715"))
            .into_owned(),
    ] {
        let f = Fixture::for_entity(Level::SpidL2, aggregator_config(), capannori.clone());
        let mut r = f.response();
        r.audience = other;
        assert!(
            matches!(f.post_xml(&f.signed(&r)), Err(AcsError::Invalid(m)) if m.contains("Audience"))
        );
    }
    // Addressed to another comune's ACS.
    let f = Fixture::for_entity(Level::SpidL2, aggregator_config(), capannori.clone());
    let mut r = f.response();
    r.acs_url = crate::SpEndpoints::of(aggregator_config(), &comune("c_e715")).acs;
    assert!(
        matches!(f.post_xml(&f.signed(&r)), Err(AcsError::Invalid(m)) if m.contains("Destination"))
    );
    // A good answer posted to another entity's ACS (the SP's, or Lucca's) is refused too.
    for at in [policies::Audience::Sp, comune("c_e715")] {
        let f = Fixture::for_entity(Level::SpidL2, aggregator_config(), capannori.clone());
        assert!(matches!(
            f.post_xml_at(&f.signed(&f.response()), at),
            Err(AcsError::Invalid(m)) if m.contains("another SP's ACS")
        ));
    }
}

#[test]
fn the_assertion_itself_must_be_signed() {
    let f = Fixture::new(Level::SpidL2);
    let mut r = f.response();
    r.sign_assertion = false;
    signature_error(f.post_xml(&f.signed(&r)));
    // Only the Assertion signed is enough.
    let f = Fixture::new(Level::SpidL2);
    let mut r = f.response();
    r.sign_response = false;
    assert!(f.post_xml(&f.signed(&r)).is_ok());
    // Nothing signed.
    let f = Fixture::new(Level::SpidL2);
    let mut r = f.response();
    r.sign_response = false;
    r.sign_assertion = false;
    signature_error(f.post_xml(&r.unsigned_xml(&f.key)));
}

#[test]
fn a_signature_by_another_key_is_refused_even_with_its_certificate_embedded() {
    let f = Fixture::new(Level::SpidL2);
    let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
    let pkey = openssl::pkey::PKey::from_rsa(rsa).expect("pkey");
    let mut name = openssl::x509::X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "attacker").expect("cn");
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().expect("builder");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&pkey).expect("pubkey");
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).expect("t"))
        .expect("nb");
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).expect("t"))
        .expect("na");
    b.sign(&pkey, openssl::hash::MessageDigest::sha256())
        .expect("sign");
    let cert = b.build();
    let attacker = TestIdpKey::from_pem(
        &pkey.private_key_to_pem_pkcs8().expect("pem"),
        &cert.to_pem().expect("pem"),
    )
    .expect("key");
    signature_error(f.post_xml(&f.response().signed_xml(&attacker).expect("sign")));
}

#[test]
fn signature_wrapping_never_yields_the_unsigned_identity() {
    let f = Fixture::new(Level::SpidL2);
    let genuine = f.signed(&f.response());
    let start = genuine.find("<saml:Assertion").expect("assertion");
    let end = genuine.find("</saml:Assertion>").expect("end") + "</saml:Assertion>".len();
    let signed_assertion = &genuine[start..end];
    let evil_assertion = signed_assertion
        .replace("TINIT-RSSMRA80A01H501U", "TINIT-VRDGPP80A01H501X")
        .replacen("ID=\"_a", "ID=\"_evil", 1);
    // XSW1: an evil unsigned assertion before the signed one, in the signed Response.
    let xsw1 = genuine.replacen(
        "<saml:Assertion",
        &format!("{evil_assertion}<saml:Assertion"),
        1,
    );
    // XSW2: the evil assertion replaces the signed one, which moves into the evil one.
    let xsw2 = format!(
        "{}{}{}",
        &genuine[..start],
        evil_assertion.replacen(
            "</saml:Assertion>",
            &format!("{signed_assertion}</saml:Assertion>"),
            1
        ),
        &genuine[end..]
    );
    // XSW3: same ID twice.
    let dup = signed_assertion.replace("TINIT-RSSMRA80A01H501U", "TINIT-VRDGPP80A01H501X");
    let xsw3 = genuine.replacen("<saml:Assertion", &format!("{dup}<saml:Assertion"), 1);
    for (name, xml) in [("xsw1", xsw1), ("xsw2", xsw2), ("xsw3-duplicate-id", xsw3)] {
        let f2 = Fixture {
            request_id: f.request_id.clone(),
            ..Fixture::new(Level::SpidL2)
        };
        f2.store
            .put(pending(&f2.idps, &f.request_id, &f2.binding, Level::SpidL2));
        match f2.post_xml(&xml) {
            Err(_) => {}
            Ok(a) => assert_eq!(
                a.principal.attribute(Attribute::FiscalNumber),
                Some("TINIT-RSSMRA80A01H501U"),
                "{name} returned the unsigned identity"
            ),
        }
    }
}

#[test]
fn a_comment_inside_a_signed_value_does_not_truncate_it() {
    let f = Fixture::new(Level::SpidL2);
    let xml = f
        .signed(&f.response())
        .replace("TINIT-RSSMRA80A01H501U", "TINIT-RSSMRA<!---->80A01H501U");
    match f.post_xml(&xml) {
        Ok(a) => assert_eq!(
            a.principal.attribute(Attribute::FiscalNumber),
            Some("TINIT-RSSMRA80A01H501U")
        ),
        Err(e) => assert!(matches!(e, AcsError::Signature(_)), "{e}"),
    }
}

#[test]
fn dtds_entities_and_xslt_are_refused_before_anything_else() {
    let f = Fixture::new(Level::SpidL2);
    let signed = f.signed(&f.response());
    let dtd = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"{}\">]>{}",
        "x".repeat(10),
        crate::insecure_test_idp::without_declaration(&signed)
    );
    assert!(matches!(f.post_xml(&dtd), Err(AcsError::Dangerous(_))));
    let xslt = signed.replacen(
        "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
        "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"/>",
        1,
    );
    assert!(matches!(f.post_xml(&xslt), Err(AcsError::Dangerous(_))));
}

#[test]
fn sha1_signatures_are_refused() {
    let f = Fixture::new(Level::SpidL2);
    let unsigned = crate::insecure_test_idp::with_sha1(&f.response().unsigned_xml(&f.key));
    signature_error(f.post_xml(&sign_all(&unsigned, &f.key).expect("sign")));
}

#[test]
fn levels_times_and_idp_errors() {
    let f = Fixture::new(Level::SpidL2);
    let mut r = f.response();
    r.level = Level::SpidL1;
    assert!(matches!(f.post_xml(&f.signed(&r)), Err(AcsError::Invalid(m)) if m.contains("SpidL1")));

    let f = Fixture::new(Level::SpidL2);
    let mut r = f.response();
    r.level = Level::SpidL3;
    assert_eq!(
        f.post_xml(&f.signed(&r))
            .expect("higher level is fine")
            .principal
            .level(),
        Level::SpidL3
    );

    let f = Fixture::new(Level::SpidL2);
    let mut r = f.response();
    r.issue_instant = Utc::now() - chrono::Duration::hours(1);
    assert!(
        f.post_xml(&f.signed(&r)).is_err(),
        "an old response is refused"
    );

    let f = Fixture::new(Level::SpidL2);
    let mut r = f.response();
    r.error_code = Some(22);
    let e = f.post_xml(&f.signed(&r)).map(|_| ()).expect_err("refused");
    assert_eq!(e.failure(), LoginFailure::Spid(22));
    assert_eq!(e.status(), 403);
}

#[test]
fn garbage_is_a_400_never_a_panic() {
    let f = Fixture::new(Level::SpidL2);
    for b64 in [
        "",
        "!!!!",
        "PGZvbz4=",
        &"A".repeat(MAX_RESPONSE + 4),
        &base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, 0x00]),
    ] {
        let e = f
            .post_b64(b64, Some(&f.binding))
            .map(|_| ())
            .expect_err("refused");
        assert_eq!(e.status(), 400, "{b64:.20}: {e}");
    }
}

#[test]
fn an_in_response_to_that_varco_never_issued_goes_nowhere_near_the_store() {
    for hostile in [
        "x".repeat(100_000),
        "_a b".into(),
        "_abc\n".into(),
        "*".into(),
    ] {
        let xml = format!(
            "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_r\" InResponseTo=\"{}\"/>",
            hostile.replace('\n', "&#10;")
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
        let r = receive(&b64);
        assert!(
            matches!(r, Err(AcsError::NoPendingLogin | AcsError::Malformed(_))),
            "{}: {r:?}",
            &hostile[..hostile.len().min(20)]
        );
    }
}

#[test]
fn a_signed_response_nested_in_an_unsigned_one_is_refused() {
    // The genuine, IdP-signed Response rides in the Extensions of an unsigned outer Response
    // whose own Assertion claims somebody else: the outer document is what the audit trail
    // keeps, so it must be the signed element, or nothing is accepted.
    let f = Fixture::new(Level::SpidL2);
    let genuine = f.signed(&f.response());
    let genuine = crate::insecure_test_idp::without_declaration(&genuine);
    let mut forged = f.response();
    forged.sign_response = false;
    forged.sign_assertion = false;
    forged.attributes[0].1 = "TINIT-VRDGPP80A01H501X".into();
    let outer = forged.unsigned_xml(&f.key).replacen(
        "</saml:Issuer>",
        &format!("</saml:Issuer><samlp:Extensions>{genuine}</samlp:Extensions>"),
        1,
    );
    signature_error(f.post_xml(&outer));
}

#[test]
fn a_bom_less_utf16_response_cannot_hide_a_dtd() {
    let f = Fixture::new(Level::SpidL2);
    let signed = f.signed(&f.response());
    let body = crate::insecure_test_idp::without_declaration(&signed);
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?><!DOCTYPE r [<!ENTITY a \"x\">]>{body}"
    );
    let bytes: Vec<u8> = doc.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    assert!(matches!(
        f.post_b64(&b64, Some(&f.binding)),
        Err(AcsError::Dangerous(_))
    ));
}
