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

/// The path a lenient back-end (IIS, Tomcat, a PHP router) could make of what it receives:
/// decoded twice, `\` as `/`, case-folded, `;params` cut, `//` collapsed, dot segments resolved,
/// trailing dots and spaces of segments dropped.
fn leniently(path: &str) -> String {
    let decode = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (b[i], hex) {
                (b'%', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let once = decode(path.split('?').next().unwrap_or(""));
    let twice = decode(&once).replace('\\', "/").to_lowercase();
    let mut out: Vec<String> = Vec::new();
    for seg in twice.split('/') {
        let seg = seg.split(';').next().unwrap_or("");
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => match s.trim_end_matches(['.', ' ']) {
                "" => {}
                s => out.push(s.to_string()),
            },
        }
    }
    format!("/{}", out.join("/"))
}

#[test]
fn a_public_route_never_reaches_a_protected_path_by_any_spelling() {
    let gw = gateway();
    let port = gw.port;
    let targets = [
        "/tari/avviso",
        "/TARI/avviso",
        "/Tari/avviso",
        "/tari",
        "//tari/avviso",
        "///tari/avviso",
        "/./tari/avviso",
        "/x/../tari/avviso",
        "/x/%2e%2e/tari/avviso",
        "/x/%2E%2E/tari/avviso",
        "/x/.%2e/tari/avviso",
        "/x/%252e%252e/tari/avviso",
        "/%2e/tari/avviso",
        "/x%2f..%2ftari/avviso",
        "/x%2F..%2Ftari/avviso",
        "/%2ftari/avviso",
        "/%252ftari/avviso",
        "/x/..;/tari/avviso",
        "/;x/tari/avviso",
        "/tari;x/avviso",
        "/tari;/avviso",
        "/x\\..\\tari\\avviso",
        "/x%5c..%5ctari/avviso",
        "/%74ari/avviso",
        "/t%61ri/avviso",
        "/tari%00/avviso",
        "/tari%09/avviso",
        "/tari%ef%bc%8eavviso",
        "/x/..%00/tari/avviso",
        "/tari#/avviso",
    ];
    let hosts = [
        "a.test".to_string(),
        format!("a.test:{port}"),
        "A.TEST".to_string(),
        "a.test.".to_string(),
        format!("a.test.:{port}"),
        "a.test..".to_string(),
        "a.test%2e".to_string(),
    ];
    let mut reached = Vec::new();
    let mut checked = 0;
    for host in &hosts {
        for target in &targets {
            for absolute in [false, true] {
                let line = if absolute {
                    format!("http://{host}{target}")
                } else {
                    (*target).to_string()
                };
                let resp = raw(
                    port,
                    format!("GET {line} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                );
                checked += 1;
                let status = resp.get(9..12).unwrap_or("");
                if status != "200" {
                    // 400, 404, or a redirect to log in: nothing was served.
                    assert!(
                        ["400", "404", "302"].contains(&status),
                        "{host} {line}: {resp}"
                    );
                    if status == "302" {
                        assert!(resp.contains("/.sso/login?"), "{host} {line}: {resp}");
                    }
                    continue;
                }
                let Some(json) = resp.split("\r\n\r\n").nth(1) else {
                    continue;
                };
                let seen: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
                let path = seen["path"].as_str().unwrap_or("").to_string();
                let lenient = leniently(&path);
                if lenient == "/tari" || lenient.starts_with("/tari/") {
                    reached.push(format!("{host} {line} → back-end path {path}"));
                }
            }
        }
    }
    assert!(checked > 400);
    assert!(
        reached.is_empty(),
        "the protected path was served without login:\n{}",
        reached.join("\n")
    );
}
