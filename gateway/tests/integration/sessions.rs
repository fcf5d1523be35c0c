//! Sessions end to end: step-up (level and attributes), expiry, https cookies, the open-redirect
//! corpus, and two instances sharing one Redis.

use std::time::{Duration, Instant};

use policies::Level;

use crate::citizen::*;
use crate::harness::*;

/// Services of one comune on a.test (not under the portal's cookie: sessions are handed over).
fn policies(be: std::net::SocketAddr) -> Vec<(&'static str, String)> {
    let mut base = Svc::public("base", "a.test", "/base/", be);
    base.level = "SpidL1";
    base.extra = "attributes = [\"fiscalNumber\"]";
    let mut tari = Svc::public("tari", "a.test", "/tari/", be);
    tari.level = "SpidL2";
    tari.extra = "attributes = [\"fiscalNumber\", \"name\"]";
    let mut posta = Svc::public("posta", "a.test", "/posta/", be);
    posta.level = "SpidL1";
    posta.extra = "attributes = [\"fiscalNumber\", \"email\"]";
    vec![(
        "a.toml",
        policy_toml(
            "c_a001",
            "046001",
            &[Svc::public("pub", "a.test", "/pub/", be), base, tari, posta],
        ),
    )]
}

const CONTACTS_SET: &str = "\n[[sp.attribute_set]]\nindex = 1\nname = \"Identità e contatti\"\nattributes = [\"fiscalNumber\", \"name\", \"familyName\", \"email\"]\n";

/// A gateway with the two attribute sets and `session` as its `[session]` table body.
fn gateway_with(session: &str) -> Gateway {
    let be = echo("sessions");
    let session = session.to_string();
    Gateway::start_edited("", &policies(be), move |text, _| {
        format!("{text}{CONTACTS_SET}\n[session]\n{session}\n")
    })
}

/// The header values the echo back-end received under `name`.
fn header(landing: &Landing, name: &str) -> Vec<String> {
    let j: serde_json::Value = serde_json::from_str(&landing.body)
        .unwrap_or_else(|e| panic!("not echo JSON ({e}): {}", landing.body));
    received_headers(&j)
        .into_iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn a_stronger_service_steps_up_to_its_level_and_keeps_one_session() {
    let gw = gateway_with("");
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        b.idp.level = Level::SpidL1;
        let page = b.visit(&gw.url("a.test", "/base/home")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(header(&page, "x-varco-level"), ["SpidL1"]);
        assert!(b.seen[0].xml.contains("SpidL1"));
        let first = b.cookie("a.test", "varco_session").expect("a.test session");

        // The L2 service: a new login at L2, ForceAuthn, back to the very same URL.
        b.idp.level = Level::SpidL2;
        let target = gw.url("a.test", "/tari/avviso?anno=2026");
        let page = b.visit(&target).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(
            page.url, target,
            "the citizen returns where they were going"
        );
        assert_eq!(header(&page, "x-varco-level"), ["SpidL2"]);
        assert_eq!(b.seen.len(), 2);
        let step_up = &b.seen[1];
        assert_eq!(step_up.attr("ForceAuthn").as_deref(), Some("true"));
        assert!(step_up.xml.contains("https://www.spid.gov.it/SpidL2"));

        // One session: the L1 session is gone, the new one has a new ID.
        let second = b.cookie("a.test", "varco_session").expect("new session");
        assert_ne!(first, second);
        let port = gw.port;
        assert_eq!(
            session_status(&gw, port, "a.test", &format!("varco_session={first}")).await,
            401
        );
        assert_eq!(
            session_status(&gw, port, "a.test", &format!("varco_session={second}")).await,
            200
        );
        // The L1 service still opens, without the IdP.
        assert_eq!(b.visit(&gw.url("a.test", "/base/")).await.status, 200);
        assert_eq!(b.seen.len(), 2);

        // Another citizen at L1 whose IdP refuses the step-up with nr20 gets that page.
        let mut other = Browser::new(&gw);
        other.idp.level = Level::SpidL1;
        assert_eq!(other.visit(&gw.url("a.test", "/base/")).await.status, 200);
        other.idp.error_code = Some(20);
        let refused = other.visit(&gw.url("a.test", "/tari/")).await;
        assert_eq!(refused.status, 403);
        assert!(
            refused.body.contains("Credenziali non adatte") && refused.body.contains("nr20"),
            "{}",
            refused.body
        );
    });
}

