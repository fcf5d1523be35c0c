use std::path::PathBuf;

use super::*;

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_vectors")
}

fn config(path: PathBuf) -> IdpConfig {
    IdpConfig {
        metadata: path,
        kind: IdpKind::Spid,
        federation_cert: None,
    }
}

fn variant(dir: &tempfile::TempDir, name: &str, edit: impl Fn(&str) -> String) -> IdpConfig {
    let good = std::fs::read_to_string(vectors().join("spid-sp-test-idp.xml")).expect("fixture");
    let path = dir.path().join(name);
    std::fs::write(&path, edit(&good)).expect("write");
    config(path)
}

fn cert_b64(path: &std::path::Path) -> String {
    let pem = std::fs::read(path).expect("cert");
    let der = openssl::x509::X509::from_pem(&pem)
        .expect("pem")
        .to_der()
        .expect("der");
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// `xml` with an ID on its root and that root signed by the test federation key (the
/// spid-sp-test IdP's key stands in for AgID's).
fn federation_signed(xml: &str, id: &str) -> String {
    federation_signed_with(xml, id, |t| t)
}

fn federation_signed_with(xml: &str, id: &str, template: impl Fn(String) -> String) -> String {
    let with_id = xml.replacen(
        "entityID=\"https://localhost:8443\"",
        &format!("entityID=\"https://localhost:8443\" ID=\"{id}\""),
        1,
    );
    let close = with_id.find('>').expect("root") + 1;
    let template = template(crate::xml::signature_template(
        id,
        &cert_b64(&vectors().join("spid-sp-test-idp/public.cert")),
    ));
    let unsigned = format!("{}{}{}", &with_id[..close], template, &with_id[close..]);
    let key = std::fs::read(vectors().join("spid-sp-test-idp/private.key")).expect("key");
    let key_der = openssl::pkey::PKey::private_key_from_pem(&key)
        .expect("pem")
        .private_key_to_der()
        .expect("der");
    Crypto::sign_xml(unsigned.as_bytes(), &key_der).expect("sign")
}

fn federated(dir: &tempfile::TempDir, name: &str, xml: &str) -> IdpConfig {
    let path = dir.path().join(name);
    std::fs::write(&path, xml).expect("write");
    let mut c = config(path);
    c.federation_cert = Some(vectors().join("spid-sp-test-idp/public.cert"));
    c
}

fn reason(r: Result<IdpRegistry, Vec<Error>>) -> String {
    match r {
        Ok(_) => panic!("accepted"),
        Err(errors) => errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[test]
fn the_spid_sp_test_idp_loads() {
    let reg = IdpRegistry::load(&[config(vectors().join("spid-sp-test-idp.xml"))]).expect("loads");
    let idp = reg.get("https://localhost:8443").expect("registered");
    assert_eq!(
        idp.sso_redirect.as_deref(),
        Some("https://localhost:8443/samlsso")
    );
    assert_eq!(
        idp.sso_post.as_deref(),
        Some("https://localhost:8443/samlsso")
    );
    assert_eq!(idp.signing_certs.len(), 1);
    assert!(!idp.display_name.is_empty());
    assert!(reg.get("https://other.example").is_none());
}

#[test]
fn an_idp_without_signing_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = variant(&dir, "no-signing-cert.xml", |x| {
        let start = x.find("<ns0:KeyDescriptor").expect("key descriptor");
        let end = x.find("</ns0:KeyDescriptor>").expect("end") + "</ns0:KeyDescriptor>".len();
        format!("{}{}", &x[..start], &x[end..])
    });
    assert!(reason(IdpRegistry::load(&[c])).contains("no signing certificate"));
    let c = variant(&dir, "encryption-only.xml", |x| {
        x.replace("use=\"signing\"", "use=\"encryption\"")
    });
    assert!(reason(IdpRegistry::load(&[c])).contains("no signing certificate"));
}

#[test]
fn dtds_garbage_and_duplicates_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dtd = variant(&dir, "dtd-entity.xml", |x| {
        format!("<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\">]>{x}")
    });
    assert!(reason(IdpRegistry::load(&[dtd])).contains("DTD"));
    let garbage = variant(&dir, "garbage.xml", |_| "<not-metadata/>".to_string());
    assert!(reason(IdpRegistry::load(&[garbage])).contains("garbage.xml"));
    let bad_cert = variant(&dir, "bad-cert.xml", |x| {
        x.replace("<ns1:X509Certificate>MII", "<ns1:X509Certificate>!!")
    });
    assert!(reason(IdpRegistry::load(&[bad_cert])).contains("base64"));
    let good = config(vectors().join("spid-sp-test-idp.xml"));
    let twice = reason(IdpRegistry::load(&[good.clone(), good]));
    assert!(twice.contains("already configured"), "{twice}");
    let missing = reason(IdpRegistry::load(&[config(dir.path().join("missing.xml"))]));
    assert!(missing.contains("cannot read"), "{missing}");
}

#[test]
fn a_federation_certificate_must_have_signed_the_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Unsigned metadata with a federation certificate configured: refused.
    let mut c = config(vectors().join("spid-sp-test-idp.xml"));
    c.federation_cert = Some(vectors().join("spid-sp-test-idp/public.cert"));
    assert!(reason(IdpRegistry::load(&[c])).contains("not signed"));
    // Signed by the federation key: accepted; tampered after signing: refused.
    let xml = std::fs::read_to_string(vectors().join("spid-sp-test-idp.xml")).expect("fixture");
    let signed = federation_signed(&xml, "_fed1");
    let signed_path = dir.path().join("signed.xml");
    std::fs::write(&signed_path, &signed).expect("write");
    let mut c = config(signed_path);
    c.federation_cert = Some(vectors().join("spid-sp-test-idp/public.cert"));
    IdpRegistry::load(std::slice::from_ref(&c)).expect("signed metadata loads");
    std::fs::write(
        &c.metadata,
        signed.replace(
            "https://localhost:8443/samlsso",
            "https://evil.example/samlsso",
        ),
    )
    .expect("write");
    assert!(reason(IdpRegistry::load(&[c])).contains("does not verify"));
}

