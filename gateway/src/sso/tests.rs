use super::*;

fn example() -> Snapshot {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/varco.toml");
    policies::load(&path).expect("example loads")
}

#[test]
fn return_targets_are_only_varco_urls() {
    let s = example();
    for ok in [
        "/",
        "/catalog?q=tari",
        "http://127.0.0.1:8080/",
        "http://capannori.localhost:8080/tari/avviso?x=1",
        "http://CAPANNORI.localhost:8080/bandi/",
    ] {
        assert!(return_target(&s, ok).is_some(), "{ok} refused");
    }
    let t = return_target(&s, "http://capannori.localhost:8080/tari/x").expect("service");
    assert!(t.service.is_some());
    for evil in [
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "https:evil.example",
        "https://evil.example/",
        "http://evil.example:8080/",
        "http://127.0.0.1:8080@evil.example/",
        "http://user@capannori.localhost:8080/tari/",
        "http://capannori.localhost:9999/tari/",
        "https://capannori.localhost:8080/tari/",
        "javascript:alert(1)",
        "/%0d%0aSet-Cookie:x=1",
        "/\r\nLocation: http://evil",
        "/ space",
        "/.sso/login",
        "http://nowhere.localhost:8080/",
        "http://capannori.localhost:8080/tari/../../x",
        "",
        "evil.example",
    ] {
        assert!(return_target(&s, evil).is_none(), "{evil:?} accepted");
    }
}