#[test]
fn a_service_needing_more_attributes_asks_for_a_set_that_covers_them() {
    let gw = gateway_with("");
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        let page = b.visit(&gw.url("a.test", "/tari/")).await;
        assert_eq!(page.status, 200);
        assert_eq!(
            b.seen[0].attr("AttributeConsumingServiceIndex").as_deref(),
            Some("0")
        );
        // posta needs email, which set 0 never asked for: a new login, with set 1.
        b.idp
            .attributes
            .push(("email".into(), "mario.rossi@example.org".into()));
        let page = b.visit(&gw.url("a.test", "/posta/")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(b.seen.len(), 2);
        assert_eq!(
            b.seen[1].attr("AttributeConsumingServiceIndex").as_deref(),
            Some("1")
        );
        assert_eq!(header(&page, "x-varco-email"), ["mario.rossi@example.org"]);
        // Set 1 also covers tari: no third login.
        let page = b.visit(&gw.url("a.test", "/tari/")).await;
        assert_eq!(page.status, 200);
        assert_eq!(header(&page, "x-varco-name"), ["Mario"]);
        assert_eq!(b.seen.len(), 2);

        // A citizen whose IdP has no e-mail to release is not sent round again and again.
        let mut c = Browser::new(&gw);
        assert_eq!(c.visit(&gw.url("a.test", "/tari/")).await.status, 200);
        let page = c.visit(&gw.url("a.test", "/posta/")).await;
        assert_eq!(page.status, 200);
        assert!(header(&page, "x-varco-email").is_empty());
        assert_eq!(c.visit(&gw.url("a.test", "/posta/")).await.status, 200);
        assert_eq!(c.seen.len(), 2);
    });
}

/// Logs in, then checks the idle and the absolute timeout (the session config has idle 1 s,
/// absolute 3 s).
async fn sessions_expire(gw: &Gateway) {
    let mut b = Browser::new(gw);
    assert_eq!(b.visit(&gw.url("a.test", "/tari/")).await.status, 200);
    let id = b.cookie("a.test", "varco_session").expect("session");
    let cookie = format!("varco_session={id}");
    assert_eq!(session_status(gw, gw.port, "a.test", &cookie).await, 200);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        session_status(gw, gw.port, "a.test", &cookie).await,
        401,
        "idle timeout"
    );
    let r = b.get(&gw.url("a.test", "/tari/")).await;
    assert_eq!(r.status(), 302, "an expired session asks for login again");
    assert!(location_of(&r).contains("/.sso/login?"));

    // Used every 0.4 s, it still ends 3 s after login.
    b.clear_cookies();
    assert_eq!(b.visit(&gw.url("a.test", "/tari/")).await.status, 200);
    let cookie = format!(
        "varco_session={}",
        b.cookie("a.test", "varco_session").expect("session")
    );
    let login = Instant::now();
    while login.elapsed() < Duration::from_millis(2500) {
        assert_eq!(session_status(gw, gw.port, "a.test", &cookie).await, 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        session_status(gw, gw.port, "a.test", &cookie).await,
        401,
        "absolute timeout"
    );
}

#[test]
fn in_process_sessions_expire_when_idle_and_after_their_absolute_lifetime() {
    let gw = gateway_with("idle_timeout = \"1s\"\nabsolute_timeout = \"3s\"");
    rt().block_on(sessions_expire(&gw));
}

