use std::path::PathBuf;

use super::*;
use crate::insecure_test_idp::{sign_all, TestIdpKey};
use crate::saml::authn::signed_redirect;
use crate::xml::signature_template;

const SLO: &str = "https://sp.example/.sso/slo";
const IDP: &str = "https://localhost:8443";

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_vectors")
}

fn registry() -> IdpRegistry {
    IdpRegistry::load(&[policies::IdpConfig {
        metadata: vectors().join("spid-sp-test-idp.xml"),
        kind: policies::IdpKind::Spid,
        federation_cert: None,
    }])
    .expect("idp")
}

fn idp_keys() -> SpKeys {
    SpKeys::load(
        &vectors().join("spid-sp-test-idp/private.key"),
        &vectors().join("spid-sp-test-idp/public.cert"),
    )
    .expect("keys")
}

fn idp_logout_request(destination: &str) -> String {
    logout_request_issued(destination, &now())
}

fn logout_request_issued(destination: &str, issued: &str) -> String {
    format!(
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_lr1\" Version=\"2.0\" IssueInstant=\"{issued}\" Destination=\"{destination}\">\
<saml:Issuer Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:entity\">{IDP}</saml:Issuer>\
<saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:transient\" NameQualifier=\"{IDP}\">_abc</saml:NameID><samlp:SessionIndex>_s1</samlp:SessionIndex></samlp:LogoutRequest>"
    )
}

fn query(url: &str) -> &str {
    url.split_once('?').expect("query").1
}

#[test]
fn an_idp_initiated_request_verifies_over_the_raw_query() {
    let url = signed_redirect(
        &idp_keys(),
        SLO,
        "SAMLRequest",
        &idp_logout_request(SLO),
        Some("rs1"),
    )
    .expect("sign");
    let m = verify_redirect(query(&url), &registry(), SLO).expect("verified");
    assert_eq!(
        m,
        LogoutMessage::Request {
            idp: IDP.into(),
            id: "_lr1".into(),
            name_id: "_abc".into(),
            session_index: Some("_s1".into())
        }
    );
}

#[test]
fn an_old_or_future_logout_request_is_refused() {
    for issued in [
        (Utc::now() - chrono::Duration::minutes(20)).to_rfc3339_opts(SecondsFormat::Millis, true),
        (Utc::now() + chrono::Duration::minutes(5)).to_rfc3339_opts(SecondsFormat::Millis, true),
        "yesterday".to_string(),
    ] {
        let url = signed_redirect(
            &idp_keys(),
            SLO,
            "SAMLRequest",
            &logout_request_issued(SLO, &issued),
            None,
        )
        .expect("sign");
        assert!(
            verify_redirect(query(&url), &registry(), SLO).is_err(),
            "IssueInstant {issued} accepted"
        );
    }
}

