use std::io::Read as _;
use std::path::{Path, PathBuf};

use openssl::sign::Verifier;

use super::*;
use crate::registry::IdpRegistry;

fn fixtures() -> (SpKeys, IdpRegistry) {
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/keys");
    let keys = SpKeys::load(&ex.join("sp.key"), &ex.join("sp.crt")).expect("keys");
    let md = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_vectors/spid-sp-test-idp.xml");
    let reg = IdpRegistry::load(&[policies::IdpConfig {
        metadata: md,
        kind: IdpKind::Spid,
        federation_cert: None,
    }])
    .expect("idp");
    (keys, reg)
}

fn query_param(url: &str, name: &str) -> String {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[test]
fn the_redirect_is_signed_over_the_exact_query() {
    let (keys, reg) = fixtures();
    let idp = reg.get("https://localhost:8443").expect("idp");
    let out = redirect_request(
        "https://sp.example/metadata",
        &keys,
        &LoginRequest {
            idp,
            level: Level::SpidL2,
            attribute_set: 1,
        },
    )
    .expect("request");
    assert!(out
        .redirect_url
        .starts_with("https://localhost:8443/samlsso?SAMLRequest="));
    assert!(out.xml.contains("ForceAuthn=\"true\""));
    let query = out.redirect_url.split_once('?').expect("query").1;
    let (signed, sig) = query.rsplit_once("&Signature=").expect("signature last");
    let sig = base64::engine::general_purpose::STANDARD
        .decode(
            url::form_urlencoded::parse(format!("s={sig}").as_bytes())
                .next()
                .expect("s")
                .1
                .as_bytes(),
        )
        .expect("b64");
    let cert_der = base64::engine::general_purpose::STANDARD
        .decode(keys.cert_b64())
        .expect("cert");
    let public = openssl::x509::X509::from_der(&cert_der)
        .expect("x509")
        .public_key()
        .expect("pk");
    let mut v = Verifier::new(MessageDigest::sha256(), &public).expect("verifier");
    v.update(signed.as_bytes()).expect("update");
    assert!(
        v.verify(&sig).expect("verify"),
        "signature over the query as sent"
    );
    assert_eq!(query_param(&out.redirect_url, "SigAlg"), RSA_SHA256);
    assert_eq!(
        query_param(&out.redirect_url, "RelayState"),
        out.relay_state.secret()
    );

    let deflated = base64::engine::general_purpose::STANDARD
        .decode(query_param(&out.redirect_url, "SAMLRequest"))
        .expect("b64");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut xml)
        .expect("inflate");
    for needle in [
        &format!("ID=\"{}\"", out.id)[..],
        "Destination=\"https://localhost:8443/samlsso\"",
        "ForceAuthn=\"true\"",
        "AssertionConsumerServiceIndex=\"0\"",
        "AttributeConsumingServiceIndex=\"1\"",
        "Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:entity\" NameQualifier=\"https://sp.example/metadata\">https://sp.example/metadata</saml:Issuer>",
        "<samlp:NameIDPolicy Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:transient\"/>",
        "Comparison=\"minimum\"><saml:AuthnContextClassRef>https://www.spid.gov.it/SpidL2</saml:AuthnContextClassRef>",
    ] {
        assert!(xml.contains(needle), "missing {needle} in {xml}");
    }
    assert!(!xml.contains("AllowCreate") && !xml.contains("IsPassive"));
}

#[test]
fn level_1_spid_does_not_force_authentication_but_cie_always_does() {
    let (keys, reg) = fixtures();
    let idp = reg.get("https://localhost:8443").expect("idp");
    let out = redirect_request(
        "https://sp.example",
        &keys,
        &LoginRequest {
            idp,
            level: Level::SpidL1,
            attribute_set: 0,
        },
    )
    .expect("request");
    assert!(!out.xml.contains("ForceAuthn"));
    let cie = Idp {
        kind: IdpKind::Cie,
        ..clone_idp(idp)
    };
    let out = redirect_request(
        "https://sp.example",
        &keys,
        &LoginRequest {
            idp: &cie,
            level: Level::SpidL1,
            attribute_set: 0,
        },
    )
    .expect("request");
    assert!(out.xml.contains("ForceAuthn=\"true\""));
}

#[test]
fn request_ids_are_unique_ncnames_of_128_bits() {
    let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_request_id()).collect();
    assert_eq!(ids.len(), 1000);
    for id in ids.iter().take(10) {
        assert!(
            id.starts_with('_') && id.len() == 33 && id[1..].bytes().all(|b| b.is_ascii_hexdigit())
        );
    }
}

fn clone_idp(i: &Idp) -> Idp {
    Idp {
        entity_id: i.entity_id.clone(),
        kind: i.kind,
        display_name: i.display_name.clone(),
        sso_redirect: i.sso_redirect.clone(),
        sso_post: i.sso_post.clone(),
        slo_redirect: i.slo_redirect.clone(),
        slo_post: i.slo_post.clone(),
        signing_certs: i.signing_certs.clone(),
        valid_until: i.valid_until,
        source: i.source.clone(),
        logo: i.logo.clone(),
    }
}
