//! Keys and certificates over time: an SP key rotation without a restart (the next certificate
//! published beside the current one, then the switch), the expiry metric, and `varco check`
//! warning about a certificate that expires within 30 days.

use std::time::Duration;

use crate::harness::*;
use crate::tls_kit::TestCa;

fn metadata(gw: &Gateway) -> String {
    get_text(gw, "portal.localhost", "/.sso/metadata")
}

fn signing_keys(xml: &str) -> usize {
    xml.matches("<md:KeyDescriptor use=\"signing\">").count()
}

fn b64(cert: &openssl::x509::X509) -> String {
    base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        cert.to_der().expect("der"),
    )
}

/// The certificate that verifies the signature of the AuthnRequest a login starts with.
fn login_signed_by(gw: &Gateway, cert: &openssl::x509::X509) -> bool {
    rt().block_on(async {
        let r = gw
            .client()
            .get(gw.url(
                "portal.localhost",
                "/.sso/login?idp=https%3A%2F%2Flocalhost%3A8443",
            ))
            .send()
            .await
            .expect("send");
        let location = location_of(&r);
        let query = location.split_once('?').map_or("", |(_, q)| q);
        idp_bridge::insecure_test_idp::read_authn_request(query, cert).is_ok()
    })
}

#[test]
fn an_sp_key_rotation_publishes_the_next_certificate_then_switches_without_a_restart() {
    let be = echo("rotation");
    let gw = Gateway::start("", &pub_and_tari_policies(be));
    let dir = gw.dir.path().to_path_buf();
    let current = openssl::x509::X509::from_pem(&std::fs::read(dir.join("sp.crt")).expect("crt"))
        .expect("pem");
    let next = TestCa::new("Provincia di Prova SP 2027").server(&["portal.localhost"]);
    std::fs::write(dir.join("next.crt"), next.cert.to_pem().expect("pem")).expect("write");
    std::fs::write(
        dir.join("next.key"),
        next.key.private_key_to_pem_pkcs8().expect("pem"),
    )
    .expect("write");
    assert_eq!(signing_keys(&metadata(&gw)), 1);

    // 1. Publish the next certificate: both are in the metadata, the current key still signs.
    let main = gw.config_path();
    let text = std::fs::read_to_string(&main).expect("read");
    let with_next = text.replace(
        "cert = \"sp.crt\"\n",
        "cert = \"sp.crt\"\nnext_cert = \"next.crt\"\n",
    );
    assert_ne!(text, with_next);
    std::fs::write(&main, &with_next).expect("write");
    wait_for(
        "the next certificate in the metadata",
        Duration::from_secs(15),
        || signing_keys(&metadata(&gw)) == 2,
    );
    let xml = metadata(&gw);
    assert!(xml.find(&b64(&current)) < xml.rfind(&b64(&next.cert)));
    assert!(login_signed_by(&gw, &current));
    let metrics = gw.metrics();
    assert!(
        metrics.contains("varco_certificate_expiry_seconds{kind=\"sp_next\""),
        "{metrics}"
    );

    // 2. The switch, once the IdPs have the new metadata: the next key signs, alone published.
    let switched = with_next
        .replace("key = \"sp.key\"\n", "key = \"next.key\"\n")
        .replace(
            "cert = \"sp.crt\"\nnext_cert = \"next.crt\"\n",
            "cert = \"next.crt\"\n",
        );
    std::fs::write(&main, switched).expect("write");
    wait_for("the switch", Duration::from_secs(15), || {
        let xml = metadata(&gw);
        signing_keys(&xml) == 1 && xml.contains(&b64(&next.cert))
    });
    assert!(login_signed_by(&gw, &next.cert));
    assert!(!login_signed_by(&gw, &current));
    let metrics = gw.metrics();
    assert!(
        metrics.contains("varco_certificate_expiry_seconds{kind=\"sp\""),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "varco_certificate_expiry_seconds{kind=\"idp\",name=\"https://localhost:8443\""
        ),
        "{metrics}"
    );
}

#[test]
fn varco_check_warns_about_a_certificate_that_expires_within_thirty_days() {
    let be = echo("expiry");
    let (dir, _, _) = write_config("", &pub_and_tari_policies(be));
    // A next SP certificate that ends in 20 days: warned about.
    let next = TestCa::new("short-lived").server_valid(&["portal.localhost"], 20);
    std::fs::write(
        dir.path().join("next.crt"),
        next.cert.to_pem().expect("pem"),
    )
    .expect("write");
    let main = dir.path().join("varco.toml");
    let text = std::fs::read_to_string(&main).expect("read").replace(
        "cert = \"sp.crt\"\n",
        "cert = \"sp.crt\"\nnext_cert = \"next.crt\"\n",
    );
    std::fs::write(&main, text).expect("write");
    let (code, _, err) = varco(&["check", "--config", main.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("sp_next certificate"))
        .unwrap_or_else(|| panic!("no warning:\n{err}"));
    assert!(
        line.starts_with("warning: sp_next certificate ")
            && (line.ends_with("(in 19 days)") || line.ends_with("(in 20 days)")),
        "{line}"
    );
    assert!(
        !err.contains("warning: sp certificate"),
        "the example SP certificate lasts longer: {err}"
    );
}
