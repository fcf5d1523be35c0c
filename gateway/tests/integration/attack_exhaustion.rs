//! Unauthenticated resource exhaustion, against a real gateway: a flood of login starts or of
//! garbage posts is cut off per client with 429 and `Retry-After`, public routes keep working,
//! other clients are not affected, and one browser cannot pile up pending logins.

use crate::citizen::*;
use crate::harness::*;

fn gateway(server_extra: &str) -> Gateway {
    pub_and_tari(server_extra, echo("attack-exhaustion"))
}

#[test]
fn a_flood_of_login_starts_is_cut_off_per_client() {
    // Behind a trusted load balancer (loopback here), clients are told apart by X-Forwarded-For.
    let gw = gateway("trusted_proxies = [\"127.0.0.1/32\"]\nsso_rate = 5\nsso_burst = 20");
    let c = gw.client();
    rt().block_on(async {
        let url = login_url(&gw);
        let mut limited = None;
        for i in 0..40 {
            let r = c
                .get(&url)
                .header("x-forwarded-for", "198.51.100.7")
                .send()
                .await
                .expect("send");
            if r.status() == 429 {
                limited = Some((i, r));
                break;
            }
            assert_eq!(r.status(), 302, "request {i}");
        }
        let (i, r) = limited.expect("the flood is cut off");
        assert!((20..=25).contains(&i), "after the burst: {i}");
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=2).contains(&retry), "{retry}");
        assert!(r.text().await.expect("page").contains("Troppe richieste"));
        // Garbage posts from the same client are cut off too, before any parsing.
        let r = c
            .post(gw.url("portal.localhost", "/.sso/acs"))
            .header("x-forwarded-for", "198.51.100.7")
            .body("SAMLResponse=AAAA")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 429);
        // Another client, public routes and the catalog are unaffected.
        let r = c
            .get(&url)
            .header("x-forwarded-for", "203.0.113.50")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 302);
        for path in ["/pub/", "/.sso/metadata", "/.sso/jwks.json"] {
            let host = if path == "/pub/" {
                "a.test"
            } else {
                "portal.localhost"
            };
            let r = c
                .get(gw.url(host, path))
                .header("x-forwarded-for", "198.51.100.7")
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200, "{path}");
        }
        // The bucket refills.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let r = c
            .get(&url)
            .header("x-forwarded-for", "198.51.100.7")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 302);
    });
    let metrics = gw.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("varco_security_events_total") && l.contains("rate_limited")),
        "{metrics}"
    );
}

#[test]
fn limits_are_on_by_default_also_for_loopback_clients() {
    let gw = gateway("");
    let c = gw.client();
    rt().block_on(async {
        let url = gw.url("portal.localhost", "/.sso/handoff?code=x");
        let mut statuses = Vec::new();
        for _ in 0..110 {
            statuses.push(c.get(&url).send().await.expect("send").status().as_u16());
        }
        assert!(statuses[..100].iter().all(|s| *s == 403), "{statuses:?}");
        assert!(statuses.contains(&429), "{statuses:?}");
    });
}

#[test]
fn one_browser_cannot_pile_up_pending_logins() {
    let gw = gateway("sso_burst = 1000\nsso_rate = 1000");
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        let url = login_url(&gw);
        let mut last = 0;
        for _ in 0..=gateway::sso::MAX_LOGINS_PER_BROWSER {
            last = b.get(&url).await.status().as_u16();
        }
        assert_eq!(last, 429, "past the cap");
        // A fresh browser still logs in.
        let mut other = Browser::new(&gw);
        assert_eq!(other.visit(&gw.url("a.test", "/tari/")).await.status, 200);
    });
}
