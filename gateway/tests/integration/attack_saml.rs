//! SAML attacks over HTTP, against a real gateway, for the ACS, the SLO endpoint and IdP
//! metadata alike: signature wrapping, comments, duplicate IDs, DTDs and entities, transforms,
//! SHA-1, key confusion, replay, unsolicited and cross-SP answers, level downgrade. Each table
//! has a positive control (the genuine message is accepted), so a refusal is known to come from
//! the attack and not from a broken fixture. (The parsers' own cases are in idp-bridge's unit
//! tests; these show that varco as deployed refuses them.)

use base64::Engine as _;
use idp_bridge::insecure_test_idp::{
    sign_all, signature_template_for, with_sha1, without_declaration, ResponseBuilder, TestIdpKey,
};
use policies::Level;

use crate::citizen::*;
use crate::harness::*;

fn gateway() -> Gateway {
    pub_and_tari("", echo("attack-saml"))
}

fn b64(x: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(x)
}

#[test]
fn slo_a_signed_assertion_wrapped_in_a_forged_logout_request_ends_no_session() {
    let gw = gateway();
    rt().block_on(async {
        let mut victim = Browser::new(&gw);
        assert_eq!(victim.visit(&gw.url("a.test", "/tari/")).await.status, 200);
        let cookie = format!(
            "varco_session={}",
            victim.cookie("a.test", "varco_session").expect("session")
        );
        // The attacker's own login gave them an Assertion signed by the IdP; they wrap it in a
        // LogoutRequest that names the victim's NameID.
        let mut own = ResponseBuilder::new(
            IDP,
            "http://portal.localhost/.sso/metadata",
            &gw.url("portal.localhost", "/.sso/acs"),
            "_theirs",
        );
        own.sign_response = false;
        let signed = own.signed_xml(&idp_key()).expect("sign");
        let start = signed.find("<saml:Assertion").expect("assertion");
        let end = signed.find("</saml:Assertion>").expect("end") + "</saml:Assertion>".len();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let forged = format!(
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_forged\" Version=\"2.0\" IssueInstant=\"{now}\" Destination=\"{}\">\
<saml:Issuer>{IDP}</saml:Issuer><samlp:Extensions>{}</samlp:Extensions>\
<saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:transient\" NameQualifier=\"{IDP}\">{}</saml:NameID></samlp:LogoutRequest>",
            gw.url("portal.localhost", "/.sso/slo"),
            &signed[start..end],
            victim.idp.name_id,
        );
        let r = gw
            .client()
            .post(gw.url("portal.localhost", "/.sso/slo"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("SAMLRequest={}", enc(&b64(forged.as_bytes()))))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 403);
        assert_eq!(
            session_status(&gw, gw.port, "a.test", &cookie).await,
            200,
            "the victim is still logged in"
        );
    });
}

/// Starts a login in `b` and makes the IdP's genuine, signed answer to it: the ACS URL, the
/// request ID and the answer's XML.
async fn genuine_answer(gw: &Gateway, b: &mut Browser) -> (String, String, String) {
    let id = b.start_login(gw).await.1;
    let acs = gw.url("portal.localhost", "/.sso/acs");
    let genuine = ResponseBuilder::new(IDP, "http://portal.localhost/.sso/metadata", &acs, &id)
        .signed_xml(&idp_key())
        .expect("sign");
    (acs, id, genuine)
}

#[test]
fn acs_a_signed_response_nested_in_an_unsigned_one_is_refused() {
    let gw = gateway();
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        let (acs, id, genuine) = genuine_answer(&gw, &mut b).await;
        let mut outer =
            ResponseBuilder::new(IDP, "http://portal.localhost/.sso/metadata", &acs, &id);
        outer.sign_response = false;
        outer.sign_assertion = false;
        outer.attributes[0].1 = "TINIT-VRDGPP80A01H501X".into();
        let wrapped = outer.unsigned_xml(&idp_key()).replacen(
            "</saml:Issuer>",
            &format!(
                "</saml:Issuer><samlp:Extensions>{}</samlp:Extensions>",
                without_declaration(&genuine)
            ),
            1,
        );
        let form = format!("SAMLResponse={}", enc(&b64(wrapped.as_bytes())));
        let r = b
            .send(reqwest::Method::POST, &acs, Some(form), gw.port)
            .await;
        assert_eq!(r.status(), 403);
        assert!(b.cookie("portal.localhost", "varco_session").is_none());
    });
}

