//! Path and route confusion toward lenient back-ends, against a real gateway: what IIS and some
//! frameworks would read as a protected path must never be served under a public service's
//! policy.

use crate::harness::*;

/// a.test: `/` public, `/tari/` at level 2, on one back-end (as a comune's portal and its TARI
/// application often are).
fn gateway() -> Gateway {
    let be = echo("attack-paths");
    Gateway::start(
        "",
        &one_comune(&[
            Svc::public("home", "a.test", "/", be),
            Svc::at_level(
                "tari",
                "a.test",
                "/tari/",
                be,
                "SpidL2",
                "attributes = [\"fiscalNumber\"]",
            ),
        ]),
    )
}

#[test]
fn trailing_dots_and_spaces_never_fall_through_to_a_public_service() {
    let gw = gateway();
    let c = gw.client();
    rt().block_on(async {
        for path in [
            "/tari./avviso",
            "/tari../avviso",
            "/TARI./avviso",
            "/tari%2e/avviso",
            "/tari%20/avviso",
            "/tari%20%20/avviso",
            "/tari.%20/avviso",
            "/tari.;x=1/avviso",
            "/tari/avviso.",
        ] {
            let r = c.get(gw.url("a.test", path)).send().await.expect("send");
            assert_eq!(r.status(), 400, "{path}");
            let body = r.text().await.expect("body");
            assert!(!body.contains("\"backend\""), "{path} reached a back-end");
        }
        // A dot or a space inside a name is a name.
        for path in ["/file.pdf", "/a%20b/", "/.well-known/security.txt"] {
            let r = c.get(gw.url("a.test", path)).send().await.expect("send");
            assert_eq!(r.status(), 200, "{path}");
        }
    });
}

#[test]
fn path_override_headers_never_reach_a_back_end() {
    let gw = gateway();
    let c = gw.client();
    rt().block_on(async {
        let r = c
            .get(gw.url("a.test", "/"))
            .header("x-original-url", "/tari/avviso")
            .header("x_original_url", "/tari/avviso")
            .header("X-Rewrite-URL", "/tari/avviso")
            .header("x_rewrite_url", "/tari/avviso")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        let j = r.json::<serde_json::Value>().await.expect("echo JSON");
        let names: Vec<String> = received_headers(&j).into_iter().map(|(k, _)| k).collect();
        assert!(
            !names
                .iter()
                .any(|n| n.replace('_', "-").contains("original-url")
                    || n.replace('_', "-").contains("rewrite-url")),
            "{names:?}"
        );
    });
}

#[test]
fn back_ends_learn_the_scheme_citizens_use() {
    let be = echo("attack-paths-proto");
    let gw = Gateway::start_edited(
        "",
        &one_comune(&[Svc::public("home", "a.test", "/", be)]),
        |text, port| {
            text.replace(
                &format!("public_url = \"http://portal.localhost:{port}\""),
                &format!("public_url = \"https://portal.localhost:{port}\""),
            )
        },
    );
    let c = gw.client();
    rt().block_on(async {
        let r = c
            .get(gw.url("a.test", "/"))
            .header("x-forwarded-proto", "http")
            .send()
            .await
            .expect("send");
        let j = r.json::<serde_json::Value>().await.expect("echo JSON");
        let proto: Vec<String> = received_headers(&j)
            .into_iter()
            .filter(|(k, _)| k == "x-forwarded-proto")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            proto,
            ["https"],
            "TLS ends in front of varco: citizens use https"
        );
    });
}