#[test]
fn logos_come_from_the_metadata_ui_info_when_safe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let with_logo = |logo: &str| {
        let logo = logo.to_string();
        move |x: &str| {
            x.replacen(
                "<ns0:KeyDescriptor",
                &format!("<ns0:Extensions><mdui:UIInfo xmlns:mdui=\"urn:oasis:names:tc:SAML:metadata:ui\"><mdui:Logo height=\"32\" width=\"32\">{logo}</mdui:Logo></mdui:UIInfo></ns0:Extensions><ns0:KeyDescriptor"),
                1,
            )
        }
    };
    let cases = [
        (
            "https://idp.example/logo.svg",
            Some("https://idp.example/logo.svg"),
        ),
        (
            "data:image/png;base64,iVBORw0KGgo=",
            Some("data:image/png;base64,iVBORw0KGgo="),
        ),
        ("http://idp.example/logo.png", None),
        (
            "http://127.0.0.1:9/logo.png",
            Some("http://127.0.0.1:9/logo.png"),
        ),
        ("javascript:alert(1)", None),
        ("data:text/html;base64,PHNjcmlwdD4=", None),
        ("https://idp.example/a\" onerror=\"x", None),
    ];
    for (n, (logo, expected)) in cases.iter().enumerate() {
        let c = variant(
            &dir,
            &format!("logo-{n}.xml"),
            with_logo(&logo.replace('"', "&quot;")),
        );
        let reg = IdpRegistry::load(&[c]).expect("loads");
        let idp = reg.get("https://localhost:8443").expect("registered");
        assert_eq!(idp.logo.as_deref(), *expected, "{logo}");
    }
    let reg = IdpRegistry::load(&[config(vectors().join("spid-sp-test-idp.xml"))]).expect("loads");
    assert_eq!(reg.get("https://localhost:8443").expect("idp").logo, None);
}

