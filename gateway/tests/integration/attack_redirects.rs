//! Open redirects, against a real gateway, on every parameter that carries a URL or decides
//! where a browser goes: `return_to` at `/.sso/login`, the `idp` it sends the browser to,
//! `RelayState` at the ACS, the handoff, and the URL a protected service sends back to after
//! login (built from the request, which an attacker writes).

use crate::citizen::*;
use crate::harness::*;

fn gateway() -> Gateway {
    pub_and_tari("", echo("redirects"))
}

#[test]
fn open_redirect_return_to_never_leaves_varcos_own_hosts() {
    let gw = gateway();
    let port = gw.port;
    rt().block_on(async {
        // Logged in, so that /.sso/login redirects straight to any target it accepts.
        let mut b = Browser::new(&gw);
        let home = b.visit(&gw.url("portal.localhost", "/.sso/login")).await;
        assert_eq!((home.status, b.seen.len()), (200, 1));
        let corpus = [
            "//evil.example/".to_string(),
            "///evil.example/".into(),
            "/\\evil.example/".into(),
            "\\\\evil.example/".into(),
            "/%5Cevil.example/".into(),
            "/%2F%2Fevil.example/".into(),
            "%2F%2Fevil.example/".into(),
            "https:evil.example".into(),
            "http:evil.example".into(),
            "http:/evil.example".into(),
            "https://evil.example/".into(),
            "HTTP://EVIL.EXAMPLE/".into(),
            " //evil.example/".into(),
            "\t//evil.example/".into(),
            "javascript:alert(1)".into(),
            "data:text/html,<script>alert(1)</script>".into(),
            "/tari\r\nLocation: http://evil.example/".into(),
            "/\r\nSet-Cookie: varco_session=x".into(),
            "/%0d%0aSet-Cookie:%20x=y".into(),
            format!("http://portal.localhost:{port}@evil.example/"),
            format!("http://evil.example\\@portal.localhost:{port}/"),
            format!("http://portal.localhost:{port}.evil.example/"),
            "http://portal.localhost.evil.example/".into(),
            format!("http://portal.localhost:{}/", port.wrapping_add(1)),
            format!("https://portal.localhost:{port}/"),
            format!("ftp://portal.localhost:{port}/"),
            format!("http://a.test:{port}/nothing-here/"),
            format!("http://portal.localhost:{port}/.sso/logout"),
            "http://xn--evil-9na.example/".into(),
            "／／evil.example/".into(),
            "http://[::1]/".into(),
            "http://127.0.0.1/".into(),
            "x".repeat(5000),
        ];
        let ours = [
            gw.url("portal.localhost", "/"),
            gw.url("a.test", "/"),
            "/".to_string(),
        ];
        for target in &corpus {
            let r = b
                .get(&gw.url(
                    "portal.localhost",
                    &format!("/.sso/login?return_to={}", enc(target)),
                ))
                .await;
            let status = r.status().as_u16();
            match r.headers().get("location") {
                None => assert_eq!(status, 400, "{target:?}"),
                Some(l) => {
                    let l = l.to_str().expect("ascii");
                    assert!(
                        ours.iter().any(|o| l.starts_with(o.as_str()))
                            && !l.starts_with("//")
                            && !l.contains("evil"),
                        "{target:?} redirected to {l}"
                    );
                }
            }
            assert!(
                !r.headers()
                    .get_all("set-cookie")
                    .iter()
                    .any(|c| c.to_str().unwrap_or("").starts_with("x=")),
                "{target:?} set a cookie"
            );
        }
        // A valid target still works.
        let r = b
            .get(&gw.url(
                "portal.localhost",
                &format!(
                    "/.sso/login?return_to={}",
                    enc(&gw.url("a.test", "/tari/x"))
                ),
            ))
            .await;
        assert_eq!(r.status(), 302);
        // Started at the portal, not sent by a.test: no handoff code without a.test's binding;
        // a.test sends the browser back with it.
        assert_eq!(location_of(&r), gw.url("a.test", "/tari/x"));
    });
}

#[test]
fn open_redirect_the_idp_parameter_names_only_a_registered_idp() {
    let gw = gateway();
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        for idp in [
            "https://evil.example",
            "https://evil.example/",
            "//evil.example",
            "https://localhost:8443.evil.example",
            "https://localhost:8443@evil.example",
            "https://LOCALHOST:8443",
            "https://localhost:8443/../evil",
            "javascript:alert(1)",
        ] {
            let r = b
                .get(&gw.url(
                    "portal.localhost",
                    &format!("/.sso/login?idp={}&return_to=%2F", enc(idp)),
                ))
                .await;
            let location = r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap_or("").to_string());
            assert!(
                location
                    .as_deref()
                    .is_none_or(|l| l.starts_with(&format!("{IDP}/"))),
                "{idp:?} sent the browser to {location:?}"
            );
            assert_eq!(r.status(), 400, "{idp:?}");
        }
    });
}

