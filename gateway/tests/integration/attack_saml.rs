//! SAML attacks over HTTP, against a real gateway: signature wrapping at the SLO endpoint and at
//! the ACS, and a DTD hidden in a BOM-less UTF-16 document. (Each attack on the parsers, one by
//! one, is in idp-bridge's unit tests; these show that varco as deployed refuses them.)

use base64::Engine as _;
use idp_bridge::testing::{without_declaration, ResponseBuilder};

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