#[test]
fn acs_a_dtd_hidden_in_a_bom_less_utf16_document_is_refused() {
    let gw = gateway();
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        let (acs, _, genuine) = genuine_answer(&gw, &mut b).await;
        let doc = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?><!DOCTYPE r [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{}",
            without_declaration(&genuine)
        );
        let utf16: Vec<u8> = doc.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let form = format!("SAMLResponse={}", enc(&b64(&utf16)));
        let r = b
            .send(reqwest::Method::POST, &acs, Some(form), gw.port)
            .await;
        assert_eq!(r.status(), 400);
        assert!(b.cookie("portal.localhost", "varco_session").is_none());
    });
}

/// A key pair that is not the IdP's: varco's own SP key, which an attacker can pair with its
/// public certificate in `KeyInfo`.
fn attacker_key() -> TestIdpKey {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/keys");
    TestIdpKey::from_pem(
        &std::fs::read(dir.join("sp.key")).expect("key"),
        &std::fs::read(dir.join("sp.crt")).expect("cert"),
    )
    .expect("key pair")
}

const SP: &str = "http://portal.localhost/.sso/metadata";

/// One forged (or genuine) answer to a login started at level 2.
struct AcsCase {
    name: &'static str,
    /// From the ACS URL and the request ID to the document posted.
    make: fn(&str, &str) -> String,
    /// Expected status; 200 means a session is made.
    status: u16,
}

fn answer(acs: &str, id: &str) -> ResponseBuilder {
    ResponseBuilder::new(IDP, SP, acs, id)
}

fn signed(b: &ResponseBuilder) -> String {
    b.signed_xml(&idp_key()).expect("sign")
}

const ACS_CASES: &[AcsCase] = &[
    AcsCase {
        name: "control: the genuine answer",
        make: |acs, id| signed(&answer(acs, id)),
        status: 200,
    },
    AcsCase {
        name: "unsigned",
        make: |acs, id| {
            let mut b = answer(acs, id);
            (b.sign_response, b.sign_assertion) = (false, false);
            b.unsigned_xml(&idp_key())
        },
        status: 403,
    },
    AcsCase {
        name: "an attribute changed after signing",
        make: |acs, id| signed(&answer(acs, id)).replace("RSSMRA80A01H501U", "VRDGPP80A01H501X"),
        status: 403,
    },
    AcsCase {
        name: "wrapping: a forged assertion before the signed one",
        make: |acs, id| {
            let genuine = signed(&answer(acs, id));
            let at = genuine.find("<saml:Assertion").expect("assertion");
            let end = genuine.find("</saml:Assertion>").expect("end") + 17;
            let forged = genuine[at..end]
                .replace("RSSMRA80A01H501U", "VRDGPP80A01H501X")
                .replacen(" ID=\"", " ID=\"x", 1);
            format!("{}{forged}{}", &genuine[..at], &genuine[at..])
        },
        status: 403,
    },
    AcsCase {
        name: "duplicate IDs: an unsigned copy of the assertion with the same ID",
        make: |acs, id| {
            let genuine = signed(&answer(acs, id));
            let at = genuine.find("<saml:Assertion").expect("assertion");
            let end = genuine.find("</saml:Assertion>").expect("end") + 17;
            let copy = genuine[at..end].replace("RSSMRA80A01H501U", "VRDGPP80A01H501X");
            format!("{}{copy}{}", &genuine[..end], &genuine[end..])
        },
        status: 403,
    },
    AcsCase {
        name: "a DTD with an internal entity",
        make: |acs, id| {
            let genuine = signed(&answer(acs, id));
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY e \"RSSMRA\">]>{}",
                without_declaration(&genuine)
            )
        },
        status: 400,
    },
    AcsCase {
        name: "an XPath transform that leaves the attributes out of the signature",
        make: |acs, id| {
            let b = answer(acs, id);
            let xpath = "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\"><ds:XPath xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">not(ancestor-or-self::saml:AttributeStatement)</ds:XPath></ds:Transform>";
            let template = b.unsigned_xml(&idp_key()).replace(
                "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
                &format!(
                    "{xpath}<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>"
                ),
            );
            sign_all(&template, &idp_key()).expect("sign")
        },
        status: 400,
    },
    AcsCase {
        name: "signed with SHA-1",
        make: |acs, id| {
            sign_all(
                &with_sha1(&answer(acs, id).unsigned_xml(&idp_key())),
                &idp_key(),
            )
            .expect("sign")
        },
        status: 403,
    },
    AcsCase {
        name: "key confusion: signed by another key, its certificate in KeyInfo",
        make: |acs, id| answer(acs, id).signed_xml(&attacker_key()).expect("sign"),
        status: 403,
    },
    AcsCase {
        name: "unsolicited: an answer to no request of this browser",
        make: |acs, _| signed(&answer(acs, "_never_asked")),
        status: 403,
    },
    AcsCase {
        name: "cross-SP: the audience is another service provider",
        make: |acs, id| {
            let mut b = answer(acs, id);
            b.audience = "https://altro-comune.example/metadata".into();
            signed(&b)
        },
        status: 403,
    },
    AcsCase {
        name: "cross-SP: meant for another ACS",
        make: |_, id| signed(&answer("https://altro-comune.example/acs", id)),
        status: 403,
    },
    AcsCase {
        name: "another issuer signing with the IdP's key",
        make: |acs, id| {
            let mut b = answer(acs, id);
            b.idp = "https://idp.attaccante.example".into();
            signed(&b)
        },
        status: 403,
    },
    AcsCase {
        name: "level downgrade: level 1 asserted for a level 2 request",
        make: |acs, id| {
            let mut b = answer(acs, id);
            b.level = Level::SpidL1;
            signed(&b)
        },
        status: 403,
    },
    AcsCase {
        name: "expired: issued an hour ago",
        make: |acs, id| {
            let mut b = answer(acs, id);
            b.issue_instant = chrono::Utc::now() - chrono::Duration::hours(1);
            signed(&b)
        },
        status: 403,
    },
];

