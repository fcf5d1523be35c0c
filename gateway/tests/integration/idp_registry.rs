//! IdPs from a federation's registry (`[[idp_source]]`), served by a local HTTPS server as AgID
//! serves its own: a good signed set, a tampered one, one with a new IdP, the server going away,
//! a restart from the cache while it is away, and a set that expires.

use std::time::Duration;

use idp_bridge::insecure_test_idp::{signed_registry, ResponseBuilder, TestIdpKey};

use crate::citizen::idp_key;
use crate::harness::*;
use crate::login::full;
use crate::tls_kit::{HttpsFileServer, Serve, TestCa};

fn vectors() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../idp-bridge/test_vectors")
}

/// The test IdP under another entityID and name: the registry's IdPs are not the `[[idp]]` one.
fn registry_idp(entity: &str, name: &str) -> String {
    std::fs::read_to_string(vectors().join("spid-sp-test-idp.xml"))
        .expect("idp")
        .replace(
            "entityID=\"https://localhost:8443\"",
            &format!("entityID=\"{entity}\""),
        )
        .replace("Exempel AB", name)
}

/// The federation's key (the test IdP's stands in for AgID's).
fn federation() -> TestIdpKey {
    idp_key()
}

fn set(entities: &[&str], valid_until: Option<chrono::DateTime<chrono::Utc>>) -> Vec<u8> {
    signed_registry(entities, "_reg", valid_until, &federation())
        .expect("sign")
        .into_bytes()
}

fn gateway_with_source(server: &HttpsFileServer, ca: &TestCa) -> Gateway {
    let be = echo("registry");
    let (dir, port, admin) = write_config("", &pub_and_tari_policies(be));
    ca.write_pem(&dir.path().join("registry-ca.pem"));
    let main = dir.path().join("varco.toml");
    let mut text = std::fs::read_to_string(&main).expect("read");
    text.push_str(&format!(
        "\n[[idp_source]]\nurl = \"{}\"\nfederation_cert = \"{}\"\nkind = \"spid\"\nrefresh = \"1s\"\ncache = \"state/idps/spid.xml\"\nca = \"registry-ca.pem\"\n",
        server.url("/idps.xml"),
        vectors().join("spid-sp-test-idp/public.cert").display()
    ));
    std::fs::write(&main, text).expect("write");
    Gateway::serve(dir, port, admin)
}

impl Gateway {
    /// The same folder and ports, served again by a fresh process-like gateway.
    fn restart(mut self) -> Gateway {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        let (port, admin) = (self.port, self.admin);
        drop(self);
        Gateway::serve(dir, port, admin)
    }
}

fn choice_page(gw: &Gateway) -> String {
    get_text(gw, "portal.localhost", "/.sso/login")
}

fn readyz(gw: &Gateway) -> (u16, String) {
    rt().block_on(async {
        let r = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .get(format!("http://127.0.0.1:{}/readyz", gw.admin))
            .send()
            .await
            .expect("readyz");
        (r.status().as_u16(), r.text().await.expect("body"))
    })
}

