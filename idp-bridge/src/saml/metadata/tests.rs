use std::path::Path;

use samael::crypto::{CertificateDer, Crypto, CryptoProvider};

use super::*;

fn example() -> (Config, SpKeys) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/varco.toml");
    let snap = policies::load(&path).expect("example loads");
    let keys = SpKeys::load(&snap.config.sp.key, &snap.config.sp.cert).expect("keys");
    (snap.config, keys)
}

fn verify(xml: &str, keys: &SpKeys) -> bool {
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, keys.cert_b64())
        .expect("b64");
    Crypto::verify_signed_xml(xml.as_bytes(), &CertificateDer::from(der), Some("ID")).is_ok()
}

#[test]
fn spid_metadata_is_signed_and_complete() {
    let (config, keys) = example();
    let xml = signed_metadata(&config, &keys, Profile::Spid).expect("sign");
    assert!(verify(&xml, &keys), "signature must verify");
    assert!(
        !verify(
            &xml.replace("spid@provincia.lucca.it", "evil@example.com"),
            &keys
        ),
        "tampering must break it"
    );
    for needle in [
        "AuthnRequestsSigned=\"true\"",
        "WantAssertionsSigned=\"true\"",
        "<md:AssertionConsumerService index=\"0\" isDefault=\"true\" Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"http://127.0.0.1:8080/.sso/acs\"/>",
        "<md:AttributeConsumingService index=\"0\"><md:ServiceName xml:lang=\"it\">Identità di base</md:ServiceName>",
        "<md:AttributeConsumingService index=\"1\">",
        "Name=\"email\"",
        "<spid:IPACode>p_lu</spid:IPACode><spid:Public/>",
        "contactType=\"other\"",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmlenc#sha256",
    ] {
        assert!(xml.contains(needle), "missing {needle}");
    }
    assert!(
        !xml.contains("rsa-sha1") && !xml.contains("xmldsig#sha1"),
        "no SHA-1 anywhere"
    );
    // The signature is the first child of EntityDescriptor (Avviso 29 XSD order).
    let root_end = xml
        .find("<md:EntityDescriptor")
        .and_then(|i| xml[i..].find('>').map(|j| i + j + 1))
        .expect("root");
    assert!(xml[root_end..].starts_with("<ds:Signature"));
}

#[test]
fn cie_metadata_keeps_only_cie_attributes() {
    let (config, keys) = example();
    let xml = signed_metadata(&config, &keys, Profile::Cie).expect("sign");
    assert!(verify(&xml, &keys));
    assert!(!xml.contains("Name=\"email\"") && !xml.contains("Name=\"mobilePhone\""));
    assert!(xml.contains("Name=\"fiscalNumber\""));
    assert!(xml.contains("contactType=\"administrative\""));
    assert!(xml.contains("<cie:Municipality>046017</cie:Municipality>"));
    assert!(xml.contains("<md:Company>Provincia di Lucca</md:Company>"));
    assert!(!xml.contains("spid:"));
}

#[test]
fn configured_text_cannot_break_the_document() {
    let (mut config, keys) = example();
    config.sp.organization.name = "Comune \"di\" <Prova> & Co'".into();
    config.sp.attribute_sets[0].name = "</md:ServiceName><md:Evil/>".into();
    let xml = signed_metadata(&config, &keys, Profile::Spid).expect("sign");
    assert!(verify(&xml, &keys));
    assert!(!xml.contains("<md:Evil/>"));
    assert!(
        xml.contains("Comune &quot;di&quot; &lt;Prova&gt; &amp; Co&apos;")
            || xml.contains("Comune \"di\" &lt;Prova&gt; &amp; Co'")
    );
}

#[test]
fn the_same_configuration_gives_the_same_metadata_id() {
    let (config, keys) = example();
    let a = unsigned_metadata(&config, &keys, Profile::Spid);
    let b = unsigned_metadata(&config, &keys, Profile::Spid);
    assert_eq!(a, b);
    assert_ne!(a, unsigned_metadata(&config, &keys, Profile::Cie));
}
