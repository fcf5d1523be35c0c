use crate::harness::*;

#[test]
fn check_accepts_the_example_and_lists_every_problem_of_a_broken_file() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/varco.toml");
    let (code, out, _) = varco(&["check", "--config", example]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("valid (3 comuni, 10 services)"));

    let be = echo("cli");
    let gw = Gateway::start(
        "",
        &[(
            "a.toml",
            policy_toml("c_a001", "046001", &[Svc::public("pub", "a.test", "/", be)]),
        )],
    );
    let broken = gw.policy_path("a.toml");
    let text = std::fs::read_to_string(&broken)
        .expect("read")
        .replace("level = \"public\"", "level = \"SpidL5\"\ncolor = 1");
    std::fs::write(&broken, text).expect("write");
    let config = gw.config_path();
    let (code, _, err) = varco(&["check", "--config", config.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    let file = broken.display().to_string();
    assert!(
        lines[0].starts_with(&format!("{file}:13:9: [[service]]: `level`")),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!("{file}:14:1: [[service]]: unknown key `color`")),
        "{err}"
    );

    // `run` refuses the same configuration with the same lines.
    let (code, _, err2) = varco(&["run", "--config", config.to_str().expect("utf8")]);
    assert_eq!((code, err2.trim()), (1, err.trim()));
}

#[test]
fn explain_says_where_a_url_goes() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/varco.toml");
    let (code, out, _) = varco(&[
        "explain",
        "--config",
        example,
        "--url",
        "http://lucca.localhost:8080/certificati/residenza",
        "--level",
        "SpidL2",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("service: certificati")
            && out.contains("allow")
            && out.contains("X-Codice-Fiscale (fiscalNumber)"),
        "{out}"
    );
    let (code, out, _) = varco(&[
        "explain",
        "--config",
        example,
        "--url",
        "http://unknown.example/",
    ]);
    assert_eq!(code, 4, "{out}");
    let (code, _, _) = varco(&[
        "explain",
        "--config",
        example,
        "--url",
        "http://lucca.localhost/",
        "--level",
        "L2",
    ]);
    assert_eq!(code, 2);
}

#[test]
fn metadata_prints_the_signed_document_and_refuses_bad_keys() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/varco.toml");
    let (code, out, err) = varco(&["metadata", "--config", example]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("<md:EntityDescriptor") && out.contains("<ds:SignatureValue>"));
    let (code, out, _) = varco(&["metadata", "--config", example, "--cie"]);
    assert_eq!(code, 0);
    assert!(out.contains("cie:Municipality"));

    let be = echo("cli-keys");
    let gw = Gateway::start(
        "",
        &[(
            "a.toml",
            policy_toml("c_a001", "046001", &[Svc::public("pub", "a.test", "/", be)]),
        )],
    );
    std::fs::write(
        gw.dir.path().join("sp.key"),
        "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let config = gw.config_path();
    for cmd in ["metadata", "check"] {
        let (code, _, err) = varco(&[cmd, "--config", config.to_str().expect("utf8")]);
        assert_eq!(code, 1, "{cmd}: {err}");
        assert!(
            err.contains("sp.key: not a PEM private key"),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn audit_verify_checks_the_keyed_chain_of_a_running_gateway() {
    let be = echo("cli-audit");
    let mut tari = Svc::public("tari", "a.test", "/tari/", be);
    tari.level = "SpidL2";
    tari.extra = "attributes = [\"fiscalNumber\"]";
    let gw = Gateway::start("", &[("a.toml", policy_toml("c_a001", "046001", &[tari]))]);
    rt().block_on(async {
        let mut b = crate::citizen::Browser::new(&gw);
        assert_eq!(b.visit(&gw.url("a.test", "/tari/")).await.status, 200);
        // Junk at the ACS is recorded too, bounded.
        let r = gw
            .client()
            .post(gw.url("portal.localhost", "/.sso/acs"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("SAMLResponse={}", "A".repeat(200_000)))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400);
    });
    let dir = gw.config_path().parent().expect("dir").to_path_buf();
    let trail = dir.join("audit/saml-audit.log");
    let key = dir.join("audit.key");
    let (trail_s, key_s) = (trail.to_str().expect("utf8"), key.to_str().expect("utf8"));
    let (code, out, err) = varco(&["audit", "verify", trail_s, "--key", key_s]);
    assert_eq!(code, 0, "{err}");
    // The chain start, the AuthnRequest, the Response, the junk.
    assert!(out.contains("chain intact, 4 records in 1 files"), "{out}");
    let size = std::fs::metadata(&trail).expect("trail").len();
    assert!(
        size < 32 * 1024,
        "the 200 KB of junk were not kept whole: {size} bytes"
    );
    // Without the key, or with another one, a keyed trail does not verify.
    assert_eq!(varco(&["audit", "verify", trail_s]).0, 1);
    let other = dir.join("other.key");
    std::fs::write(&other, [1u8; 32]).expect("write");
    let (code, _, err) = varco(&[
        "audit",
        "verify",
        trail_s,
        "--key",
        other.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("saml-audit.log:1: "), "{err}");
}
