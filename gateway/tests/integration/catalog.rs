//! The catalog as served: JSON and JSON-LD with ETags, filters and hostile queries over HTTP, the
//! citizen pages without JavaScript, notes for a logged-in citizen, rebuilds on reload.

use std::time::{Duration, Instant};

use crate::citizen::*;
use crate::harness::*;

fn line_up() -> Gateway {
    let be = echo("catalog");
    let mut tari = Svc::public("tari", "a.test", "/tari/", be);
    tari.level = "SpidL2";
    tari.extra = "attributes = [\"fiscalNumber\"]\nkeywords = [\"rifiuti\", \"tassa\"]\nhelp_url = \"https://comune.example/aiuto\"";
    let mut forte = Svc::public("forte", "a.test", "/forte/", be);
    forte.level = "SpidL3";
    let mut hidden = Svc::public("uffici", "a.test", "/uffici/", be);
    hidden.extra = "unlisted = true";
    Gateway::start(
        "",
        &[(
            "a.toml",
            policy_toml(
                "c_a001",
                "046001",
                &[
                    Svc::public("bandi", "a.test", "/bandi/", be),
                    tari,
                    forte,
                    hidden,
                ],
            ),
        )],
    )
}

#[test]
fn the_json_catalog_has_etags_filters_and_clear_errors() {
    let gw = line_up();
    let c = gw.client();
    rt().block_on(async {
        let r = c
            .get(gw.url("portal.localhost", "/catalog.json"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.headers()["cache-control"], "public, max-age=60");
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        let etag = r.headers()["etag"].to_str().expect("ascii").to_string();
        let all: serde_json::Value = r.json().await.expect("json");
        assert_eq!(
            all["total"], 3,
            "the unlisted service is not in the catalog"
        );
        let ids: Vec<&str> = all["services"]
            .as_array()
            .expect("services")
            .iter()
            .filter_map(|s| s["id"].as_str())
            .collect();
        assert_eq!(ids, ["c_a001/bandi", "c_a001/forte", "c_a001/tari"]);
        assert_eq!(
            all["services"][2]["help_url"],
            "https://comune.example/aiuto"
        );

        // Revalidation.
        let r = c
            .get(gw.url("portal.localhost", "/catalog.json"))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 304);
        assert!(r.bytes().await.expect("body").is_empty());

        // Filters, each one.
        for (query, expected) in [
            ("q=rifiuti", vec!["c_a001/tari"]),
            ("q=RIFIÙTI+tassa", vec!["c_a001/tari"]),
            ("level=SpidL3", vec!["c_a001/forte"]),
            ("level=public", vec!["c_a001/bandi"]),
            (
                "category=ambiente&comune=c_a001",
                vec!["c_a001/bandi", "c_a001/forte", "c_a001/tari"],
            ),
            ("category=turismo", vec![]),
            ("comune=c_z999", vec![]),
            ("page=2&per_page=2", vec!["c_a001/tari"]),
            ("q=uffici", vec![]),
        ] {
            let r = c
                .get(gw.url("portal.localhost", &format!("/catalog.json?{query}")))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200, "{query}");
            let filtered_etag = r.headers()["etag"].to_str().expect("ascii").to_string();
            let j: serde_json::Value = r.json().await.expect("json");
            let ids: Vec<&str> = j["services"]
                .as_array()
                .expect("services")
                .iter()
                .filter_map(|s| s["id"].as_str())
                .collect();
            assert_eq!(ids, expected, "{query}");
            assert!(
                j.get("comuni").is_none(),
                "{query}: only the whole catalog lists comuni"
            );
            assert_ne!(filtered_etag, etag, "{query}");
        }

        // Hostile or wrong queries: 400 with the problem named, never a 500 or a hang.
        for query in [
            "level=SpidL9",
            "category=%3Cscript%3E",
            "comune=..%2F..%2Fetc",
            "page=0",
            "per_page=1000000",
            "sort=name",
            "q=a&q=b",
            &format!("q={}", "x".repeat(300)),
            &format!("q={}", "%41".repeat(1000)),
        ] {
            let r = c
                .get(gw.url("portal.localhost", &format!("/catalog.json?{query}")))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 400, "{query}");
            let j: serde_json::Value = r.json().await.expect("json error");
            assert_eq!(j["error"], "invalid query", "{query}");
            assert!(!j["problems"].as_array().expect("problems").is_empty());
        }

        // JSON-LD.
        let r = c
            .get(gw.url("portal.localhost", "/catalog.jsonld?comune=c_a001"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/ld+json");
        let ld: serde_json::Value = r.json().await.expect("json");
        assert_eq!(ld["@context"], "https://schema.org");
        let org = ld["@graph"]
            .as_array()
            .expect("graph")
            .iter()
            .find(|n| n["@type"] == "GovernmentOrganization")
            .expect("organisation")
            .clone();
        assert_eq!(org["identifier"][0]["value"], "046001");
        assert_eq!(org["identifier"][1]["value"], "c_a001");
        // The whole catalog comes gzip-compressed to clients that take it.
        let r = c
            .get(gw.url("portal.localhost", "/catalog.json"))
            .header("accept-encoding", "gzip, br;q=0.5")
            .send()
            .await
            .expect("send");
        assert_eq!(r.headers()["content-encoding"], "gzip");
        assert_ne!(r.headers()["etag"].to_str().expect("ascii"), etag);
        let gz = r.bytes().await.expect("body");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text)
            .expect("gunzip");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).expect("json"),
            all
        );
        let r = c
            .get(gw.url("portal.localhost", "/catalog.json"))
            .header("accept-encoding", "gzip;q=0")
            .send()
            .await
            .expect("send");
        assert!(r.headers().get("content-encoding").is_none());
        // HEAD and other methods.
        let r = c
            .head(gw.url("portal.localhost", "/catalog.json"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        let r = c
            .post(gw.url("portal.localhost", "/catalog.json"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 405);
    });
}