#[test]
fn tampered_unsigned_weak_or_foreign_redirects_are_refused() {
    let reg = registry();
    let url = signed_redirect(
        &idp_keys(),
        SLO,
        "SAMLRequest",
        &idp_logout_request(SLO),
        None,
    )
    .expect("sign");
    let q = query(&url);
    // Tampered message.
    let value = form_field(q, "SAMLRequest").expect("param");
    let flipped = if value.starts_with('f') {
        value.replacen('f', "g", 1)
    } else {
        format!("f{}", &value[1..])
    };
    assert!(verify_redirect(&q.replacen(value, &flipped, 1), &reg, SLO).is_err());
    // No signature, SHA-1, garbage.
    let unsigned = q.split("&SigAlg=").next().expect("message");
    assert!(matches!(
        verify_redirect(unsigned, &reg, SLO),
        Err(SloError::Untrusted(_))
    ));
    let sha1 = q.replace("xmldsig-more%23rsa-sha256", "xmldsig%23rsa-sha1");
    assert!(matches!(
        verify_redirect(&sha1, &reg, SLO),
        Err(SloError::Untrusted(_))
    ));
    for junk in [
        "",
        "SAMLRequest=%%%",
        "SAMLRequest=AAAA&SigAlg=x&Signature=y",
        "SAMLRequest=a&SAMLResponse=b",
    ] {
        assert!(verify_redirect(junk, &reg, SLO).is_err(), "{junk}");
    }
    // Signed by another key (the SP's own).
    let ex = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/keys");
    let other = SpKeys::load(&ex.join("sp.key"), &ex.join("sp.crt")).expect("keys");
    let forged =
        signed_redirect(&other, SLO, "SAMLRequest", &idp_logout_request(SLO), None).expect("sign");
    assert!(matches!(
        verify_redirect(query(&forged), &reg, SLO),
        Err(SloError::Untrusted(_))
    ));
    // For another SP.
    let elsewhere = signed_redirect(
        &idp_keys(),
        SLO,
        "SAMLRequest",
        &idp_logout_request("https://other.example/slo"),
        None,
    )
    .expect("sign");
    assert!(matches!(
        verify_redirect(query(&elsewhere), &reg, SLO),
        Err(SloError::Untrusted(_))
    ));
}

#[test]
fn post_binding_needs_an_enveloped_signature() {
    let reg = registry();
    let key = TestIdpKey::from_pem(
        &std::fs::read(vectors().join("spid-sp-test-idp/private.key")).expect("key"),
        &std::fs::read(vectors().join("spid-sp-test-idp/public.cert")).expect("cert"),
    )
    .expect("key");
    let cert_b64 = idp_keys().cert_b64().to_string();
    let response = format!(
        "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_lo1\" Version=\"2.0\" IssueInstant=\"2026-11-26T08:00:00.000Z\" Destination=\"{SLO}\" InResponseTo=\"_req\">\
<saml:Issuer>{IDP}</saml:Issuer>{}<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status></samlp:LogoutResponse>",
        signature_template("_lo1", &cert_b64)
    );
    let signed = sign_all(&response, &key).expect("sign");
    let b64 = |x: &str| base64::engine::general_purpose::STANDARD.encode(x);
    assert_eq!(
        verify_post(&b64(&signed), &reg, SLO).expect("verified"),
        LogoutMessage::Response {
            idp: IDP.into(),
            in_response_to: "_req".into(),
            success: true
        }
    );
    assert!(
        verify_post(&b64(&signed.replace("_req", "_other")), &reg, SLO).is_err(),
        "tampered"
    );
    let unsigned = response.replace(&signature_template("_lo1", &cert_b64), "");
    assert!(matches!(
        verify_post(&b64(&unsigned), &reg, SLO),
        Err(SloError::Untrusted(_))
    ));
    assert!(verify_post("!!", &reg, SLO).is_err());
}

#[test]
fn the_sp_request_names_the_subject_and_is_signed() {
    let reg = registry();
    let idp = reg.get(IDP).expect("idp");
    let ex = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/keys");
    let sp = SpKeys::load(&ex.join("sp.key"), &ex.join("sp.crt")).expect("keys");
    let (id, url) = logout_request("https://sp.example/metadata", &sp, idp, "_abc", Some("_s1"))
        .expect("request");
    assert!(
        url.starts_with("https://localhost:8443/samlsso?SAMLRequest=")
            || url.starts_with("https://localhost:8443/"),
        "{url}"
    );
    let xml = inflate(&decode_form(
        form_field(query(&url), "SAMLRequest").expect("param"),
    ))
    .expect("inflate");
    assert!(
        xml.contains(&format!("ID=\"{id}\""))
            && xml.contains(">_abc</saml:NameID>")
            && xml.contains("<samlp:SessionIndex>_s1</samlp:SessionIndex>")
    );
    assert!(form_field(query(&url), "Signature").is_some());
}

