//! Attacks on sessions and logins, against a real gateway: each test is named after the weakness
//! it checks (login CSRF through handoff codes, a session silently swapped, logout CSRF, a forged
//! ACS post burning a citizen's login).

use crate::citizen::*;
use crate::harness::*;

/// One comune on a.test (not reached by the portal's cookie: sessions are handed over), with a
/// level 2 and a level 3 service.
fn gateway() -> Gateway {
    let be = echo("attack-sessions");
    Gateway::start(
        "",
        &one_comune(&[
            Svc::public("pub", "a.test", "/pub/", be),
            Svc::at_level(
                "tari",
                "a.test",
                "/tari/",
                be,
                "SpidL2",
                "attributes = [\"fiscalNumber\", \"name\"]",
            ),
            Svc::at_level(
                "forte",
                "a.test",
                "/forte/",
                be,
                "SpidL3",
                "attributes = [\"fiscalNumber\"]",
            ),
        ]),
    )
}

/// The fiscal number a.test's back-end received on the page `landing`.
fn fiscal_number_at_backend(landing: &Landing) -> Option<String> {
    let j: serde_json::Value = serde_json::from_str(&landing.body).ok()?;
    received_headers(&j)
        .into_iter()
        .find(|(k, _)| k == "x-varco-fiscal-number")
        .map(|(_, v)| v)
}

#[test]
fn login_csrf_a_handoff_code_minted_for_the_attackers_session_does_not_log_the_victim_in() {
    let gw = gateway();
    rt().block_on(async {
        // The attacker logs in with their own identity...
        let mut attacker = Browser::new(&gw);
        attacker.idp.attributes[0].1 = "TINIT-TTCMRA80A01H501X".into();
        let page = attacker.visit(&gw.url("a.test", "/tari/")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        // ...then, without a.test's session, has a.test send them round for a fresh code.
        let portal_session = attacker
            .cookie("portal.localhost", "varco_session")
            .expect("portal session");
        attacker.clear_cookies();
        attacker.set_cookie("portal.localhost", "varco_session", &portal_session);
        let r = attacker.get(&gw.url("a.test", "/tari/")).await;
        let login = location_of(&r);
        let r = attacker.get(&login).await;
        let code_url = location_of(&r);
        assert!(
            code_url.starts_with(&gw.url("a.test", "/.sso/handoff?code=")),
            "{code_url}"
        );

        // The victim is lured to the code: no session, no cookie, the expiry page.
        let mut victim = Browser::new(&gw);
        let r = victim.get(&code_url).await;
        assert_eq!(r.status(), 403);
        assert!(victim.cookie("a.test", "varco_session").is_none());
        let page = victim.visit(&gw.url("a.test", "/tari/")).await;
        assert_eq!(
            fiscal_number_at_backend(&page).as_deref(),
            Some("RSSMRA80A01H501U"),
            "the victim works as themself, never in the attacker's account"
        );

        // The victim's try burnt nothing: the code still works for the browser it was made for.
        let r = attacker.get(&code_url).await;
        assert_eq!(r.status(), 302);
        assert!(attacker.cookie("a.test", "varco_session").is_some());
    });
}

#[test]
fn a_handoff_never_silently_replaces_another_persons_session() {
    let gw = gateway();
    rt().block_on(async {
        // Mario's session is open on a.test; the portal's cookie is gone (another tab cleared
        // it, or it was never there: a shared computer).
        let mut b = Browser::new(&gw);
        let page = b.visit(&gw.url("a.test", "/tari/")).await;
        assert_eq!(page.status, 200);
        let mario = b.cookie("a.test", "varco_session").expect("a.test session");
        b.set_cookie("portal.localhost", "varco_session", "gone");
        // Luigi logs in at level 3 for the strong service in the same browser.
        b.idp.level = policies::Level::SpidL3;
        b.idp.name_id = "_citizen-luigi".into();
        b.idp.attributes = vec![("fiscalNumber".into(), "TINIT-VRDLGU80A01H501X".into())];
        let page = b.visit(&gw.url("a.test", "/forte/")).await;
        assert_eq!(page.status, 409, "{}", page.body);
        assert!(page.body.contains("un'altra persona"), "{}", page.body);
        assert_eq!(
            b.cookie("a.test", "varco_session").as_deref(),
            Some(mario.as_str()),
            "a.test still works for Mario, and says so rather than switching"
        );
    });
}

#[test]
fn the_same_citizen_stepping_up_is_not_taken_for_another_person() {
    let gw = gateway();
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        assert_eq!(b.visit(&gw.url("a.test", "/tari/")).await.status, 200);
        b.set_cookie("portal.localhost", "varco_session", "gone");
        // A new transient NameID at every login, the same fiscal number.
        b.idp.level = policies::Level::SpidL3;
        b.idp.name_id = "_citizen-mario-again".into();
        let page = b.visit(&gw.url("a.test", "/forte/")).await;
        assert_eq!(page.status, 200, "{}", page.body);
    });
}