fn failures(gw: &Gateway) -> u64 {
    gw.metrics()
        .lines()
        .find(|l| l.starts_with("varco_idp_source_failures"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// A login through `entity`: the AuthnRequest goes to the IdP's endpoint, the IdP's signed answer
/// makes a session.
fn logs_in_through(gw: &Gateway, entity: &str) -> bool {
    rt().block_on(async {
        let c = gw.client();
        let portal = gw.url("portal.localhost", "/");
        let Some((id, binding, relay)) = full::try_start(gw, &c, entity, &portal).await else {
            return false;
        };
        let answer = ResponseBuilder::new(
            entity,
            "http://portal.localhost/.sso/metadata",
            &gw.url("portal.localhost", "/.sso/acs"),
            &id,
        )
        .to_base64(&idp_key())
        .expect("sign");
        let r = full::post_acs(gw, &c, &binding, &answer, &relay).await;
        r.status() == 200
            && r.headers()
                .get_all("set-cookie")
                .iter()
                .any(|v| v.to_str().unwrap_or("").starts_with("varco_session="))
    })
}

#[test]
fn idps_come_from_the_signed_registry_and_survive_its_failures() {
    let ca = TestCa::new("Registry test CA");
    let a = registry_idp("https://idp-a.test", "IdP Alfa");
    let b = registry_idp("https://idp-b.test", "IdP Beta");
    let mut server =
        HttpsFileServer::start(ca.server(&["localhost"]), Serve::Body(set(&[&a], None)));
    let gw = gateway_with_source(&server, &ca);

    // 1. The first fetch brings IdP A: offered, ready, and a login through it works.
    wait_for("IdP A on the choice page", Duration::from_secs(20), || {
        choice_page(&gw).contains("IdP Alfa")
    });
    assert_eq!(readyz(&gw).0, 200, "{}", readyz(&gw).1);
    assert!(logs_in_through(&gw, "https://idp-a.test"));
    assert!(
        gw.dir.path().join("state/idps/spid.xml").is_file(),
        "the good set is cached"
    );
    let metrics = gw.metrics();
    assert!(
        metrics.contains("varco_idp_source_idps{source=\"https://localhost:"),
        "{metrics}"
    );

    // 2. A tampered set is refused: A keeps serving, the failure is counted.
    let tampered = String::from_utf8(set(&[&a, &b], None))
        .expect("utf8")
        .replace("IdP Beta", "IdP Falsa");
    server.serve(Serve::Body(tampered.into_bytes()));
    let before = failures(&gw);
    wait_for("a counted failure", Duration::from_secs(20), || {
        failures(&gw) > before
    });
    let page = choice_page(&gw);
    assert!(page.contains("IdP Alfa") && !page.contains("IdP Falsa"));
    assert_eq!(readyz(&gw).0, 200);

    // 3. A new IdP in a good set appears without a restart.
    server.serve(Serve::Body(set(&[&a, &b], None)));
    wait_for("IdP B on the choice page", Duration::from_secs(20), || {
        choice_page(&gw).contains("IdP Beta")
    });
    assert!(logs_in_through(&gw, "https://idp-b.test"));

    // 4. The registry answers an error, then goes away: the last good set keeps serving.
    server.serve(Serve::Status(503));
    let before = failures(&gw);
    wait_for("a failed fetch", Duration::from_secs(20), || {
        failures(&gw) > before
    });
    assert!(choice_page(&gw).contains("IdP Beta"));
    server.serve(Serve::Body(set(&[&a, &b], None)));
    server.down();
    let before = failures(&gw);
    wait_for("a failed fetch", Duration::from_secs(20), || {
        failures(&gw) > before
    });
    assert!(choice_page(&gw).contains("IdP Beta"));
    assert_eq!(readyz(&gw).0, 200);

    // 5. A restart while it is away starts from the cache.
    let gw = gw.restart();
    let page = choice_page(&gw);
    assert!(
        page.contains("IdP Alfa") && page.contains("IdP Beta"),
        "{page}"
    );
    assert_eq!(readyz(&gw).0, 200);
    assert!(logs_in_through(&gw, "https://idp-b.test"));

    // 6. A set valid for a few seconds, then the registry gone: once it expires, its IdPs are
    // not offered, their answers not taken, and the instance is not ready.
    // Long enough for a slow machine to fetch and swap it in before it expires.
    let until = chrono::Utc::now() + chrono::Duration::seconds(8);
    server.serve(Serve::Body(set(&[&a], Some(until))));
    server.up();
    wait_for("the short-lived set", Duration::from_secs(20), || {
        !choice_page(&gw).contains("IdP Beta")
    });
    server.down();
    wait_for("the set to expire", Duration::from_secs(20), || {
        readyz(&gw).0 == 503
    });
    let (_, why) = readyz(&gw);
    assert!(why.contains("expired"), "{why}");
    assert!(!choice_page(&gw).contains("IdP Alfa"));
    assert!(!logs_in_through(&gw, "https://idp-a.test"));
}

#[test]
fn a_registry_with_a_certificate_varco_does_not_trust_is_refused() {
    let ca = TestCa::new("Registry test CA");
    let other = TestCa::new("Someone else's CA");
    let a = registry_idp("https://idp-a.test", "IdP Alfa");
    let server =
        HttpsFileServer::start(other.server(&["localhost"]), Serve::Body(set(&[&a], None)));
    let gw = gateway_with_source(&server, &ca);
    wait_for("a failed fetch", Duration::from_secs(20), || {
        failures(&gw) >= 1
    });
    let (status, why) = readyz(&gw);
    assert_eq!(status, 503);
    assert!(
        why.contains("no verified set yet") && why.contains("cannot fetch"),
        "{why}"
    );
    assert!(!choice_page(&gw).contains("IdP Alfa"));
}