fn test_idp_key() -> TestIdpKey {
    TestIdpKey::from_pem(
        &std::fs::read(vectors().join("spid-sp-test-idp/private.key")).expect("key"),
        &std::fs::read(vectors().join("spid-sp-test-idp/public.cert")).expect("cert"),
    )
    .expect("key")
}

fn b64(x: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(x)
}

/// An IdP-initiated LogoutRequest for `name_id` with `inside` after its Issuer (a signature
/// template, an Extensions element...).
fn logout_request_with(id: &str, name_id: &str, inside: &str) -> String {
    format!(
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{SLO}\">\
<saml:Issuer Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:entity\">{IDP}</saml:Issuer>{inside}\
<saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:transient\" NameQualifier=\"{IDP}\">{name_id}</saml:NameID></samlp:LogoutRequest>",
        now()
    )
}

#[test]
fn a_signed_post_logout_request_is_read_from_its_signed_content() {
    let cert_b64 = idp_keys().cert_b64().to_string();
    let xml = logout_request_with("_lr9", "_citizen", &signature_template("_lr9", &cert_b64));
    let signed = sign_all(&xml, &test_idp_key()).expect("sign");
    assert_eq!(
        verify_post(&b64(&signed), &registry(), SLO).expect("verified"),
        LogoutMessage::Request {
            idp: IDP.into(),
            id: "_lr9".into(),
            name_id: "_citizen".into(),
            session_index: None
        }
    );
}

#[test]
fn a_signed_assertion_wrapped_in_a_forged_logout_request_ends_nobody() {
    // Any login's Assertion, signed by the IdP, carried inside an unsigned LogoutRequest that
    // names the victim: the first signature of the document verifies, but it does not cover the
    // message.
    let mut login = crate::insecure_test_idp::ResponseBuilder::new(
        IDP,
        "https://sp.example/metadata",
        "https://sp.example/.sso/acs",
        "_any",
    );
    login.sign_response = false;
    let response = login.signed_xml(&test_idp_key()).expect("sign");
    let start = response.find("<saml:Assertion").expect("assertion");
    let end = response.find("</saml:Assertion>").expect("end") + "</saml:Assertion>".len();
    let assertion = &response[start..end];
    for inside in [
        format!("<samlp:Extensions>{assertion}</samlp:Extensions>"),
        assertion.to_string(),
    ] {
        let forged = logout_request_with("_forged", "_victim", &inside);
        assert!(
            matches!(
                verify_post(&b64(&forged), &registry(), SLO),
                Err(SloError::Untrusted(_) | SloError::Malformed(_))
            ),
            "{inside}"
        );
    }
}

#[test]
fn post_logout_messages_with_sha1_xslt_or_a_dtd_are_refused() {
    let cert_b64 = idp_keys().cert_b64().to_string();
    let key = test_idp_key();
    let sha1 = crate::insecure_test_idp::with_sha1(&logout_request_with(
        "_lr2",
        "_c",
        &signature_template("_lr2", &cert_b64),
    ));
    let sha1 = sign_all(&sha1, &key).expect("sign");
    assert!(matches!(
        verify_post(&b64(&sha1), &registry(), SLO),
        Err(SloError::Untrusted(_))
    ));
    let good = sign_all(
        &logout_request_with("_lr3", "_c", &signature_template("_lr3", &cert_b64)),
        &key,
    )
    .expect("sign");
    let xslt = good.replacen(
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/TR/1999/REC-xslt-19991116",
        1,
    );
    assert!(matches!(
        verify_post(&b64(&xslt), &registry(), SLO),
        Err(SloError::Malformed(_))
    ));
    let body = crate::insecure_test_idp::without_declaration(&good);
    let dtd = format!("<!DOCTYPE x [<!ENTITY e \"e\">]>{body}");
    assert!(matches!(
        verify_post(&b64(&dtd), &registry(), SLO),
        Err(SloError::Malformed(_))
    ));
}
