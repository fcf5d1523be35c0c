//! CNS login: the card's TLS client certificate, asked for by `[cns] host` only, verified against
//! the configured card CAs and their revocation lists, and turned into a session like any other
//! login. Cards come from a local test CA with the TS-CNS subject layout; one is revoked.

use std::time::Duration;

use idp_bridge::insecure_test_idp::cns::{TestCard, TestCnsCa};

use crate::citizen::enc;
use crate::harness::*;
use crate::tls::{tls_gateway_configured, TlsGateway};

const CNS_HOST: &str = "cns.portal.localhost";

struct Cns {
    t: TlsGateway,
    ca: TestCnsCa,
    good: TestCard,
    revoked: TestCard,
    stranger: TestCard,
}

/// A gateway over TLS with `[cns]`, a service at level 2 on the portal's host that needs the
/// fiscal number and the name, and three cards: a good one, a revoked one, one of another CA.
fn gateway() -> Cns {
    let ca = TestCnsCa::new("CA Cittadini di Prova").expect("ca");
    let good = ca.card("RSSMRA80A01H501U", "MARIO", "ROSSI").expect("card");
    let revoked = ca
        .card("BNCGVN75L15G702L", "GIOVANNI", "BIANCHI")
        .expect("card");
    let stranger = TestCnsCa::new("CA Cittadini di Prova")
        .expect("ca")
        .card("RSSMRA80A01H501U", "MARIO", "ROSSI")
        .expect("card");
    let files = tempfile::tempdir().expect("tempdir");
    std::fs::write(files.path().join("cns-ca.pem"), ca.cert_pem()).expect("write");
    let next_update = chrono::Utc::now() + chrono::Duration::days(1);
    std::fs::write(
        files.path().join("cns-ca.crl"),
        ca.crl(&[&revoked], next_update).expect("crl"),
    )
    .expect("write");
    let be = echo("cns");
    let tari = Svc::at_level(
        "tari",
        "portal.localhost",
        "/tari/",
        be,
        "SpidL2",
        "attributes = [\"fiscalNumber\", \"name\"]",
    );
    let t = tls_gateway_configured(
        vec![tari],
        files.path(),
        &format!("\n[cns]\nhost = \"{CNS_HOST}\"\nca = [\"cns-ca.pem\"]\ncrl = [\"cns-ca.crl\"]\nlevel = \"SpidL2\"\n"),
    );
    Cns {
        t,
        ca,
        good,
        revoked,
        stranger,
    }
}

fn identity(card: &TestCard) -> reqwest::Identity {
    reqwest::Identity::from_pkcs8_pem(&card.cert_pem(), &card.key_pem()).expect("identity")
}