#[test]
fn open_redirect_relay_state_decides_nothing() {
    // RelayState comes back from the IdP through the browser: whatever it holds, the ACS goes
    // where the login asked to go, kept on the server side.
    let gw = gateway();
    let target = gw.url("a.test", "/tari/avviso");
    for relay in [
        Some("https://evil.example/".to_string()),
        Some("//evil.example".to_string()),
        Some(String::new()),
        None,
    ] {
        rt().block_on(async {
            let mut b = Browser::new(&gw);
            let r = b
                .get(&gw.url(
                    "portal.localhost",
                    &format!("/.sso/login?idp={}&return_to={}", enc(IDP), enc(&target)),
                ))
                .await;
            let id = xml_attr(&saml_param(&location_of(&r), "SAMLRequest"), "ID").expect("ID");
            let acs = gw.url("portal.localhost", "/.sso/acs");
            let answer = idp_bridge::insecure_test_idp::ResponseBuilder::new(
                IDP,
                "http://portal.localhost/.sso/metadata",
                &acs,
                &id,
            )
            .to_base64(&idp_key())
            .expect("sign");
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("SAMLResponse", &answer);
            if let Some(relay) = &relay {
                form.append_pair("RelayState", relay);
            }
            let r = b
                .send(reqwest::Method::POST, &acs, Some(form.finish()), gw.port)
                .await;
            let onward = onward_of(&r);
            let location = r.headers().get("location").cloned();
            assert!(
                location.is_none(),
                "{relay:?}: a form POST answered with a redirect"
            );
            match onward {
                Some(next) => assert_eq!(next, target, "{relay:?}"),
                None => assert_eq!(r.status(), 403, "{relay:?}"),
            }
        });
    }
}

#[test]
fn open_redirect_a_handoff_goes_only_where_its_login_asked() {
    let gw = gateway();
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        let landing = b.visit(&gw.url("a.test", "/tari/x")).await;
        assert_eq!(landing.status, 200);
        assert_eq!(landing.url, gw.url("a.test", "/tari/x"));
        // Extra parameters on a handoff URL are not read.
        let r = b
            .get(&gw.url(
                "a.test",
                "/.sso/handoff?code=x&return_to=https%3A%2F%2Fevil.example%2F&next=//evil.example",
            ))
            .await;
        assert!(r.headers().get("location").is_none(), "{:?}", r.headers());
        assert_eq!(r.status(), 403);
    });
}

#[test]
fn open_redirect_a_protected_service_sends_back_only_to_its_own_host() {
    // The URL the citizen returns to after login is built from the request, which the attacker
    // writes: forwarding headers from an untrusted client, an absolute-form target, a Host
    // with a port or a trailing dot must never turn it into another site.
    let gw = gateway();
    let port = gw.port;
    let requests = [
        format!("GET /tari/x HTTP/1.1\r\nHost: a.test:{port}\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nForwarded: host=evil.example\r\nConnection: close\r\n\r\n"),
        format!("GET http://a.test:{port}/tari/x HTTP/1.1\r\nHost: a.test:{port}\r\nX-Original-Host: evil.example\r\nConnection: close\r\n\r\n"),
        format!("GET /tari//evil.example/ HTTP/1.1\r\nHost: a.test:{port}\r\nConnection: close\r\n\r\n"),
        format!("GET /tari/%2F%2Fevil.example HTTP/1.1\r\nHost: a.test:{port}\r\nConnection: close\r\n\r\n"),
    ];
    for request in &requests {
        let resp = raw(port, request.as_bytes());
        let status: u16 = resp[9..12].parse().expect("status");
        let location = resp.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_string())
        });
        match location {
            None => assert_eq!(status, 400, "{request}\n{resp}"),
            Some(l) => {
                assert_eq!(status, 302, "{request}\n{resp}");
                let return_to = query_param(&l, "return_to").unwrap_or_default();
                // The path may say anything; the origin must be the service's own.
                let back = url::Url::parse(&return_to).expect("absolute return_to");
                assert!(
                    l.starts_with(&gw.url("portal.localhost", "/.sso/login?"))
                        && back.scheme() == "http"
                        && back.host_str() == Some("a.test")
                        && back.port() == Some(port)
                        && back.path().starts_with("/tari/"),
                    "{request}\nsent to {l}"
                );
            }
        }
    }
}
