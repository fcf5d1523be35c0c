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

#[test]
fn the_idp_list_comes_in_random_order() {
    // AgID: providers in random order. Every provider must lead the list sometimes, and every
    // shuffle is a permutation.
    let mut first = [0u32; 4];
    for _ in 0..400 {
        let order = shuffled(vec![0usize, 1, 2, 3]);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2, 3]);
        first[order[0]] += 1;
    }
    // Expected 100 each; below 50 would be a biased shuffle (probability far under 1e-6).
    assert!(first.iter().all(|&n| n > 50), "{first:?}");
}
