use crate::citizen::{enc, idp_key, query_param, saml_param, xml_attr};
use crate::harness::*;

pub(crate) fn gateway() -> Gateway {
    let be = echo("login");
    let mut spid = Svc::public("tari", "a.test", "/tari/", be);
    spid.level = "SpidL2";
    spid.extra = "attributes = [\"fiscalNumber\", \"name\"]";
    Gateway::start(
        "",
        &[(
            "a.toml",
            policy_toml(
                "c_a001",
                "046001",
                &[Svc::public("pub", "a.test", "/pub/", be), spid],
            ),
        )],
    )
}

#[test]
fn login_starts_with_a_signed_redirect_and_a_binding_cookie() {
    let gw = gateway();
    let c = gw.client();
    let back = gw.url("a.test", "/tari/avviso");
    rt().block_on(async {
        let url = gw.url(
            "portal.localhost",
            &format!(
                "/.sso/login?idp={}&return_to={}",
                enc("https://localhost:8443"),
                enc(&back)
            ),
        );
        let r = c.get(url).send().await.expect("send");
        assert_eq!(r.status(), 302);
        let location = location_of(&r);
        assert!(
            location.starts_with("https://localhost:8443/samlsso?SAMLRequest="),
            "{location}"
        );
        for p in ["&RelayState=", "&SigAlg=", "&Signature="] {
            assert!(location.contains(p), "{location}");
        }
        let cookie = r.headers()["set-cookie"].to_str().expect("ascii");
        assert!(
            cookie.starts_with("varco_login=")
                && cookie.contains("HttpOnly")
                && cookie.contains("Path=/.sso/"),
            "{cookie}"
        );
        assert!(
            !location.contains(&enc(&back)),
            "the return target stays server-side, never in RelayState"
        );

        // With the cookie, the same one again, refreshed: every tab of one browser shares the
        // binding, and a retry after a long stay at the IdP still has it.
        let value = cookie.split(';').next().expect("pair").to_string();
        let url = gw.url(
            "portal.localhost",
            &format!("/.sso/login?idp={}", enc("https://localhost:8443")),
        );
        let r = c
            .get(url)
            .header("cookie", &value)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 302);
        let again = r.headers()["set-cookie"].to_str().expect("ascii");
        assert!(again.starts_with(&format!("{value};")), "{again}");
        assert!(again.contains("Max-Age=900"), "{again}");
    });
}

#[test]
fn the_choice_page_lists_the_idps_and_bad_parameters_are_refused() {
    let gw = gateway();
    let c = gw.client();
    rt().block_on(async {
        let url = gw.url(
            "portal.localhost",
            &format!("/.sso/login?return_to={}", enc(&gw.url("a.test", "/tari/"))),
        );
        let r = c.get(url).send().await.expect("send");
        assert_eq!(r.status(), 200);
        let page = r.text().await.expect("text");
        assert!(
            page.contains("Entra con SPID")
                && page.contains("Servizio tari")
                && page.contains("SPID livello 2"),
            "{page}"
        );
        assert!(
            page.contains(
                "/.sso/login?idp=https%3A%2F%2Flocalhost%3A8443&amp;level=SpidL2&amp;return_to="
            ),
            "{page}"
        );
        for bad in [
            format!("/.sso/login?idp={}", enc("https://unknown.example")),
            format!(
                "/.sso/login?idp={}&return_to={}",
                enc("https://localhost:8443"),
                enc("//evil.example/")
            ),
            format!(
                "/.sso/login?idp={}&return_to={}",
                enc("https://localhost:8443"),
                enc("https://evil.example/")
            ),
            format!(
                "/.sso/login?idp={}&level=SpidL9",
                enc("https://localhost:8443")
            ),
        ] {
            let r = c
                .get(gw.url("portal.localhost", &bad))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 400, "{bad}");
            assert!(r.headers().get("location").is_none());
        }
    });
}

pub(crate) mod full {

    use idp_bridge::insecure_test_idp::ResponseBuilder;

    use super::*;

    /// Starts a login with the test IdP; returns (AuthnRequest ID, binding cookie pair,
    /// RelayState).
    pub(crate) async fn start(
        gw: &Gateway,
        c: &reqwest::Client,
        return_to: &str,
    ) -> (String, String, String) {
        try_start(gw, c, "https://localhost:8443", return_to)
            .await
            .expect("the login starts with a redirect to the IdP")
    }

    /// Starts a login with the IdP `idp`: as [`start`], `None` when varco does not redirect to it.
    pub(crate) async fn try_start(
        gw: &Gateway,
        c: &reqwest::Client,
        idp: &str,
        return_to: &str,
    ) -> Option<(String, String, String)> {
        let url = gw.url(
            "portal.localhost",
            &format!("/.sso/login?idp={}&return_to={}", enc(idp), enc(return_to)),
        );
        let r = c.get(url).send().await.expect("send");
        if r.status() != 302 {
            return None;
        }
        let location = location_of(&r);
        let cookie = cookie_pair(&r);
        let id = xml_attr(&saml_param(&location, "SAMLRequest"), "ID").expect("ID");
        Some((
            id,
            cookie,
            query_param(&location, "RelayState").expect("RelayState"),
        ))
    }