#[test]
fn over_https_cookies_are_prefixed_secure_and_unprefixed_ones_ignored() {
    let be = echo("sessions");
    let gw = Gateway::start_edited("", &policies(be), |text, port| {
        text.replace(
            &format!("public_url = \"http://portal.localhost:{port}\""),
            &format!("public_url = \"https://portal.localhost:{port}\""),
        ) + CONTACTS_SET
    });
    let origin = format!("https://portal.localhost:{}", gw.port);
    rt().block_on(async {
        let mut b = Browser::with_origin(&gw, &origin);
        let page = b
            .visit(&format!(
                "{origin}/.sso/login?return_to={}",
                enc(&format!("{origin}/"))
            ))
            .await;
        assert_eq!(page.status, 200);
        assert_eq!(page.url, format!("{origin}/"));
        let binding = b
            .set_cookies
            .iter()
            .find(|c| c.starts_with("__Secure-varco_login="))
            .expect("binding cookie");
        for attr in ["; Secure", "; SameSite=None", "; HttpOnly", "; Path=/.sso/"] {
            assert!(binding.contains(attr), "{binding}");
        }
        let session = b
            .set_cookies
            .iter()
            .find(|c| c.starts_with("__Host-varco_session="))
            .expect("host-prefixed session cookie")
            .clone();
        for attr in ["; Secure", "; SameSite=Lax", "; HttpOnly", "; Path=/"] {
            assert!(session.contains(attr), "{session}");
        }
        assert!(
            !session.contains("Domain="),
            "__Host- cookies carry no Domain"
        );
        assert!(
            !b.set_cookies
                .iter()
                .any(|c| c.starts_with("varco_session=")),
            "no unprefixed cookie over https"
        );
        // The same ID without the prefix (a cookie any subdomain or plain-http page could have
        // planted) is not a session over https.
        let id = b
            .cookie("portal.localhost", "__Host-varco_session")
            .expect("session");
        let port = gw.port;
        assert_eq!(
            session_status(
                &gw,
                port,
                "portal.localhost",
                &format!("__Host-varco_session={id}")
            )
            .await,
            200
        );
        assert_eq!(
            session_status(
                &gw,
                port,
                "portal.localhost",
                &format!("varco_session={id}")
            )
            .await,
            401
        );
    });
}