#[test]
fn logout_csrf_a_request_from_another_site_asks_first() {
    let gw = gateway();
    let c = gw.client();
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        assert_eq!(b.visit(&gw.url("a.test", "/tari/")).await.status, 200);
        let cookie = format!(
            "varco_session={}",
            b.cookie("portal.localhost", "varco_session")
                .expect("session")
        );
        let logout = gw.url("portal.localhost", "/.sso/logout");
        // A link or an image on another site, and a client that says nothing about its origin.
        for site in [Some("cross-site"), Some("same-site"), None] {
            let mut r = c.get(&logout).header("cookie", &cookie);
            if let Some(s) = site {
                r = r.header("sec-fetch-site", s);
            }
            let r = r.send().await.expect("send");
            assert_eq!(r.status(), 200, "{site:?}");
            assert!(r.headers().get("set-cookie").is_none(), "{site:?}");
            let page = r.text().await.expect("page");
            assert!(
                page.contains("Vuoi uscire?") && page.contains("method=\"post\""),
                "{page}"
            );
            assert_eq!(
                session_status(&gw, gw.port, "portal.localhost", &cookie).await,
                200,
                "{site:?}: the session is still open"
            );
        }
        // A form on another site posting to the logout.
        for origin in ["http://evil.example", "null"] {
            let r = c
                .post(&logout)
                .header("cookie", &cookie)
                .header("origin", origin)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 400, "{origin}");
        }
        assert_eq!(
            session_status(&gw, gw.port, "portal.localhost", &cookie).await,
            200
        );
        // The confirmation form itself (same origin) logs out.
        let r = c
            .post(&logout)
            .header("cookie", &cookie)
            .header("origin", gw.url("portal.localhost", ""))
            .send()
            .await
            .expect("send");
        // Answered with a page that goes on to the IdP's logout (no redirect after a POST).
        assert_eq!(r.status(), 200);
        assert!(onward_of(&r).is_some_and(|u| u.starts_with(IDP)), "{r:?}");
        assert_eq!(
            session_status(&gw, gw.port, "portal.localhost", &cookie).await,
            401
        );
    });
}

#[test]
fn a_forged_acs_post_from_another_browser_does_not_burn_the_citizens_login() {
    let gw = gateway();
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        // The citizen is at the IdP: varco has a pending login for this request ID.
        let (at_idp, id) = b.start_login(&gw).await;
        // Someone who learnt the ID posts a response for it from another browser.
        let forged = idp_bridge::insecure_test_idp::ResponseBuilder::new(
            IDP,
            "http://portal.localhost/.sso/metadata",
            &gw.url("portal.localhost", "/.sso/acs"),
            &id,
        )
        .to_base64(&idp_key())
        .expect("sign");
        let r = gw
            .client()
            .post(gw.url("portal.localhost", "/.sso/acs"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("SAMLResponse={}", enc(&forged)))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 403);
        // The citizen's own answer still completes the login.
        let page = b.visit(&at_idp).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.url, gw.url("portal.localhost", "/"));
    });
}

#[test]
fn a_tampered_forged_or_oversized_session_cookie_is_no_session() {
    let gw = gateway();
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        assert_eq!(b.visit(&gw.url("a.test", "/tari/")).await.status, 200);
        let good = b.cookie("a.test", "varco_session").expect("session");
        let flipped = {
            let mut v: Vec<char> = good.chars().collect();
            v[10] = if v[10] == 'A' { 'B' } else { 'A' };
            v.into_iter().collect::<String>()
        };
        let c = gw.client();
        for (case, cookie) in [
            ("one character changed", format!("varco_session={flipped}")),
            ("forged", format!("varco_session={}", "A".repeat(43))),
            ("truncated", format!("varco_session={}", &good[..42])),
            ("with a suffix", format!("varco_session={good}x")),
            ("empty", "varco_session=".to_string()),
            ("another name", format!("Varco_Session={good}")),
            (
                "oversized",
                format!("varco_session={}; x={}", "A".repeat(43), "y".repeat(12_000)),
            ),
        ] {
            let r = c
                .get(gw.url("a.test", "/tari/"))
                .header("cookie", cookie)
                .send()
                .await
                .expect("send");
            assert!(
                r.status() == 302 || r.status().is_client_error(),
                "{case}: {}",
                r.status()
            );
        }
        // The genuine cookie still works.
        let r = c
            .get(gw.url("a.test", "/tari/"))
            .header("cookie", format!("varco_session={good}"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    });
}

#[test]
fn an_expired_session_used_concurrently_never_comes_back() {
    let be = echo("attack-sessions-expiry");
    let gw = Gateway::start_edited("", &pub_and_tari_policies(be), |text, _| {
        format!("{text}\n[session]\nidle_timeout = \"1s\"\nabsolute_timeout = \"30s\"\n")
    });
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        assert_eq!(b.visit(&gw.url("a.test", "/tari/")).await.status, 200);
        let cookie = format!(
            "varco_session={}",
            b.cookie("a.test", "varco_session").expect("session")
        );
        tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
        let mut tasks = Vec::new();
        for _ in 0..24 {
            let (c, url, cookie) = (gw.client(), gw.url("a.test", "/tari/"), cookie.clone());
            tasks.push(tokio::spawn(async move {
                c.get(url)
                    .header("cookie", cookie)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task").expect("answer"), 302);
        }
        assert_eq!(
            session_status(&gw, gw.port, "a.test", &cookie).await,
            401,
            "still gone"
        );
    });
}
