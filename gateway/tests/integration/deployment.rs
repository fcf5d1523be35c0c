//! Deployments whose ports differ from the portal's: service hosts behind a port mapping or on
//! the scheme's default port while the portal has its own. The citizen's browser connects where
//! its URL says (here: always to the one gateway, as a port mapping does) and sends that `Host`.

use crate::citizen::*;
use crate::harness::*;

fn fiscal_number(landing: &Landing) -> Vec<String> {
    let json: serde_json::Value = serde_json::from_str(&landing.body).expect("echo JSON");
    received_headers(&json)
        .into_iter()
        .filter(|(n, _)| n == "x-varco-fiscal-number")
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn a_service_on_the_default_port_with_the_portal_on_its_own_completes_a_login() {
    // public_url has the gateway's port; the comune's host is reached on port 80.
    let gw = pub_and_tari("", echo("default-port"));
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        let page = b.visit("http://a.test/tari/avviso").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.url, "http://a.test/tari/avviso");
        assert_eq!(fiscal_number(&page), ["RSSMRA80A01H501U"]);
        assert_eq!(b.seen.len(), 1);
    });
}

#[test]
fn a_service_behind_another_port_listed_in_public_ports_completes_a_login() {
    let mapped = free_port();
    let gw = pub_and_tari(&format!("public_ports = [{mapped}]"), echo("mapped-port"));
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        let url = format!("http://a.test:{mapped}/tari/avviso");
        let page = b.visit(&url).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.url, url, "back where the citizen was, port included");
        assert_eq!(fiscal_number(&page), ["RSSMRA80A01H501U"]);
    });
}

#[test]
fn a_port_nobody_declared_gets_a_page_not_a_redirect_that_login_refuses() {
    let gw = pub_and_tari("", echo("unlisted-port"));
    let unlisted = free_port();
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        let r = b
            .get(&format!("http://a.test:{unlisted}/tari/avviso"))
            .await;
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("location").is_none());
        assert!(r.text().await.expect("body").contains("lang=\"it\""));
    });
}

#[test]
fn the_pages_of_a_comunes_host_carry_its_name_and_links() {
    let be = echo("site");
    let policy = pub_and_tari_policies(be)
        .into_iter()
        .map(|(name, text)| {
            (
                name,
                text.replacen(
                    "istat_code = \"046001\"\n",
                    "istat_code = \"046001\"\naccessibility_url = \"https://comune-a.example/accessibilita\"\n",
                    1,
                ),
            )
        })
        .collect::<Vec<_>>();
    let gw = Gateway::start_edited("", &policy, |text, _| {
        format!("{text}\n[portal]\naccessibility_url = \"https://regione.example/accessibilita\"\nprivacy_url = \"https://regione.example/privacy\"\n")
    });
    let c = gw.client();
    rt().block_on(async {
        let body = |host: &'static str, path: &'static str| {
            let c = c.clone();
            let url = gw.url(host, path);
            async move {
                c.get(url)
                    .send()
                    .await
                    .expect("send")
                    .text()
                    .await
                    .expect("body")
            }
        };
        // A comune's host: its name, its accessibility statement, the portal's privacy notice.
        let page = body("a.test", "/non-esiste").await;
        assert!(page.contains(">Comune di Prova c_a001</a>"), "{page}");
        assert!(
            page.contains("href=\"https://comune-a.example/accessibilita\""),
            "{page}"
        );
        assert!(
            page.contains("href=\"https://regione.example/privacy\""),
            "{page}"
        );
        assert!(!page.contains("regione.example/accessibilita"));
        // The portal: the organisation and its links.
        let page = body("portal.localhost", "/non-esiste").await;
        assert!(page.contains(">Provincia di Prova</a>"), "{page}");
        assert!(
            page.contains("href=\"https://regione.example/accessibilita\""),
            "{page}"
        );
        // The choice page for a comune's service is headed by that comune.
        let mut b = Browser::new(&gw);
        let r = b.get(&gw.url("a.test", "/tari/")).await;
        let login = location_of(&r);
        let choice = b.get(&login).await.text().await.expect("body");
        assert!(choice.contains(">Comune di Prova c_a001</a>"), "{choice}");
        assert!(choice.contains("Entra con SPID"));
    });
}