    pub(crate) async fn post_acs(
        gw: &Gateway,
        c: &reqwest::Client,
        cookie: &str,
        response: &str,
        relay: &str,
    ) -> reqwest::Response {
        post_acs_at(gw, c, "/.sso/acs", cookie, response, relay).await
    }

    /// Posts the IdP's answer to the ACS at `path` (an aggregated comune's: `/.sso/acs/<ipa>`).
    pub(crate) async fn post_acs_at(
        gw: &Gateway,
        c: &reqwest::Client,
        path: &str,
        cookie: &str,
        response: &str,
        relay: &str,
    ) -> reqwest::Response {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("SAMLResponse", response)
            .append_pair("RelayState", relay)
            .finish();
        c.post(gw.url("portal.localhost", path))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("send")
    }

    #[test]
    fn a_signed_answer_creates_a_session_once() {
        let gw = gateway();
        let c = gw.client();
        let key = idp_key();
        let acs = gw.url("portal.localhost", "/.sso/acs");
        rt().block_on(async {
            let back = gw.url("a.test", "/tari/avviso");
            let (id, cookie, relay) = start(&gw, &c, &back).await;
            let response = ResponseBuilder::new(
                "https://localhost:8443",
                "http://portal.localhost/.sso/metadata",
                &acs,
                &id,
            )
            .to_base64(&key)
            .expect("sign");
            let r = post_acs(&gw, &c, &cookie, &response, &relay).await;
            // A page that goes on (browsers check redirects after a POST against the IdP
            // page's form-action). Started at the portal (not sent by a.test with its
            // binding): straight to the target, which sends the browser back for a handoff
            // bound to it.
            assert_eq!(r.status(), 200);
            assert_eq!(onward_of(&r).as_deref(), Some(back.as_str()));
            let session = r.headers()["set-cookie"]
                .to_str()
                .expect("ascii")
                .to_string();
            assert!(
                session.starts_with("varco_session=")
                    && session.contains("HttpOnly")
                    && session.contains("SameSite=Lax"),
                "{session}"
            );
            let session_pair = session.split(';').next().expect("pair").to_string();

            let r = c
                .get(gw.url("a.test", "/.sso/session"))
                .header("cookie", &session_pair)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200);
            let j: serde_json::Value = r.json().await.expect("json");
            assert_eq!(j["level"], "SpidL2");
            assert_eq!(j["idp"], "https://localhost:8443");
            assert_eq!(j["attributes"]["fiscalNumber"], "TINIT-RSSMRA80A01H501U");
            assert!(
                !j.to_string()
                    .contains(session_pair.split('=').nth(1).expect("id")),
                "the session ID is never echoed"
            );

            // The same response again: refused, with a page, never a 404 or a 200.
            let r = post_acs(&gw, &c, &cookie, &response, &relay).await;
            assert_eq!(r.status(), 403);
            assert!(r
                .text()
                .await
                .expect("text")
                .contains("Accesso non completato"));

            let r = c
                .get(gw.url("portal.localhost", "/.sso/session"))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 401);
            let r = c
                .get(gw.url("portal.localhost", "/.sso/session"))
                .header("cookie", "varco_session=forged")
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 401);
        });
    }

    #[test]
    fn spid_error_codes_get_their_page() {
        let gw = gateway();
        let c = gw.client();
        let key = idp_key();
        let acs = gw.url("portal.localhost", "/.sso/acs");
        rt().block_on(async {
            for (code, text) in [
                (19, "Troppi tentativi"),
                (20, "Credenziali non adatte"),
                (21, "Tempo scaduto"),
                (22, "Consenso negato"),
                (23, "sospesa o revocata"),
                (25, "Accesso annullato"),
                (30, "Tipo di identità non ammesso"),
            ] {
                let (id, cookie, relay) = start(&gw, &c, &gw.url("portal.localhost", "/")).await;
                let mut b = ResponseBuilder::new(
                    "https://localhost:8443",
                    "http://portal.localhost/.sso/metadata",
                    &acs,
                    &id,
                );
                b.error_code = Some(code);
                let r = post_acs(&gw, &c, &cookie, &b.to_base64(&key).expect("sign"), &relay).await;
                assert_eq!(r.status(), 403, "nr{code}");
                let page = r.text().await.expect("text");
                assert!(
                    page.contains(text) && page.contains(&format!("nr{code}")),
                    "nr{code}: {page}"
                );
            }
            // No cookie, garbage, wrong method.
            let r = post_acs(&gw, &c, "", "PGZvbz4=", "").await;
            assert_eq!(r.status(), 400);
            let r = c
                .get(gw.url("portal.localhost", "/.sso/acs"))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 405);
        });
    }
}