/// What a login with `card` (none: the browser sends no certificate) ends with: the portal's
/// answer to the callback, and the login binding cookie it was sent with.
async fn login_with(g: &Cns, card: Option<&TestCard>) -> (reqwest::Response, String) {
    let portal = g.t.client();
    let return_to = g.t.url("portal.localhost", "/tari/avviso");
    let r = portal
        .get(g.t.url(
            "portal.localhost",
            &format!(
                "/.sso/login?idp=cns&level=SpidL2&return_to={}",
                enc(&return_to)
            ),
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 302);
    let to_card = location_of(&r);
    assert!(
        to_card.starts_with(&format!(
            "https://{CNS_HOST}:{}/.sso/cns?login=_cns",
            g.t.tls_port
        )),
        "{to_card}"
    );
    let binding = cookie_pairs(&r).join("; ");
    // The card's host sees no cookie of the portal's: it asks for the card and sends back a code.
    let browser = g.t.client_with(card.map(identity));
    let r = browser.get(&to_card).send().await.expect("send");
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    let back = location_of(&r);
    assert!(
        back.starts_with(&g.t.url("portal.localhost", "/.sso/cns/callback?code=")),
        "{back}"
    );
    let r = portal
        .get(&back)
        .header("cookie", &binding)
        .send()
        .await
        .expect("send");
    (r, binding)
}

#[test]
fn a_good_card_logs_in_and_the_service_gets_its_holder() {
    let g = gateway();
    rt().block_on(async {
        let (r, _) = login_with(&g, Some(&g.good)).await;
        assert_eq!(r.status(), 302);
        assert_eq!(location_of(&r), g.t.url("portal.localhost", "/tari/avviso"));
        let session = cookie_pairs(&r)
            .into_iter()
            .find(|c| c.contains("session="))
            .expect("a session cookie");
        let c = g.t.client();
        let j: serde_json::Value = c
            .get(g.t.url("portal.localhost", "/.sso/session"))
            .header("cookie", &session)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(j["idp"], "cns", "{j}");
        assert_eq!(j["level"], "SpidL2", "{j}");
        assert_eq!(
            j["attributes"]["fiscalNumber"], "TINIT-RSSMRA80A01H501U",
            "{j}"
        );
        assert_eq!(j["attributes"]["name"], "MARIO", "{j}");
        let r = c
            .get(g.t.url("portal.localhost", "/tari/avviso"))
            .header("cookie", &session)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        let echoed = r.text().await.expect("text");
        assert!(echoed.contains("RSSMRA80A01H501U"), "{echoed}");
    });
}

#[test]
fn a_revoked_card_another_cas_card_and_no_card_get_their_own_page() {
    let g = gateway();
    rt().block_on(async {
        for (card, status, title) in [
            (Some(&g.revoked), 403, "Carta revocata o sospesa"),
            (Some(&g.stranger), 403, "Carta non valida"),
            (None, 403, "Carta non trovata"),
        ] {
            let (r, _) = login_with(&g, card).await;
            assert_eq!(r.status(), status, "{title}");
            assert!(
                cookie_pairs(&r).iter().all(|c| !c.contains("session=")),
                "{title}"
            );
            let page = r.text().await.expect("text");
            assert!(page.contains(title), "{title}: {page}");
        }
    });
}

#[test]
fn a_code_works_once_in_the_browser_that_started_the_login() {
    let g = gateway();
    rt().block_on(async {
        // An attacker starts a login and sends a citizen to present a card for it: the code
        // goes to the citizen's browser, whose binding takes no login of the attacker's.
        let attacker = g.t.client();
        let r = attacker
            .get(g.t.url("portal.localhost", "/.sso/login?idp=cns&level=SpidL2"))
            .send()
            .await
            .expect("send");
        let to_card = location_of(&r);
        let attacker_binding = cookie_pairs(&r).join("; ");
        let citizen = g.t.client_with(Some(identity(&g.good)));
        let r = citizen.get(&to_card).send().await.expect("send");
        let back = location_of(&r);
        let r = citizen.get(&back).send().await.expect("send");
        assert_eq!(r.status(), 400);
        assert!(r
            .text()
            .await
            .expect("text")
            .contains("Accesso non completato"));
        // The code is spent: not even the attacker's browser can use it now.
        let r = attacker
            .get(&back)
            .header("cookie", &attacker_binding)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400);
        assert!(cookie_pairs(&r).iter().all(|c| !c.contains("session=")));
        // A made-up code, a login ID of another shape.
        let r = attacker
            .get(g.t.url("portal.localhost", "/.sso/cns/callback?code=AAAA"))
            .header("cookie", &attacker_binding)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400);
        let r = citizen
            .get(g.t.url(CNS_HOST, "/.sso/cns?login=_ab"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400);
        // The card's host serves nothing else.
        for path in ["/", "/tari/avviso", "/.sso/login", "/catalog"] {
            let r = citizen
                .get(g.t.url(CNS_HOST, path))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 404, "{path}");
        }
    });
}

