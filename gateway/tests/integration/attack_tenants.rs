//! Isolation between comuni, against a real gateway: a back-end cannot plant varco's cookies, a
//! script on one comune's host cannot read what another comune's services received, and one
//! comune's header mapping does not reach another's requests. (A comune claiming another's host
//! is refused by `varco check`: `policies` load tests.)

use crate::citizen::*;
use crate::harness::*;

/// Comune A on a.test (TARI releases the fiscal number), comune B on b.test (releases the name
/// and the e-mail, mapped to `X-Utente` and `X-Email`).
fn two_comuni() -> Gateway {
    // One back-end per comune: names mapped for a back-end are stripped on its every route.
    let (be, other) = (echo("attack-tenants-a"), echo("attack-tenants-b"));
    let mut tari = Svc::public("tari", "a.test", "/tari/", be);
    tari.level = "SpidL2";
    tari.extra = "attributes = [\"fiscalNumber\"]";
    let mut anagrafe = Svc::public("anagrafe", "b.test", "/anagrafe/", other);
    anagrafe.level = "SpidL2";
    anagrafe.extra =
        "attributes = [\"name\", \"email\"]\nheaders = { \"X-Utente\" = \"name\", \"X-Email\" = \"email\" }";
    Gateway::start_edited(
        "",
        &[
            (
                "a.toml",
                policy_toml(
                    "c_a001",
                    "046001",
                    &[Svc::public("pub", "a.test", "/pub/", be), tari],
                ),
            ),
            (
                "b.toml",
                policy_toml(
                    "c_b001",
                    "046002",
                    &[Svc::public("bpub", "b.test", "/pub/", other), anagrafe],
                ),
            ),
        ],
        |text, _| {
            format!("{text}\n[[sp.attribute_set]]\nindex = 1\nname = \"Contatti\"\nattributes = [\"fiscalNumber\", \"name\", \"familyName\", \"email\"]\n")
        },
    )
}

#[test]
fn session_fixation_a_back_end_cannot_plant_varcos_cookies() {
    let gw = two_comuni();
    let c = gw.client();
    rt().block_on(async {
        let planted = [
            "varco_session",
            "__Host-varco_session",
            "__host-VARCO_SESSION",
            "__Secure-varco_login",
            "varco_handoff",
        ];
        let mut url = gw.url("a.test", "/pub/?echo_set_cookie=app");
        for name in planted {
            url.push_str(&format!("&echo_set_cookie={}", enc(name)));
        }
        let r = c.get(&url).send().await.expect("send");
        assert_eq!(r.status(), 200);
        let set: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii").to_string())
            .collect();
        assert_eq!(
            set,
            ["app=planted; Path=/"],
            "only the back-end's own cookie"
        );
    });
    let metrics = gw.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("varco_security_events_total")
                && l.contains("kind=\"upstream_set_cookie\"")),
        "{metrics}"
    );
}

#[test]
fn a_script_on_one_comunes_host_reads_only_what_that_host_may_receive() {
    let gw = two_comuni();
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        b.idp
            .attributes
            .push(("email".into(), "mario@example.it".into()));
        let page = b.visit(&gw.url("b.test", "/anagrafe/")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(b.visit(&gw.url("a.test", "/tari/")).await.status, 200);
        let session = |host: &str| {
            format!(
                "varco_session={}",
                b.cookie(host, "varco_session").expect("session")
            )
        };
        let read = |host: &'static str, cookie: String| {
            let c = gw.client();
            let url = gw.url(host, "/.sso/session");
            async move {
                let r = c
                    .get(url)
                    .header("cookie", cookie)
                    .send()
                    .await
                    .expect("send");
                assert_eq!(r.status(), 200);
                r.json::<serde_json::Value>().await.expect("json")
            }
        };
        let on_a = read("a.test", session("a.test")).await;
        let attributes = on_a["attributes"].as_object().expect("object");
        assert_eq!(
            attributes.keys().collect::<Vec<_>>(),
            ["fiscalNumber"],
            "comune A's page cannot read the e-mail released to comune B: {on_a}"
        );
        let on_b = read("b.test", session("b.test")).await;
        let mut keys: Vec<&String> = on_b["attributes"]
            .as_object()
            .expect("object")
            .keys()
            .collect();
        keys.sort();
        assert_eq!(keys, ["email", "name"], "{on_b}");
        // The portal is varco's own origin: the whole session.
        let on_portal = read("portal.localhost", session("portal.localhost")).await;
        assert!(on_portal["attributes"]["email"].is_string(), "{on_portal}");
    });
}

#[test]
fn one_comunes_header_mapping_is_not_stripped_from_another_comunes_requests() {
    let gw = two_comuni();
    let c = gw.client();
    rt().block_on(async {
        // b.test's back-ends trust X-Utente: a client's copy never reaches them...
        let r = c
            .get(gw.url("b.test", "/pub/"))
            .header("x-utente", "forged")
            .header("x_email", "forged")
            .send()
            .await
            .expect("send");
        let j = r.json::<serde_json::Value>().await.expect("echo JSON");
        assert!(
            !received_headers(&j)
                .iter()
                .any(|(k, _)| k == "x-utente" || k == "x-email" || k == "x_email"),
            "{j}"
        );
        // ...while comune A's back-end, which maps no such name, gets the client's header as sent.
        let r = c
            .get(gw.url("a.test", "/pub/"))
            .header("x-utente", "a client's own header")
            .send()
            .await
            .expect("send");
        let j = r.json::<serde_json::Value>().await.expect("echo JSON");
        assert!(
            received_headers(&j)
                .iter()
                .any(|(k, v)| k == "x-utente" && v == "a client's own header"),
            "{j}"
        );
    });
}