#[test]
fn endpoints_must_be_https_except_on_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = variant(&dir, "plain.xml", |x| {
        x.replace("https://localhost:8443/samlsso", "http://idp.example/sso")
    });
    assert!(reason(IdpRegistry::load(&[plain])).contains("must be https"));
    let local = variant(&dir, "local.xml", |x| {
        x.replace(
            "https://localhost:8443/samlsso",
            "http://127.0.0.1:8081/sso",
        )
    });
    assert!(IdpRegistry::load(&[local]).is_ok());
}

#[test]
fn a_genuine_signed_descriptor_tucked_inside_a_forged_one_vouches_for_nothing() {
    // The attacker can write the metadata file but not sign: they keep the genuine signed
    // descriptor (inside Extensions, where nothing reads it) and put their own signing key in
    // the root that is read.
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read_to_string(vectors().join("spid-sp-test-idp.xml")).expect("fixture");
    let genuine = federation_signed(&good, "_fed1");
    let genuine = crate::insecure_test_idp::without_declaration(&genuine);
    let genuine_cert = cert_b64(&vectors().join("spid-sp-test-idp/public.cert"));
    let attacker_cert =
        cert_b64(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/keys/sp.crt"));
    let forged = good.replace(&genuine_cert, &attacker_cert);
    let close = forged.find('>').expect("root") + 1;
    for inner in [
        format!("<ns0:Extensions>{genuine}</ns0:Extensions>"),
        genuine.to_string(),
    ] {
        let wrapped = format!("{}{inner}{}", &forged[..close], &forged[close..]);
        let refused = reason(IdpRegistry::load(&[federated(
            &dir,
            "wrapped.xml",
            &wrapped,
        )]));
        assert!(refused.contains("wrapped.xml"), "{refused}");
    }
}

#[test]
fn federation_signatures_with_sha1_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read_to_string(vectors().join("spid-sp-test-idp.xml")).expect("fixture");
    let sha1 = federation_signed_with(&good, "_fed1", |t| crate::insecure_test_idp::with_sha1(&t));
    assert!(sha1.contains("rsa-sha1"));
    let refused = reason(IdpRegistry::load(&[federated(&dir, "sha1.xml", &sha1)]));
    assert!(refused.contains("SHA-256 or stronger"), "{refused}");
}

fn valid_until(xml: &str, when: chrono::DateTime<chrono::Utc>) -> String {
    xml.replacen(
        "entityID=\"https://localhost:8443\"",
        &format!(
            "entityID=\"https://localhost:8443\" validUntil=\"{}\"",
            when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        1,
    )
}

#[test]
fn expired_metadata_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    let expired = variant(&dir, "expired.xml", |x| valid_until(x, past));
    let refused = reason(IdpRegistry::load(&[expired]));
    assert!(
        refused.contains("expired") && refused.contains("validUntil"),
        "{refused}"
    );
    let future = chrono::Utc::now() + chrono::Duration::days(30);
    let fresh = variant(&dir, "fresh.xml", |x| valid_until(x, future));
    let reg = IdpRegistry::load(&[fresh]).expect("valid metadata");
    let idp = reg.get("https://localhost:8443").expect("offered");
    assert!(idp.valid_until.is_some_and(|t| t > chrono::Utc::now()));
}

#[test]
fn at_reload_the_last_good_metadata_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read_to_string(vectors().join("spid-sp-test-idp.xml")).expect("fixture");
    let c = federated(&dir, "idp.xml", &federation_signed(&good, "_fed1"));
    let first = IdpRegistry::load(std::slice::from_ref(&c)).expect("loads");
    // The file is replaced by a tampered copy: the reload keeps the previous IdP, and says why.
    std::fs::write(
        &c.metadata,
        good.replace(
            "https://localhost:8443/samlsso",
            "https://evil.example/samlsso",
        ),
    )
    .expect("write");
    let (second, kept) = IdpRegistry::reload(std::slice::from_ref(&c), &first).expect("kept");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].to_string().contains("idp.xml"));
    let idp = second.get("https://localhost:8443").expect("still trusted");
    assert!(idp
        .sso_redirect
        .as_deref()
        .is_some_and(|u| !u.contains("evil")));
    // A new IdP with a bad file is refused as at start.
    let other = variant(&dir, "new.xml", |_| "<garbage/>".into());
    assert!(IdpRegistry::reload(&[c, other], &first).is_err());
}