#[test]
fn a_session_id_planted_before_login_is_never_promoted() {
    let gw = gateway_with("");
    rt().block_on(async {
        // An attacker who can set cookies for the victim's browser picks the ID in advance.
        let planted = "Fx".repeat(21) + "d";
        let mut b = Browser::new(&gw);
        b.set_cookie("portal.localhost", "varco_session", &planted);
        b.set_cookie("a.test", "varco_session", &planted);
        let page = b.visit(&gw.url("a.test", "/tari/")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for host in ["portal.localhost", "a.test"] {
            let id = b.cookie(host, "varco_session").expect("session");
            assert_ne!(id, planted, "{host}: a fresh ID at login");
            assert_eq!(id.len(), 43, "256 random bits, base64url");
        }
        let port = gw.port;
        for host in ["portal.localhost", "a.test"] {
            assert_eq!(
                session_status(&gw, port, host, &format!("varco_session={planted}")).await,
                401
            );
        }
        // A second login in the same browser replaces the first session rather than adding one.
        let before = b
            .cookie("portal.localhost", "varco_session")
            .expect("session");
        b.idp.level = Level::SpidL3;
        let page = b
            .visit(&gw.url(
                "portal.localhost",
                &format!(
                    "/.sso/login?level=SpidL3&return_to={}",
                    enc(&gw.url("portal.localhost", "/"))
                ),
            ))
            .await;
        assert_eq!(page.status, 200);
        assert_eq!(
            session_status(
                &gw,
                port,
                "portal.localhost",
                &format!("varco_session={before}")
            )
            .await,
            401
        );
    });
}

mod redis {
    use gateway::store::{Lifetimes, MemoryStore, RedisStore, StateStore};

    use super::*;

    /// Two instances that share `redis`, as behind a load balancer: both have the first one's
    /// public URL; a test picks the instance of each request by its port.
    fn pair(redis: &RedisServer, session_extra: &str) -> (Gateway, Gateway) {
        let be = echo("sessions");
        let store = format!("store = \"{}\"\n{session_extra}", redis.url());
        let s1 = store.clone();
        let first = Gateway::start_edited("", &policies(be), move |text, _| {
            format!("{text}{CONTACTS_SET}\n[session]\n{s1}\n")
        });
        let public = first.port;
        let second = Gateway::start_edited("", &policies(be), move |text, port| {
            format!(
                "{}{CONTACTS_SET}\n[session]\n{store}\n",
                text.replace(
                    &format!("public_url = \"http://portal.localhost:{port}\""),
                    &format!("public_url = \"http://portal.localhost:{public}\"")
                )
            )
        });
        (first, second)
    }

    #[test]
    fn two_instances_share_logins_sessions_and_logouts() {
        let redis = RedisServer::start();
        let (one, two) = pair(&redis, "");
        rt().block_on(async {
            let mut b = Browser::new(&one);
            // Login started on one, answered on two.
            b.port = one.port;
            b.acs_port = Some(two.port);
            let page = b.visit(&one.url("a.test", "/tari/avviso")).await;
            assert_eq!(page.status, 200, "{}", page.body);
            assert_eq!(header(&page, "x-varco-fiscal-number"), ["RSSMRA80A01H501U"]);
            let id = b.cookie("a.test", "varco_session").expect("session");
            let cookie = format!("varco_session={id}");
            // Valid on both.
            for gw in [&one, &two] {
                assert_eq!(session_status(gw, gw.port, "a.test", &cookie).await, 200);
            }
            b.port = two.port;
            let page = b.visit(&one.url("a.test", "/tari/")).await;
            assert_eq!(page.status, 200);
            assert_eq!(b.seen.len(), 1, "one login for both instances");

            // Several tabs: three logins started on one, answered on two in reverse order.
            let mut tabs = Browser::new(&one);
            tabs.port = one.port;
            let mut pending = Vec::new();
            for n in 0..3 {
                let r = tabs
                    .get(&one.url(
                        "portal.localhost",
                        &format!(
                            "/.sso/login?idp={}&return_to={}",
                            enc(IDP),
                            enc(&one.url("portal.localhost", &format!("/?tab={n}")))
                        ),
                    ))
                    .await;
                assert_eq!(r.status(), 302);
                pending.push(location_of(&r));
            }
            tabs.port = two.port;
            for (n, at_idp) in pending.iter().enumerate().rev() {
                let page = tabs.visit(at_idp).await;
                assert_eq!(page.status, 200, "tab {n}: {}", page.body);
                assert_eq!(page.url, one.url("portal.localhost", &format!("/?tab={n}")));
            }

            // Logout on two ends the session on one.
            let r = two
                .client()
                .get(two.url("a.test", "/.sso/logout"))
                .header("cookie", &cookie)
                .header("sec-fetch-site", "same-origin")
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 302);
            for gw in [&one, &two] {
                assert_eq!(session_status(gw, gw.port, "a.test", &cookie).await, 401);
            }
            let r = one
                .client()
                .get(one.url("a.test", "/tari/"))
                .header("cookie", &cookie)
                .send()
                .await
                .expect("send");
            assert_eq!(
                r.status(),
                302,
                "after logout the service asks for login again"
            );
        });
    }

    #[test]
    fn redis_sessions_expire_too() {
        let redis = RedisServer::start();
        let (one, _two) = pair(&redis, "idle_timeout = \"1s\"\nabsolute_timeout = \"3s\"");
        rt().block_on(sessions_expire(&one));
    }

    #[test]
    fn a_lost_store_gives_a_page_not_a_hang() {
        let mut redis = RedisServer::start();
        let (one, _two) = pair(&redis, "");
        rt().block_on(async {
            let mut b = Browser::new(&one);
            assert_eq!(b.visit(&one.url("a.test", "/tari/")).await.status, 200);
            redis.kill();
            let started = Instant::now();
            let r = b.get(&one.url("a.test", "/tari/")).await;
            assert_eq!(r.status(), 503);
            assert!(r
                .text()
                .await
                .expect("text")
                .contains("Accesso momentaneamente non disponibile"));
            assert!(started.elapsed() < Duration::from_secs(15));
            // Public services do not need the store.
            assert_eq!(b.get(&one.url("a.test", "/pub/")).await.status(), 200);
        });
    }

    /// The test IdP that pending logins in the store contract were sent to.
    fn test_idps() -> idp_bridge::IdpRegistry {
        idp_bridge::IdpRegistry::load(&[policies::IdpConfig {
            metadata: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../idp-bridge/test_vectors/spid-sp-test-idp.xml"),
            kind: policies::IdpKind::Spid,
            federation_cert: None,
        }])
        .expect("the test IdP's metadata")
    }

    /// The store contract, for both implementations.
    async fn one_shot_entries(a: &impl StateStore, b: &impl StateStore) {
        let idps = test_idps();
        let browser = idp_bridge::BrowserBinding::new();
        let digest = |n: u8| idp_bridge::BindingDigest::of(&[n]);
        let id = format!("_{}", idp_bridge::random_token(16, false));
        let login = idp_bridge::insecure_test_idp::pending_login_for_tests(
            &id,
            idps.get(IDP).expect("the test IdP"),
            &browser,
        );
        a.put_login(login.clone()).await.expect("put");
        assert!(
            b.take_login(&id, &digest(8)).await.expect("take").is_none(),
            "another browser's take finds nothing"
        );
        let mine = browser.digest();
        let (x, y) = tokio::join!(b.take_login(&id, &mine), a.take_login(&id, &mine));
        let taken = [x.expect("take"), y.expect("take")];
        assert_eq!(
            taken.iter().flatten().count(),
            1,
            "a pending login is taken exactly once"
        );
        assert_eq!(taken.into_iter().flatten().next(), Some(login));

        // The cap on one browser's login starts counts across instances, per browser.
        let starter = idp_bridge::BrowserBinding::new().digest();
        assert_eq!(a.count_login_start(&starter).await.expect("count"), 1);
        assert_eq!(b.count_login_start(&starter).await.expect("count"), 2);
        assert_eq!(a.count_login_start(&starter).await.expect("count"), 3);
        let other = idp_bridge::BrowserBinding::new().digest();
        assert_eq!(b.count_login_start(&other).await.expect("count"), 1);

        let seen = format!("slo\0{id}");
        assert!(a
            .first_use(&seen, Duration::from_secs(60))
            .await
            .expect("seen"));
        assert!(!b
            .first_use(&seen, Duration::from_secs(60))
            .await
            .expect("seen"));

        a.put_logout(&id).await.expect("put");
        assert!(b.take_logout(&id).await.expect("take"));
        assert!(!a.take_logout(&id).await.expect("take"));

        let code = idp_bridge::random_token(32, true);
        a.put_handoff(
            &code,
            gateway::store::Handoff {
                host: "a.test".into(),
                session: "s".into(),
                target: "http://a.test/".into(),
                binding: digest(3),
            },
        )
        .await
        .expect("put");
        assert!(
            b.take_handoff(&code, &digest(4))
                .await
                .expect("take")
                .is_none(),
            "another browser's binding finds nothing"
        );
        assert_eq!(
            b.take_handoff(&code, &digest(3))
                .await
                .expect("take")
                .map(|h| h.host),
            Some("a.test".into())
        );
        assert!(a
            .take_handoff(&code, &digest(3))
            .await
            .expect("take")
            .is_none());

        // IdP-initiated logout ends exactly that subject's sessions, on every instance.
        let session = |name_id: &str| -> gateway::store::Session {
            gateway::store::Session::open(
                idp_bridge::insecure_test_idp::unverified_principal_for_tests(
                    IDP,
                    name_id,
                    Level::SpidL2,
                    &[(policies::Attribute::FiscalNumber, "TINIT-RSSMRA80A01H501U")],
                ),
                policies::AttributeMask::EMPTY,
            )
        };
        let victim = format!("_{}", idp_bridge::random_token(8, false));
        let bystander = format!("_{}", idp_bridge::random_token(8, false));
        let ids: Vec<gateway::store::SessionId> =
            (0..3).map(|_| gateway::store::SessionId::new()).collect();
        a.put_session(&ids[0], session(&victim)).await.expect("put");
        b.put_session(&ids[1], session(&victim)).await.expect("put");
        a.put_session(&ids[2], session(&bystander))
            .await
            .expect("put");
        a.remove_session(&ids[1].key()).await.expect("remove");
        b.put_session(&ids[1], session(&victim))
            .await
            .expect("put again");
        assert_eq!(
            a.remove_subject("https://other.idp", &victim)
                .await
                .expect("none"),
            0
        );
        assert_eq!(b.remove_subject(IDP, &victim).await.expect("ends"), 2);
        assert!(a.session(&ids[0]).await.expect("get").is_none());
        assert!(b.session(&ids[1]).await.expect("get").is_none());
        assert!(
            a.session(&ids[2]).await.expect("get").is_some(),
            "other subjects stay"
        );
        assert_eq!(a.remove_subject(IDP, &victim).await.expect("again"), 0);
    }

    #[test]
    fn both_stores_hand_out_one_shot_entries_once() {
        let redis = RedisServer::start();
        let lifetimes = Lifetimes {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(600),
        };
        let a = RedisStore::connect(&redis.url(), lifetimes).expect("redis");
        let b = RedisStore::connect(&redis.url(), lifetimes).expect("redis");
        rt().block_on(one_shot_entries(&a, &b));
        let memory = MemoryStore::new(lifetimes);
        rt().block_on(one_shot_entries(&memory, &memory));
        // A wrong URL stops the start with a message naming the endpoint.
        let err = RedisStore::connect(&format!("redis://127.0.0.1:{}", closed_port()), lifetimes)
            .expect_err("nothing listens");
        assert!(err.to_string().contains("redis://127.0.0.1:"), "{err}");
    }
}