#[test]
fn acs_every_class_of_forged_answer_is_refused_and_the_genuine_one_accepted() {
    let gw = gateway();
    let acs = gw.url("portal.localhost", "/.sso/acs");
    let level2 = format!("{}&level=SpidL2", login_url(&gw));
    rt().block_on(async {
        let mut wrong = Vec::new();
        for case in ACS_CASES {
            let mut b = Browser::new(&gw);
            let at_idp = location_of(&b.get(&level2).await);
            let id = xml_attr(&saml_param(&at_idp, "SAMLRequest"), "ID").expect("ID");
            let form = format!(
                "SAMLResponse={}",
                enc(&b64((case.make)(&acs, &id).as_bytes()))
            );
            let r = b
                .send(reqwest::Method::POST, &acs, Some(form), gw.port)
                .await;
            let status = r.status().as_u16();
            let session = b.cookie("portal.localhost", "varco_session").is_some();
            let body = r.text().await.unwrap_or_default();
            let page_ok = status == 200 || body.contains("lang=\"it\"");
            if status != case.status || session != (case.status == 200) || !page_ok {
                wrong.push(format!("{}: {status}, session {session}", case.name));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    });
}

#[test]
fn acs_a_comment_inside_a_signed_value_truncates_nothing() {
    // Exclusive canonicalisation drops comments, so the signature still holds; a reader that
    // takes the first text node would see "TINIT-RSSMRA" (another person's fiscal number).
    let gw = gateway();
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        let (acs, _, genuine) = genuine_answer(&gw, &mut b).await;
        let commented = genuine.replace("TINIT-RSSMRA80A01H501U", "TINIT-RSSMRA<!---->80A01H501U");
        assert_ne!(commented, genuine);
        let form = format!("SAMLResponse={}", enc(&b64(commented.as_bytes())));
        let r = b
            .send(reqwest::Method::POST, &acs, Some(form), gw.port)
            .await;
        if r.status() == 200 {
            let r = b.get(&gw.url("portal.localhost", "/.sso/session")).await;
            let j: serde_json::Value = r.json().await.expect("json");
            assert_eq!(j["attributes"]["fiscalNumber"], "TINIT-RSSMRA80A01H501U");
        } else {
            assert_eq!(r.status(), 403);
            assert!(b.cookie("portal.localhost", "varco_session").is_none());
        }
    });
}

#[test]
fn acs_a_replayed_answer_makes_no_second_session() {
    let gw = gateway();
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        let (acs, _, genuine) = genuine_answer(&gw, &mut b).await;
        let form = format!("SAMLResponse={}", enc(&b64(genuine.as_bytes())));
        let r = b
            .send(reqwest::Method::POST, &acs, Some(form.clone()), gw.port)
            .await;
        assert_eq!(r.status(), 200);
        // The same answer again, from the same browser and from a fresh one.
        let again = b
            .send(reqwest::Method::POST, &acs, Some(form.clone()), gw.port)
            .await;
        assert_eq!(again.status(), 403);
        let mut thief = Browser::new(&gw);
        let stolen = thief
            .send(reqwest::Method::POST, &acs, Some(form), gw.port)
            .await;
        assert_eq!(stolen.status(), 403);
        assert!(thief.cookie("portal.localhost", "varco_session").is_none());
    });
}

