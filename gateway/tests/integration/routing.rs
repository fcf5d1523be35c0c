use crate::harness::*;

fn line_up() -> Gateway {
    let be_a = echo("a");
    let be_b = echo("b");
    let mut spid = Svc::public("tari", "a.test", "/tari/", be_a);
    spid.level = "SpidL2";
    spid.extra = "attributes = [\"fiscalNumber\"]";
    Gateway::start(
        "",
        &[(
            "a.toml",
            policy_toml(
                "c_a001",
                "046001",
                &[
                    Svc::public("home", "a.test", "/", be_b),
                    Svc::public("bandi", "a.test", "/bandi/", be_a),
                    spid,
                    Svc::public("portale", "portal.localhost", "/servizi/", be_a),
                ],
            ),
        )],
    )
}

#[test]
fn requests_reach_the_right_back_end_unchanged() {
    let gw = line_up();
    let c = gw.client();
    rt().block_on(async {
        let r = c
            .get(gw.url("a.test", "/bandi/gara%201?x=1&y=%2F"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        let j: serde_json::Value = r.json().await.expect("json");
        assert_eq!(j["backend"], "a");
        assert_eq!(
            j["path"], "/bandi/gara%201",
            "path reaches the back-end as sent"
        );
        assert_eq!(j["query"], "x=1&y=%2F");
        let h = received_headers(&j);
        assert!(h.contains(&("host".into(), format!("a.test:{}", gw.port))));
        assert!(h.contains(&("x-forwarded-for".into(), "127.0.0.1".into())));
        assert!(h.contains(&("x-forwarded-proto".into(), "http".into())));
        assert!(h.contains(&("x-forwarded-host".into(), format!("a.test:{}", gw.port))));

        // Longest prefix, case-insensitive, duplicate slashes.
        for path in ["/BANDI", "//bandi//x", "/%62andi/"] {
            assert_eq!(
                get_json(&c, gw.url("a.test", path)).await["backend"],
                "a",
                "{path}"
            );
        }
        let j = get_json(&c, gw.url("a.test", "/bandito")).await;
        assert_eq!(j["backend"], "b");
        let j = get_json(&c, gw.url("portal.localhost", "/servizi/x")).await;
        assert_eq!(j["backend"], "a");

        // POST bodies go through.
        let r = c
            .post(gw.url("a.test", "/bandi/offerta"))
            .body("ciao")
            .send()
            .await
            .expect("send");
        let j: serde_json::Value = r.json().await.expect("json");
        assert_eq!(
            (j["method"].as_str(), j["body_bytes"].as_u64()),
            (Some("POST"), Some(4))
        );
    });
}

#[test]
fn services_with_a_level_send_the_citizen_to_login() {
    let gw = line_up();
    let c = gw.client();
    rt().block_on(async {
        let r = c.get(gw.url("a.test", "/tari/avviso?anno=2026")).send().await.expect("send");
        assert_eq!(r.status(), 302);
        let location = r.headers()["location"].to_str().expect("ascii").to_string();
        let expected = format!(
            "http://portal.localhost:{}/.sso/login?return_to=http%3A%2F%2Fa.test%3A{}%2Ftari%2Favviso%3Fanno%3D2026&level=SpidL2",
            gw.port, gw.port
        );
        // a.test is not reached by the portal's cookie: its handoff binding goes along.
        let (before, hb) = location.split_once("&hb=").expect("handoff binding");
        assert_eq!(before, expected);
        assert_eq!(hb.len(), 43, "{hb}");
        let cookie = r.headers()["set-cookie"].to_str().expect("ascii");
        assert!(
            cookie.starts_with("varco_handoff=") && cookie.contains("HttpOnly") && cookie.contains("Path=/.sso/"),
            "{cookie}"
        );
        // The login page names the service and the level.
        let page = c.get(location).send().await.expect("send").text().await.expect("text");
        assert!(page.contains("Servizio tari") && page.contains("SPID livello 2"), "{page}");
    });
}

#[test]
fn unknown_hosts_and_paths_get_the_italian_404_page() {
    let gw = line_up();
    let c = gw.client();
    rt().block_on(async {
        for (host, path) in [
            ("nowhere.test", "/"),
            ("portal.localhost", "/altro"),
            ("a.test", "/.sso/nothing"),
            ("portal.localhost", "/assets/style.css"),
        ] {
            let r = c.get(gw.url(host, path)).send().await.expect("send");
            assert_eq!(r.status(), 404, "{host}{path}");
            let body = r.text().await.expect("text");
            assert!(
                body.contains("Pagina non trovata") && body.contains("lang=\"it\""),
                "{body}"
            );
        }
        let r = c
            .get(gw.url("portal.localhost", "/"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        let body = r.text().await.expect("text");
        assert!(
            body.contains("Prova c_a001") && body.contains("/catalog?comune=c_a001"),
            "{body}"
        );
        let r = c
            .get(gw.url("portal.localhost", "/catalog?comune=c_a001"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        assert!(r.text().await.expect("text").contains("Servizio bandi"));
    });
}

#[test]
fn ambiguous_targets_get_400_and_never_reach_a_back_end() {
    let gw = line_up();
    for target in [
        "/bandi/../tari/x",
        "/bandi/%2e%2e/tari/x",
        "/x/..;/tari/",
        "/bandi%2f..%2ftari",
        "/bandi\\x",
        "/bandi/%zz",
    ] {
        let resp = raw(
            gw.port,
            format!("GET {target} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(resp.starts_with("HTTP/1.1 400"), "{target}: {resp}");
        assert!(resp.contains("Richiesta non valida"), "{target}");
    }
    // A missing or malformed Host is refused too.
    let resp = raw(gw.port, b"GET / HTTP/1.0\r\n\r\n");
    assert!(
        resp.starts_with("HTTP/1.1 400") || resp.starts_with("HTTP/1.0 400"),
        "{resp}"
    );
    let resp = raw(
        gw.port,
        b"GET / HTTP/1.1\r\nHost: user@a.test\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.contains(" 400 "), "{resp}");
}

#[test]
fn two_host_headers_are_refused() {
    let gw = line_up();
    let resp = raw(
        gw.port,
        b"GET /bandi/ HTTP/1.1\r\nHost: a.test\r\nHost: portal.localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.contains(" 400 "), "{resp}");
}

#[test]
fn sp_metadata_is_served_on_every_known_host() {
    let gw = line_up();
    let c = gw.client();
    rt().block_on(async {
        for (host, path, needle) in [
            (
                "portal.localhost",
                "/.sso/metadata",
                "<spid:IPACode>p_pr</spid:IPACode>",
            ),
            ("a.test", "/.sso/metadata", "<spid:Public/>"),
            (
                "portal.localhost",
                "/.sso/metadata/cie",
                "<cie:Municipality>046007</cie:Municipality>",
            ),
        ] {
            let r = c.get(gw.url(host, path)).send().await.expect("send");
            assert_eq!(r.status(), 200, "{host}{path}");
            assert_eq!(r.headers()["content-type"], "application/samlmetadata+xml");
            let xml = r.text().await.expect("text");
            assert!(
                xml.contains("<ds:SignatureValue>") && xml.contains(needle),
                "{xml}"
            );
        }
        let r = c
            .post(gw.url("portal.localhost", "/.sso/metadata"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 405);
        let r = c
            .get(gw.url("portal.localhost", "/.sso/nothing"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 404);
        let r = c
            .get(gw.url("nowhere.test", "/.sso/metadata"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 404);
    });
}

#[test]
fn favicon_is_varcos_where_no_service_serves_one() {
    let gw = line_up();
    let c = gw.client();
    rt().block_on(async {
        // The portal host and an unknown host: varco's icon, cacheable, never the 404 page.
        for host in ["portal.localhost", "nowhere.test"] {
            let r = c
                .get(gw.url(host, "/favicon.ico"))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200, "{host}");
            assert_eq!(r.headers()["content-type"], "image/x-icon");
            assert!(r.headers()["cache-control"]
                .to_str()
                .expect("ascii")
                .contains("max-age"));
            let body = r.bytes().await.expect("body");
            assert_eq!(&body[..4], b"\0\0\x01\0", "an ICO file");
        }
        // A host whose service covers `/`: the comune's own icon, from its back-end.
        let r = c
            .get(gw.url("a.test", "/favicon.ico"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        assert!(r.text().await.expect("body").contains("\"backend\": \"b\""));
    });
}
