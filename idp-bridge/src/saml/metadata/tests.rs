use std::path::Path;

use samael::crypto::{CertificateDer, Crypto, CryptoProvider};

use super::*;

fn example() -> (Config, SpKeys) {
    let (snap, keys) = example_snapshot();
    (snap.config, keys)
}

fn example_snapshot() -> (policies::Snapshot, SpKeys) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/varco.toml");
    let snap = policies::load(&path).expect("example loads");
    let keys = SpKeys::load(&snap.config.sp.key, &snap.config.sp.cert).expect("keys");
    (snap, keys)
}

/// The example, with the Region as aggregator of its comuni.
fn aggregator() -> (policies::Snapshot, SpKeys) {
    let (mut snap, keys) = example_snapshot();
    snap.config.sp.mode = policies::SpMode::Aggregator(policies::Aggregator {
        ipa_code: Some("r_toscan".into()),
        vat_number: Some("IT01386030488".into()),
        fiscal_code: None,
        company: "Regione Toscana".into(),
        email: "spid@regione.toscana.example".into(),
        phone: Some("+390554381111".into()),
    });
    (snap, keys)
}

#[test]
fn each_aggregated_comune_has_its_own_signed_metadata() {
    let (snap, keys) = aggregator();
    let capannori = &snap.comuni[0];
    assert_eq!(capannori.ipa_code.as_str(), "c_b648");
    let xml = signed_metadata(
        &snap.config,
        &keys,
        Profile::Spid,
        MetadataOf::Comune(capannori),
    )
    .expect("sign")
    .expect("aggregator mode");
    assert!(verify(&xml, &keys));
    for needle in [
        "entityID=\"http://127.0.0.1:8080/pub-ag-full/c_b648\"",
        "Location=\"http://127.0.0.1:8080/.sso/acs/c_b648\"",
        "Location=\"http://127.0.0.1:8080/.sso/slo/c_b648\"",
        "<md:OrganizationName xml:lang=\"it\">Comune di Capannori</md:OrganizationName>",
        "<md:OrganizationURL xml:lang=\"it\">http://capannori.localhost:8080/</md:OrganizationURL>",
        "<md:ContactPerson contactType=\"other\" spid:entityType=\"spid:aggregator\"><md:Extensions><spid:IPACode>r_toscan</spid:IPACode><spid:VATNumber>IT01386030488</spid:VATNumber><spid:PublicServicesFullAggregator/></md:Extensions><md:Company>Regione Toscana</md:Company><md:EmailAddress>spid@regione.toscana.example</md:EmailAddress><md:TelephoneNumber>+390554381111</md:TelephoneNumber></md:ContactPerson>",
        "<md:ContactPerson contactType=\"other\" spid:entityType=\"spid:aggregated\"><md:Extensions><spid:IPACode>c_b648</spid:IPACode><spid:Public/></md:Extensions><md:Company>Comune di Capannori</md:Company></md:ContactPerson>",
        "<md:AttributeConsumingService index=\"1\">",
    ] {
        assert!(xml.contains(needle), "missing {needle}\n{xml}");
    }
    // The aggregator's own SP is unchanged, and one comune's document is not another's.
    let own = signed_metadata(&snap.config, &keys, Profile::Spid, MetadataOf::Sp)
        .expect("sign")
        .expect("the SP's");
    assert!(own.contains("entityID=\"http://127.0.0.1:8080/.sso/metadata\""));
    assert!(!own.contains("spid:entityType"));
    let lucca = unsigned_metadata(
        &snap.config,
        &keys,
        Profile::Spid,
        MetadataOf::Comune(&snap.comuni[1]),
    )
    .expect("aggregator mode");
    assert!(lucca.contains("/pub-ag-full/c_e715") && !lucca.contains("c_b648"));

    let cie = signed_metadata(
        &snap.config,
        &keys,
        Profile::Cie,
        MetadataOf::Comune(capannori),
    )
    .expect("sign")
    .expect("aggregator mode");
    assert!(verify(&cie, &keys));
    for needle in [
        "entityID=\"http://127.0.0.1:8080/pub-ag-full/c_b648\"",
        "<cie:IPACode>c_b648</cie:IPACode><cie:Municipality>046007</cie:Municipality>",
        "<md:Company>Comune di Capannori</md:Company><md:EmailAddress>spid@regione.toscana.example</md:EmailAddress>",
    ] {
        assert!(cie.contains(needle), "missing {needle}\n{cie}");
    }
}

#[test]
fn a_comune_has_no_metadata_of_its_own_outside_aggregator_mode() {
    let (snap, keys) = example_snapshot();
    for profile in [Profile::Spid, Profile::Cie] {
        let got = signed_metadata(
            &snap.config,
            &keys,
            profile,
            MetadataOf::Comune(&snap.comuni[0]),
        );
        assert!(matches!(got, Ok(None)));
    }
}

fn verify(xml: &str, keys: &SpKeys) -> bool {
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, keys.cert_b64())
        .expect("b64");
    Crypto::verify_signed_xml(xml.as_bytes(), &CertificateDer::from(der), Some("ID")).is_ok()
}

#[test]
fn spid_metadata_is_signed_and_complete() {
    let (config, keys) = example();
    let xml = signed_metadata(&config, &keys, Profile::Spid, MetadataOf::Sp)
        .expect("sign")
        .expect("the SP has metadata");
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
    let xml = signed_metadata(&config, &keys, Profile::Cie, MetadataOf::Sp)
        .expect("sign")
        .expect("the SP has metadata");
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
    let xml = signed_metadata(&config, &keys, Profile::Spid, MetadataOf::Sp)
        .expect("sign")
        .expect("the SP has metadata");
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
    let a = unsigned_metadata(&config, &keys, Profile::Spid, MetadataOf::Sp);
    let b = unsigned_metadata(&config, &keys, Profile::Spid, MetadataOf::Sp);
    assert_eq!(a, b);
    assert_ne!(
        a,
        unsigned_metadata(&config, &keys, Profile::Cie, MetadataOf::Sp)
    );
}

#[test]
fn during_a_rotation_both_signing_certificates_are_published() {
    let (config, keys) = example();
    let next_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("test_vectors/spid-sp-test-idp/public.cert");
    let keys = keys.with_next(Some(&next_path)).expect("next certificate");
    let next_b64 = cert_b64_of(&next_path);
    for profile in [Profile::Spid, Profile::Cie] {
        let xml = signed_metadata(&config, &keys, profile, MetadataOf::Sp)
            .expect("sign")
            .expect("the SP's");
        assert!(verify(&xml, &keys), "still signed with the current key");
        assert_eq!(xml.matches("<md:KeyDescriptor use=\"signing\">").count(), 2);
        let current = xml.find(keys.cert_b64()).expect("current");
        let next = xml.rfind(&next_b64).expect("next");
        assert!(current < next, "the current certificate comes first");
    }
    // The current key's own certificate is no rotation.
    let (_, keys) = example();
    let sp_cert = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/keys/sp.crt");
    assert!(keys.with_next(Some(&sp_cert)).is_err());
}

fn cert_b64_of(path: &Path) -> String {
    let pem = std::fs::read(path).expect("pem");
    let der = openssl::x509::X509::from_pem(&pem)
        .expect("cert")
        .to_der()
        .expect("der");
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der)
}