/// A LogoutRequest from the test IdP for `name_id`, with a signature template when `signed`.
fn logout_request(gw: &Gateway, name_id: &str, key: Option<&TestIdpKey>) -> String {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let id = format!("_lr{}", rand_suffix());
    let sig = key.map_or(String::new(), |k| signature_template_for(&id, k));
    format!(
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{now}\" Destination=\"{}\">\
<saml:Issuer>{IDP}</saml:Issuer>{sig}<saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:transient\" NameQualifier=\"{IDP}\">{name_id}</saml:NameID></samlp:LogoutRequest>",
        gw.url("portal.localhost", "/.sso/slo"),
    )
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[test]
fn slo_every_class_of_forged_logout_request_is_refused_and_the_genuine_one_accepted() {
    let gw = gateway();
    let slo = gw.url("portal.localhost", "/.sso/slo");
    type Make = fn(&Gateway, &str) -> String;
    let cases: &[(&str, Make, u16)] = &[
        ("unsigned", |gw, nid| logout_request(gw, nid, None), 403),
        (
            "key confusion: signed by another key, its certificate in KeyInfo",
            |gw, nid| {
                let k = attacker_key();
                sign_all(&logout_request(gw, nid, Some(&k)), &k).expect("sign")
            },
            403,
        ),
        (
            "signed with SHA-1",
            |gw, nid| {
                let k = idp_key();
                sign_all(&with_sha1(&logout_request(gw, nid, Some(&k))), &k).expect("sign")
            },
            403,
        ),
        (
            "the NameID changed after signing",
            |gw, nid| {
                let k = idp_key();
                sign_all(&logout_request(gw, "_someone_else", Some(&k)), &k)
                    .expect("sign")
                    .replace("_someone_else", nid)
            },
            403,
        ),
        (
            "a DTD with an internal entity",
            |gw, nid| {
                let k = idp_key();
                let signed = sign_all(&logout_request(gw, nid, Some(&k)), &k).expect("sign");
                format!(
                    "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY e \"x\">]>{}",
                    without_declaration(&signed)
                )
            },
            400,
        ),
        (
            "stale: issued an hour ago",
            |gw, nid| {
                let k = idp_key();
                let old = (chrono::Utc::now() - chrono::Duration::hours(1))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let fresh = logout_request(gw, nid, Some(&k));
                let at = fresh.find("IssueInstant=\"").expect("instant") + 14;
                let end = at + fresh[at..].find('"').expect("end");
                sign_all(&format!("{}{old}{}", &fresh[..at], &fresh[end..]), &k).expect("sign")
            },
            403,
        ),
    ];
    rt().block_on(async {
        let mut victim = Browser::new(&gw);
        assert_eq!(victim.visit(&gw.url("a.test", "/tari/")).await.status, 200);
        let cookie = format!(
            "varco_session={}",
            victim.cookie("a.test", "varco_session").expect("session")
        );
        let post = |xml: String| {
            let c = gw.client();
            let slo = slo.clone();
            async move {
                c.post(slo)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("SAMLRequest={}", enc(&b64(xml.as_bytes()))))
                    .send()
                    .await
                    .expect("send")
                    .status()
                    .as_u16()
            }
        };
        let mut wrong = Vec::new();
        for (name, make, want) in cases {
            let got = post(make(&gw, &victim.idp.name_id)).await;
            let alive = session_status(&gw, gw.port, "a.test", &cookie).await == 200;
            if got != *want || !alive {
                wrong.push(format!("{name}: {got}, session alive {alive}"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        // Control: the genuine request ends the session, once.
        let k = idp_key();
        let genuine =
            sign_all(&logout_request(&gw, &victim.idp.name_id, Some(&k)), &k).expect("sign");
        assert_eq!(post(genuine.clone()).await, 200, "the genuine request");
        assert_eq!(session_status(&gw, gw.port, "a.test", &cookie).await, 401);
        assert_eq!(post(genuine).await, 403, "a LogoutRequest works once");
    });
}

/// The test IdP's metadata with an ID on its root, signed there by the test federation key
/// (the IdP's own key stands in for AgID's); `edit` changes the template before signing.
fn federation_signed(edit: fn(String) -> String) -> String {
    let good = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../idp-bridge/test_vectors/spid-sp-test-idp.xml"),
    )
    .expect("fixture");
    let with_id = good.replacen(
        &format!("entityID=\"{IDP}\""),
        &format!("entityID=\"{IDP}\" ID=\"_fed\""),
        1,
    );
    let close = with_id.find('>').expect("root") + 1;
    let template = edit(signature_template_for("_fed", &idp_key()));
    let unsigned = format!("{}{template}{}", &with_id[..close], &with_id[close..]);
    sign_all(&unsigned, &idp_key()).expect("sign")
}

#[test]
fn metadata_forged_wrapped_or_weakly_signed_is_refused_at_start_and_at_reload() {
    let idp_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../idp-bridge/test_vectors/spid-sp-test-idp");
    let be = echo("attack-metadata");
    let genuine = federation_signed(|t| t);
    let genuine_cert = genuine
        .split("<ds:X509Certificate>")
        .nth(1)
        .and_then(|s| s.split("</ds:X509Certificate>").next())
        .expect("cert")
        .to_string();
    let attacker_cert = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/keys/sp.crt"),
    )
    .expect("cert")
    .lines()
    .filter(|l| !l.starts_with("-----"))
    .collect::<String>();
    let plain = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../idp-bridge/test_vectors/spid-sp-test-idp.xml"),
    )
    .expect("fixture");
    // The attacker can write the file but not sign: they keep the genuine signed descriptor
    // inside their own, whose signing key is theirs.
    let forged = plain.replace(&genuine_cert, &attacker_cert);
    let close = forged.find('>').expect("root") + 1;
    let wrapped = format!(
        "{}<md:Extensions>{}</md:Extensions>{}",
        &forged[..close],
        without_declaration(&genuine),
        &forged[close..]
    );
    let cases = [
        ("unsigned", plain.clone()),
        ("wrapped", wrapped),
        ("sha1", federation_signed(|t| with_sha1(&t))),
        ("tampered", genuine.replace(&genuine_cert, &attacker_cert)),
        (
            "dtd",
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY e \"x\">]>{}",
                without_declaration(&genuine)
            ),
        ),
    ];
    let configure = |text: String, path: &std::path::Path| {
        text.replace(
            "[[idp]]\nmetadata = ",
            &format!(
                "[[idp]]\nfederation_cert = \"{}\"\nmetadata = ",
                idp_dir.join("public.cert").display()
            ),
        )
        .replace(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../idp-bridge/test_vectors/spid-sp-test-idp.xml")
                .display()
                .to_string(),
            &path.display().to_string(),
        )
    };
    for (name, xml) in &cases {
        let (dir, _, _) = write_config("", &pub_and_tari_policies(be));
        let path = dir.path().join("idp.xml");
        std::fs::write(&path, xml).expect("write");
        let main = dir.path().join("varco.toml");
        let text = std::fs::read_to_string(&main).expect("read");
        let configured = configure(text, &path);
        assert!(configured.contains("federation_cert"), "{configured}");
        std::fs::write(&main, configured).expect("write");
        match gateway::state::Shared::load(&main) {
            Ok(_) => panic!("{name}: metadata accepted"),
            Err(e) => assert!(e.to_string().contains("idp.xml"), "{name}: {e}"),
        }
    }
    // At a reload, each forged file leaves the genuine metadata serving.
    let gw = Gateway::start_edited("", &pub_and_tari_policies(be), |text, _| text);
    let path = gw.dir.path().join("idp.xml");
    std::fs::write(&path, &genuine).expect("write");
    let main = gw.config_path();
    let configured = configure(std::fs::read_to_string(&main).expect("read"), &path);
    std::fs::write(&main, configured).expect("write");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gw
        .shared
        .current()
        .snapshot
        .config
        .idps
        .iter()
        .any(|i| i.federation_cert.is_some())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the federated configuration was not loaded"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for (kept, (name, xml)) in cases.iter().enumerate() {
        std::fs::write(&path, xml).expect("write");
        std::fs::write(&main, std::fs::read_to_string(&main).expect("read") + "\n").expect("touch");
        let want = format!(" {}", kept + 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !gw.metrics().lines().any(|l| {
            l.starts_with("varco_security_events_total")
                && l.contains("metadata_kept")
                && l.ends_with(&want)
        }) {
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: not kept ({want})"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        rt().block_on(async {
            let mut b = Browser::new(&gw);
            assert_eq!(
                b.visit(&gw.url("a.test", "/tari/")).await.status,
                200,
                "{name}: logins still work"
            );
        });
    }
}