#[test]
fn the_post_binding_sends_a_signed_request_with_an_auto_submitting_form() {
    let gw = gateway();
    let c = gw.client();
    rt().block_on(async {
        let url = gw.url(
            "portal.localhost",
            &format!(
                "/.sso/login?idp={}&binding=post",
                enc("https://localhost:8443")
            ),
        );
        let r = c.get(url).send().await.expect("send");
        assert_eq!(r.status(), 200);
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(
            csp.contains("script-src 'sha256-")
                && csp.contains("form-action https://localhost:8443"),
            "{csp}"
        );
        assert!(r.headers()["set-cookie"]
            .to_str()
            .expect("ascii")
            .starts_with("varco_login="));
        let page = r.text().await.expect("text");
        assert!(
            page.contains("action=\"https://localhost:8443/samlsso\"")
                && page.contains("name=\"RelayState\""),
            "{page}"
        );
        let value = page
            .split("name=\"SAMLRequest\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("SAMLRequest");
        let xml = String::from_utf8(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, value).expect("b64"),
        )
        .expect("utf8");
        assert!(
            xml.contains("<ds:SignatureValue>")
                && xml.contains("Destination=\"https://localhost:8443/samlsso\""),
            "{xml}"
        );
    });
}

/// A logo host: answers `/logo.png` with a PNG and anything else with an HTML page, counting
/// requests.
fn logo_host() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let listener = rt()
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let h = hits.clone();
    rt().spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let (ctype, body): (&str, &[u8]) = if head.starts_with("GET /logo.png ") {
                    ("image/png", catalog::FAVICON)
                } else {
                    ("text/html", b"<script>alert(1)</script>")
                };
                let _ = conn
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                let _ = conn.write_all(body).await;
            });
        }
    });
    (port, hits)
}

#[test]
fn idp_logos_are_served_by_varco_and_never_hot_linked() {
    use std::sync::atomic::Ordering;
    let (port, hits) = logo_host();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../idp-bridge/test_vectors/spid-sp-test-idp.xml");
    let xml = std::fs::read_to_string(&fixture).expect("fixture");
    let logo_url = format!("http://127.0.0.1:{port}/logo.png");
    let with_logo = xml.replacen(
        "<ns0:KeyDescriptor",
        &format!("<ns0:Extensions><mdui:UIInfo xmlns:mdui=\"urn:oasis:names:tc:SAML:metadata:ui\"><mdui:Logo height=\"32\" width=\"32\">{logo_url}</mdui:Logo></mdui:UIInfo></ns0:Extensions><ns0:KeyDescriptor"),
        1,
    );
    assert_ne!(with_logo, xml);
    let dir = tempfile::tempdir().expect("tempdir");
    let metadata = dir.path().join("idp-with-logo.xml");
    std::fs::write(&metadata, &with_logo).expect("write");
    let gw = Gateway::start_edited("", &pub_and_tari_policies(echo("logos")), |text, _| {
        text.replace(
            &fixture.display().to_string(),
            &metadata.display().to_string(),
        )
    });
    let c = gw.client();
    let choice = || {
        rt().block_on(async {
            c.get(gw.url("portal.localhost", "/.sso/login?level=SpidL2"))
                .send()
                .await
                .expect("send")
                .text()
                .await
                .expect("body")
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let page = loop {
        let page = choice();
        if page.contains("/.sso/logos/") {
            break page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the logo never reached the cache: {page}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        !page.contains(&format!("127.0.0.1:{port}")),
        "the page hot-links the IdP's host"
    );
    let local = page
        .split("src=\"/.sso/logos/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("logo src")
        .to_string();
    rt().block_on(async {
        let r = c
            .get(gw.url("a.test", &format!("/.sso/logos/{local}")))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/png");
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("sandbox"));
        assert_eq!(&r.bytes().await.expect("body")[..], catalog::FAVICON);
        let unknown = c
            .get(gw.url("portal.localhost", "/.sso/logos/0000"))
            .send()
            .await
            .expect("send");
        assert_eq!(unknown.status(), 404);
    });
    // A reload does not fetch it again; a logo that is not an image is left out.
    assert_eq!(hits.load(Ordering::Relaxed), 1);
    std::fs::write(&metadata, with_logo.replace("/logo.png", "/page.html")).expect("write");
    let main = gw.config_path();
    std::fs::write(&main, std::fs::read_to_string(&main).expect("read") + "\n").expect("touch");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while hits.load(Ordering::Relaxed) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the new logo was never fetched"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let page = choice();
    assert!(
        !page.contains("<img src=\"/.sso/logos/") && !page.contains("page.html"),
        "{page}"
    );
    assert!(page.contains("Entra con SPID"));
}