#[test]
fn the_citizen_pages_search_without_javascript_and_page_results() {
    let be = echo("catalog");
    let services: Vec<Svc> = (0..45)
        .map(|i| {
            let mut s = Svc::public(
                Box::leak(format!("s{i:02}").into_boxed_str()),
                "a.test",
                Box::leak(format!("/s{i:02}/").into_boxed_str()),
                be,
            );
            if i % 2 == 0 {
                s.extra = "keywords = [\"mensa\"]";
            }
            s
        })
        .collect();
    let gw = Gateway::start(
        "",
        &[("a.toml", policy_toml("c_a001", "046001", &services))],
    );
    let c = gw.client();
    rt().block_on(async {
        let page = |path: String| {
            let c = c.clone();
            async move {
                let r = c.get(path).send().await.expect("send");
                assert_eq!(r.status(), 200);
                assert_eq!(r.headers()["vary"], "Cookie");
                r.text().await.expect("text")
            }
        };
        let home = page(gw.url("portal.localhost", "/")).await;
        assert!(home.contains(
            "<form class=\"search\" role=\"search\" action=\"/catalog\" method=\"get\">"
        ));
        assert!(home.contains("<label for=\"q\">Cerca un servizio</label>"));
        let first = page(gw.url("portal.localhost", "/catalog?q=Mensa")).await;
        assert!(
            first.contains("23 servizi trovati, pagina 1 di 2."),
            "{first}"
        );
        assert_eq!(first.matches("<li><h2>").count(), 20, "pages of 20");
        assert!(
            first.contains("value=\"Mensa\""),
            "the search box keeps the text"
        );
        assert!(
            first.contains("href=\"/catalog?page=2&amp;q=mensa\" rel=\"next\""),
            "{first}"
        );
        let second = page(gw.url("portal.localhost", "/catalog?page=2&q=mensa")).await;
        assert_eq!(second.matches("<li><h2>").count(), 3);
        assert!(second.contains("rel=\"prev\""));
        // A hostile query is escaped and reported, and the page still answers.
        let hostile = page(gw.url(
            "portal.localhost",
            "/catalog?q=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E&level=nope&utm_source=x",
        ))
        .await;
        assert!(!hostile.contains("<script>alert"));
        assert!(hostile.contains("&quot;&gt;&lt;script&gt;"));
        assert!(hostile.contains("Un filtro non è valido ed è stato ignorato (level)"));
        assert!(
            !hostile.contains("utm_source"),
            "unknown parameters are ignored quietly"
        );
    });
}

#[test]
fn a_logged_in_citizen_sees_what_opens_directly() {
    let gw = line_up();
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        // Log in at SpidL2 through the portal.
        let landing = b
            .visit(&gw.url("portal.localhost", "/.sso/login?level=SpidL2"))
            .await;
        assert_eq!(landing.status, 200);
        let r = b.get(&gw.url("portal.localhost", "/catalog")).await;
        assert_eq!(r.headers()["cache-control"], "private, no-store");
        let html = r.text().await.expect("text");
        assert!(html.contains("Hai effettuato l'accesso con <strong>SPID livello 2</strong>"));
        let tari = html.find("/tari/").expect("tari");
        let forte = html.find("/forte/").expect("forte");
        let after =
            |from: usize| &html[from..html[from..].find("</li>").map_or(html.len(), |e| from + e)];
        assert!(after(tari).contains("Si apre subito"), "{}", after(tari));
        assert!(
            after(forte).contains("Ti chiederà l'accesso con SPID livello 3"),
            "{}",
            after(forte)
        );
        // Anonymous: no notes.
        let anon = gw
            .client()
            .get(gw.url("portal.localhost", "/catalog"))
            .send()
            .await
            .expect("send");
        assert_eq!(anon.headers()["cache-control"], "public, max-age=60");
        assert!(!anon.text().await.expect("text").contains("Si apre subito"));
    });
}

#[test]
fn a_reload_rebuilds_the_catalog() {
    let gw = line_up();
    let c = gw.client();
    rt().block_on(async {
        let before = c.get(gw.url("portal.localhost", "/catalog.json?q=nuovo")).send().await.expect("send");
        let before: serde_json::Value = before.json().await.expect("json");
        assert_eq!(before["total"], 0);
        let text = std::fs::read_to_string(gw.policy_path("a.toml")).expect("read");
        std::fs::write(
            gw.policy_path("a.toml"),
            text + "\n[[service]]\nid = \"nuovo\"\nname = \"Servizio nuovo\"\ndescription = \"Appena pubblicato\"\ncategory = \"turismo\"\nroute = { host = \"a.test\", path_prefix = \"/nuovo/\" }\nupstream = \"http://127.0.0.1:9\"\nlevel = \"public\"\n",
        )
        .expect("write");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = c.get(gw.url("portal.localhost", "/catalog.json?q=nuovo")).send().await.expect("send");
            let j: serde_json::Value = r.json().await.expect("json");
            if j["total"] == 1 {
                assert_eq!(j["services"][0]["id"], "c_a001/nuovo");
                break;
            }
            assert!(Instant::now() < deadline, "the catalog was not rebuilt");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let home = c.get(gw.url("portal.localhost", "/")).send().await.expect("send").text().await.expect("text");
        assert!(home.contains("/catalog?category=turismo"));
    });
}
