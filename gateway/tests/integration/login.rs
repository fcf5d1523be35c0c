use crate::harness::*;

fn gateway() -> Gateway {
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

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn login_starts_with_a_signed_redirect_and_a_binding_cookie() {
    let gw = gateway();
    let c = gw.client();
    let back = gw.url("a.test", "/tari/avviso");
    rt().block_on(async {
        let url = gw.url(
            "portal.test",
            &format!(
                "/.sso/login?idp={}&return_to={}",
                enc("https://localhost:8443"),
                enc(&back)
            ),
        );
        let r = c.get(url).send().await.expect("send");
        assert_eq!(r.status(), 302);
        let location = r.headers()["location"].to_str().expect("ascii").to_string();
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

        // With the cookie, no new one: every tab of one browser shares the binding.
        let value = cookie.split(';').next().expect("pair").to_string();
        let url = gw.url(
            "portal.test",
            &format!("/.sso/login?idp={}", enc("https://localhost:8443")),
        );
        let r = c
            .get(url)
            .header("cookie", value)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 302);
        assert!(r.headers().get("set-cookie").is_none());
    });
}

#[test]
fn the_choice_page_lists_the_idps_and_bad_parameters_are_refused() {
    let gw = gateway();
    let c = gw.client();
    rt().block_on(async {
        let url = gw.url(
            "portal.test",
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
                .get(gw.url("portal.test", &bad))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 400, "{bad}");
            assert!(r.headers().get("location").is_none());
        }
    });
}
