//! Identity and forwarded-header spoofing, against a real gateway: every spelling of varco's
//! headers and of a service's mapped ones, `Forwarded`, `X-Forwarded-*` and the other
//! client-address headers, headers nominated by `Connection`, and duplicates; from an anonymous
//! client, alongside a real session, and through a trusted proxy.

use crate::citizen::*;
use crate::harness::*;

#[test]
fn spoofing_no_spelling_of_an_owned_header_reaches_the_back_end() {
    let be = echo("spoof");
    let mut with_header = Svc::public("tari", "a.test", "/tari/", be);
    with_header.level = "SpidL1";
    with_header.extra =
        "attributes = [\"fiscalNumber\"]\nheaders = { \"X-CF\" = \"fiscalNumber\" }";
    let gw = Gateway::start(
        "",
        &[(
            "a.toml",
            policy_toml(
                "c_a001",
                "046001",
                &[Svc::public("pub", "a.test", "/pub/", be), with_header],
            ),
        )],
    );
    let spoof = "GET /pub/x HTTP/1.1\r\n\
Host: a.test\r\n\
X-Varco-Fiscal-Number: RSSMRA80A01H501U\r\n\
x-varco-level: SpidL3\r\n\
X-VARCO-LEVEL: SpidL3\r\n\
X_Varco_Level: SpidL3\r\n\
x_varco_name: Mario\r\n\
X-Varco_Family-Name: Rossi\r\n\
X-Varco-Assertion: eyJhbGciOiJub25lIn0.e30.\r\n\
X-Varco-Assertion: second\r\n\
X-Varco-Comune: c_a001\r\n\
X-Varco-Idp: https://evil.example\r\n\
X-CF: RSSMRA80A01H501U\r\n\
x_cf: RSSMRA80A01H501U\r\n\
X-Cf: RSSMRA80A01H501U\r\n\
Forwarded: for=6.6.6.6\r\n\
X-Forwarded-For: 6.6.6.6\r\n\
X_Forwarded_For: 6.6.6.6\r\n\
X-Forwarded-Host: evil.example\r\n\
X-Forwarded-Proto: https\r\n\
X-Real-IP: 6.6.6.6\r\n\
Connection: keep-alive, X-Varco-Level, X-Trace\r\n\
X-Trace: nominated\r\n\
Accept: text/plain\r\n\
\r\n";
    let resp = raw(gw.port, spoof.as_bytes());
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let got = received_headers(&echo_json(&resp));
    for (name, value) in &got {
        let canon = name.replace('_', "-");
        assert!(
            !canon.starts_with("x-varco-"),
            "{name} reached the back-end"
        );
        assert_ne!(canon, "x-cf", "{name} reached the back-end");
        assert_ne!(canon, "forwarded");
        assert_ne!(canon, "x-real-ip");
        assert_ne!(
            canon, "x-trace",
            "a Connection-nominated header must be dropped"
        );
        assert!(
            !value.contains("6.6.6.6") && !value.contains("evil.example"),
            "{name}: {value}"
        );
    }
    assert!(
        got.contains(&("x-forwarded-for".into(), "127.0.0.1".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("x-forwarded-proto".into(), "http".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("x-forwarded-host".into(), "a.test".into())),
        "{got:?}"
    );
    assert!(got.contains(&("accept".into(), "text/plain".into())));
    let m = gw.metrics();
    assert!(
        m.lines().any(
            |l| l.starts_with("varco_inbound_identity_headers_stripped_total")
                && !l.ends_with(" 0")
        ),
        "{m}"
    );
}

#[test]
fn spoofing_trusted_proxies_keep_their_forwarding_headers_but_never_identity() {
    let be = echo("trusted");
    let gw = Gateway::start(
        "trusted_proxies = [\"127.0.0.0/8\"]",
        &[(
            "a.toml",
            policy_toml("c_a001", "046001", &[Svc::public("pub", "a.test", "/", be)]),
        )],
    );
    let resp = raw(
        gw.port,
        b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Varco-Level: SpidL3\r\nConnection: close\r\n\r\n",
    );
    let got = received_headers(&echo_json(&resp));
    assert!(
        got.contains(&("x-forwarded-for".into(), "203.0.113.9, 127.0.0.1".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("x-forwarded-proto".into(), "https".into())),
        "{got:?}"
    );
    assert!(
        !got.iter().any(|(n, _)| n.starts_with("x-varco-")),
        "trust never extends to identity headers"
    );
}

#[test]
fn spoofing_every_spelling_of_forwarded_and_client_address_headers_is_dropped() {
    let be = echo("forwarded");
    let gw = Gateway::start("", &one_comune(&[Svc::public("pub", "a.test", "/", be)]));
    let spellings = [
        "Forwarded: for=6.6.6.6;host=evil.example;proto=https",
        "forwarded: for=\"[2001:db8::6]\"",
        "FORWARDED: by=6.6.6.6",
        "X-Forwarded-For: 6.6.6.6",
        "x-forwarded-for: 6.6.6.7",
        "X_FORWARDED_FOR: 6.6.6.8",
        "X-Forwarded-Host: evil.example",
        "x_forwarded_host: evil.example",
        "X-Forwarded-Proto: https",
        "X-Forwarded-Port: 443",
        "X-Forwarded-Prefix: /admin",
        "X-Forwarded-Server: evil.example",
        "X-Forwarded-Ssl: on",
        "X-Forwarded-Scheme: https",
        "X-Real-IP: 6.6.6.6",
        "x_real_ip: 6.6.6.6",
        "True-Client-IP: 6.6.6.6",
        "CF-Connecting-IP: 6.6.6.6",
        "Fastly-Client-IP: 6.6.6.6",
        "X-Client-IP: 6.6.6.6",
        "Client-IP: 6.6.6.6",
        "X-Cluster-Client-IP: 6.6.6.6",
        "X-Original-Forwarded-For: 6.6.6.6",
        "X-Original-Host: evil.example",
        "X-Host: evil.example",
    ];
    let mut request = String::from("GET /x HTTP/1.1\r\nHost: a.test\r\n");
    for h in spellings {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    let resp = raw(gw.port, request.as_bytes());
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let got = received_headers(&echo_json(&resp));
    for (name, value) in &got {
        assert!(
            !value.contains("6.6.6.")
                && !value.contains("evil.example")
                && !value.contains("2001:db8"),
            "{name}: {value} reached the back-end"
        );
    }
    let mut forwarding: Vec<(String, String)> = got
        .iter()
        .filter(|(n, _)| n.starts_with("x-forwarded-"))
        .cloned()
        .collect();
    forwarding.sort();
    let own = [
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-host", "a.test"),
        ("x-forwarded-proto", "http"),
    ]
    .map(|(n, v)| (n.to_string(), v.to_string()));
    assert_eq!(
        forwarding, own,
        "only varco's own forwarding headers, once each"
    );
}

#[test]
fn spoofing_alongside_a_real_session_the_back_end_gets_only_the_true_identity() {
    let be = echo("spoof-session");
    let gw = pub_and_tari("", be);
    rt().block_on(async {
        let mut b = Browser::new(&gw);
        assert_eq!(b.visit(&gw.url("a.test", "/tari/")).await.status, 200);
        let session = b.cookie("a.test", "varco_session").expect("session");
        // Headers carry the fiscal number without the `TINIT-` prefix of the SAML attribute.
        let true_fiscal = "RSSMRA80A01H501U";
        // A citizen with a real session tries to become somebody else, and to make a hop drop
        // the headers varco adds by nominating them in Connection.
        let request = format!(
            "GET /tari/x HTTP/1.1\r\nHost: a.test\r\nCookie: varco_session={session}\r\n\
X-Varco-Fiscal-Number: VRDGPP80A01H501X\r\n\
x_varco_fiscal_number: VRDGPP80A01H501X\r\n\
X-Varco-Level: SpidL3\r\n\
X-Varco-Assertion: eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.\r\n\
Connection: close, X-Varco-Fiscal-Number, X-Varco-Assertion, X-Forwarded-For\r\n\r\n"
        );
        let resp = raw(gw.port, request.as_bytes());
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        let got = received_headers(&echo_json(&resp));
        let values = |name: &str| -> Vec<&str> {
            got.iter()
                .filter(|(n, _)| n.replace('_', "-") == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(values("x-varco-fiscal-number"), [true_fiscal], "{got:?}");
        assert_eq!(values("x-varco-level"), ["SpidL2"], "{got:?}");
        let assertion = values("x-varco-assertion");
        assert_eq!(assertion.len(), 1, "{got:?}");
        assert!(!assertion[0].starts_with("eyJhbGciOiJub25lIn0"), "{got:?}");
        assert_eq!(values("x-forwarded-for"), ["127.0.0.1"], "{got:?}");
    });
}