/// What `openssl s_client` reports of the handshake for `sni` with `version` (`-tls1_2`...).
fn certificate_request(port: u16, sni: &str, version: &str) -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            version,
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            sni,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client (the Debian package openssl)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn only_the_cns_host_asks_for_a_certificate_naming_the_card_cas() {
    let g = gateway();
    for version in ["-tls1_2", "-tls1_3"] {
        let asked = certificate_request(g.t.tls_port, CNS_HOST, version);
        assert!(
            asked.contains("Acceptable client certificate CA names"),
            "{asked}"
        );
        assert!(asked.contains("CA Cittadini di Prova"), "{asked}");
        for sni in ["portal.localhost", "a.test"] {
            let not_asked = certificate_request(g.t.tls_port, sni, version);
            assert!(
                not_asked.contains("Server certificate"),
                "{sni}: {not_asked}"
            );
            assert!(
                !not_asked.contains("Acceptable client certificate CA names")
                    && !not_asked.contains("CA Cittadini di Prova"),
                "{sni}: {not_asked}"
            );
        }
    }
    // A connection opened for the portal and reused for the card's host is sent to one of its
    // own: 421.
    let r = raw_tls(g.t.tls_port, "portal.localhost", CNS_HOST);
    assert!(r.starts_with("HTTP/1.1 421"), "{r}");
}

/// A request for `host` on a TLS connection opened with `sni`.
fn raw_tls(port: u16, sni: &str, host: &str) -> String {
    use std::io::{Read, Write};
    let mut b =
        openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).expect("builder");
    b.set_verify(openssl::ssl::SslVerifyMode::NONE);
    let connector = b.build();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut tls = connector.connect(sni, tcp).expect("handshake");
    write!(
        tls,
        "GET /.sso/cns?login=_cns0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_new_revocation_list_takes_effect_when_its_file_changes() {
    let g = gateway();
    let metrics = g.t.gw.metrics();
    assert!(
        metrics.contains("varco_certificate_expiry_seconds{kind=\"cns_crl\"")
            && metrics.contains("varco_certificate_expiry_seconds{kind=\"cns_ca\""),
        "{metrics}"
    );
    // The CA revokes the good card too; the daily download writes the new list.
    let next_update = chrono::Utc::now() + chrono::Duration::days(1);
    let crl = g.ca.crl(&[&g.revoked, &g.good], next_update).expect("crl");
    let path = g.t.gw.dir.path().join("cns-ca.crl");
    let staged = g.t.gw.dir.path().join(".cns-ca.crl.new");
    std::fs::write(&staged, crl).expect("write");
    std::fs::rename(&staged, &path).expect("rename");
    wait_for("the new list", Duration::from_secs(10), || {
        g.t.gw.shared.current().generation >= 2
    });
    rt().block_on(async {
        let (r, _) = login_with(&g, Some(&g.good)).await;
        assert_eq!(r.status(), 403);
        assert!(r
            .text()
            .await
            .expect("text")
            .contains("Carta revocata o sospesa"));
    });
    // A list that no CA of [cns] signed is refused with the whole reload: the last good one
    // keeps serving.
    let stranger = TestCnsCa::new("Other").expect("ca");
    std::fs::write(&staged, stranger.crl(&[], next_update).expect("crl")).expect("write");
    std::fs::rename(&staged, &path).expect("rename");
    wait_for("the refused reload", Duration::from_secs(10), || {
        g.t.gw
            .metrics()
            .contains("varco_policy_reloads_total{result=\"failure\"")
    });
    assert_eq!(g.t.gw.shared.current().generation, 2);
    rt().block_on(async {
        let (r, _) = login_with(&g, Some(&g.revoked)).await;
        assert!(r
            .text()
            .await
            .expect("text")
            .contains("Carta revocata o sospesa"));
    });
}

#[test]
fn varco_check_warns_when_no_certificate_names_the_cns_host() {
    let g = gateway();
    let config = g.t.gw.config_path();
    let path = config.to_str().expect("utf8");
    let (code, _, err) = varco(&["check", "--config", path]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("CNS host"), "{err}");
    let text = std::fs::read_to_string(&config).expect("read");
    let other = config.with_file_name("other-host.toml");
    std::fs::write(
        &other,
        text.replace(
            &format!("host = \"{CNS_HOST}\""),
            "host = \"carta.example\"",
        ),
    )
    .expect("write");
    let (code, _, err) = varco(&["check", "--config", other.to_str().expect("utf8")]);
    assert_eq!(code, 0, "a warning, not an error: {err}");
    assert!(
        err.contains("no [server.tls] certificate names the CNS host \"carta.example\""),
        "{err}"
    );
}
