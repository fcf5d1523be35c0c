use crate::harness::*;

#[test]
fn no_spelling_of_an_owned_header_reaches_the_back_end() {
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
fn trusted_proxies_keep_their_forwarding_headers() {
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
