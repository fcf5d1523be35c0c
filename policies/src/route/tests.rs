use proptest::prelude::*;

use super::*;

fn r(c: u32, s: u32) -> ServiceRef {
    ServiceRef {
        comune: c,
        service: s,
    }
}

fn table() -> RouteTable {
    RouteTable::new(
        "portal.example",
        [
            ("a.example".to_string(), "".to_string(), r(0, 0)),
            ("a.example".to_string(), "/tari".to_string(), r(0, 1)),
            (
                "a.example".to_string(),
                "/tari/pagamenti".to_string(),
                r(0, 2),
            ),
            ("a.example".to_string(), "/ta".to_string(), r(0, 3)),
            (
                "portal.example".to_string(),
                "/servizi".to_string(),
                r(1, 0),
            ),
        ],
    )
}

fn svc(host: &str, path: &str) -> Result<RouteMatch, RejectedTarget> {
    table().resolve(host, path)
}

#[test]
fn longest_prefix_at_segment_boundaries() {
    assert_eq!(svc("a.example", "/"), Ok(RouteMatch::Service(r(0, 0))));
    assert_eq!(svc("a.example", "/tari"), Ok(RouteMatch::Service(r(0, 1))));
    assert_eq!(svc("a.example", "/tari/"), Ok(RouteMatch::Service(r(0, 1))));
    assert_eq!(
        svc("a.example", "/tari/x"),
        Ok(RouteMatch::Service(r(0, 1)))
    );
    assert_eq!(svc("a.example", "/tarip"), Ok(RouteMatch::Service(r(0, 0))));
    assert_eq!(
        svc("a.example", "/tari/pagamenti/1"),
        Ok(RouteMatch::Service(r(0, 2)))
    );
    assert_eq!(
        svc("a.example", "/tari/pagamentix"),
        Ok(RouteMatch::Service(r(0, 1)))
    );
    assert_eq!(svc("a.example", "/ta/x"), Ok(RouteMatch::Service(r(0, 3))));
}

#[test]
fn hosts_ignore_port_case_and_trailing_dot() {
    for h in [
        "a.example",
        "A.Example",
        "a.example:8080",
        "a.example.",
        "a.example.:443",
    ] {
        assert_eq!(svc(h, "/tari/x"), Ok(RouteMatch::Service(r(0, 1))), "{h}");
    }
    assert_eq!(svc("b.example", "/tari/x"), Ok(RouteMatch::NotFound));
    assert_eq!(svc("a.example.evil", "/tari/x"), Ok(RouteMatch::NotFound));
    for bad in [
        "",
        ":80",
        "a.example:http",
        "a b",
        "a.example:80:80",
        "[::1",
        "[zz]:80",
        "a/b",
        "a.example:123456",
        ".",
    ] {
        assert_eq!(svc(bad, "/"), Err(RejectedTarget::BadHost), "{bad:?}");
    }
    assert_eq!(normalize_host("[::1]:8080").as_deref(), Ok("::1"));
}

#[test]
fn case_slashes_encoding_and_parameters_do_not_change_the_service() {
    for p in [
        "/TARI/x",
        "/Tari",
        "//tari/x",
        "/tari//x",
        "///tari",
        "/%74ari/x",
        "/%54%41%52%49/",
        "/tari;jsessionid=1/x",
        "/tari;x",
        "/;a/tari/x",
    ] {
        assert_eq!(svc("a.example", p), Ok(RouteMatch::Service(r(0, 1))), "{p}");
    }
    assert_eq!(
        svc("a.example", "/tari%2Dx"),
        Ok(RouteMatch::Service(r(0, 0))),
        "%2D is `-`: tari-x is not tari"
    );
    assert_eq!(
        svc("a.example", "/tari%20x"),
        Ok(RouteMatch::Service(r(0, 0))),
        "an escaped space inside a segment stays part of it"
    );
}

#[test]
fn ambiguous_targets_are_rejected() {
    use RejectedTarget::*;
    let cases = [
        ("/public/../tari", DotSegment),
        ("/./tari", DotSegment),
        ("/tari/..", DotSegment),
        ("/%2e%2e/tari", DotSegment),
        ("/.%2E/tari", DotSegment),
        ("/x/..;/tari", DotSegment),
        ("/x/.;a=b/tari", DotSegment),
        ("/tari%2fx", EncodedSeparator),
        ("/tari%5C..%5Cx", EncodedSeparator),
        ("/tari\\x", Backslash),
        ("/x%252f..%252ftari", DoubleEncoding),
        ("/x/%252e%252e/tari", DoubleEncoding),
        ("/%252ftari", DoubleEncoding),
        ("/tari%2541", DoubleEncoding),
        ("/tari./x", TrailingDotOrSpace),
        ("/tari%2e/x", TrailingDotOrSpace),
        ("/tari%20/x", TrailingDotOrSpace),
        ("/tari.;a=b/x", TrailingDotOrSpace),
        ("/tari/x.", TrailingDotOrSpace),
        ("/TARI.../x", TrailingDotOrSpace),
        ("/tari%", BadPercentEncoding),
        ("/tari%4", BadPercentEncoding),
        ("/tari%zz", BadPercentEncoding),
        ("/tari%00", ControlCharacter),
        ("/tari%0d%0a", ControlCharacter),
        ("/tari\tx", ControlCharacter),
        ("tari", NotOriginForm),
        ("*", NotOriginForm),
        ("", NotOriginForm),
    ];
    for (p, want) in cases {
        assert_eq!(svc("a.example", p), Err(want), "{p}");
    }
    // A percent sign that is not a double encoding is a percent sign.
    assert_eq!(
        svc("a.example", "/tari/100%25"),
        Ok(RouteMatch::Service(r(0, 1)))
    );
    assert_eq!(
        svc("a.example", "/tari/100%25off"),
        Ok(RouteMatch::Service(r(0, 1)))
    );
    // Dots inside names are fine.
    assert_eq!(
        svc("a.example", "/tari/.well-known/x"),
        Ok(RouteMatch::Service(r(0, 1)))
    );
    assert_eq!(
        svc("a.example", "/tari/..x/y...z"),
        Ok(RouteMatch::Service(r(0, 1)))
    );
}

#[test]
fn sso_and_portal_paths_belong_to_varco() {
    assert_eq!(svc("a.example", "/.sso/login"), Ok(RouteMatch::Sso));
    assert_eq!(svc("a.example", "/.SSO/login"), Ok(RouteMatch::Sso));
    assert_eq!(svc("a.example", "//.sso"), Ok(RouteMatch::Sso));
    assert_eq!(svc("a.example", "/.ssox"), Ok(RouteMatch::Service(r(0, 0))));
    assert_eq!(svc("portal.example", "/"), Ok(RouteMatch::Portal));
    assert_eq!(svc("portal.example", "/catalog"), Ok(RouteMatch::Portal));
    assert_eq!(
        svc("portal.example", "/catalog.json"),
        Ok(RouteMatch::Portal)
    );
    assert_eq!(
        svc("portal.example", "/assets/varco.css"),
        Ok(RouteMatch::Portal)
    );
    assert_eq!(
        svc("portal.example", "/servizi/x"),
        Ok(RouteMatch::Service(r(1, 0)))
    );
    assert_eq!(svc("portal.example", "/altro"), Ok(RouteMatch::NotFound));
    assert_eq!(svc("portal.example", "/.sso/metadata"), Ok(RouteMatch::Sso));
    assert_eq!(
        svc("a.example", "/catalog"),
        Ok(RouteMatch::Service(r(0, 0)))
    );
}

#[test]
fn configured_prefixes_are_normalised_or_refused() {
    assert_eq!(normalize_prefix("/"), Ok(String::new()));
    assert_eq!(normalize_prefix("/TARI/"), Ok("/tari".to_string()));
    assert_eq!(normalize_prefix("/a/b"), Ok("/a/b".to_string()));
    for bad in [
        "tari", "/a//b", "/a/../b", "/./", "/a%20b", "/a;b", "/a b", "/à", "/.sso", "/.sso/x",
        "/a?b", "//",
    ] {
        assert!(normalize_prefix(bad).is_err(), "{bad}");
    }
}

/// The reference: split into segments, drop empty ones, compare case-insensitively.
fn naive_match(prefixes: &[(String, ServiceRef)], path: &str) -> Option<ServiceRef> {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.to_ascii_lowercase())
        .collect();
    prefixes
        .iter()
        .filter(|(p, _)| {
            let ps: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
            ps.len() <= segs.len() && ps.iter().zip(&segs).all(|(a, b)| *a == b.as_str())
        })
        .max_by_key(|(p, _)| p.len())
        .map(|(_, r)| *r)
}

fn segment() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "tari", "x1", "Tari", "A"]).prop_map(str::to_string)
}

proptest! {
    #[test]
    fn matching_agrees_with_the_segment_reference(
        prefixes in prop::collection::btree_set(prop::collection::vec(segment(), 0..3), 1..6),
        path in prop::collection::vec(segment(), 0..5),
        trailing in any::<bool>(),
    ) {
        let mut seen = std::collections::HashSet::new();
        let list: Vec<(String, ServiceRef)> = prefixes
            .into_iter()
            .map(|segs| segs.iter().map(|s| format!("/{}", s.to_ascii_lowercase())).collect::<String>())
            .filter(|p| seen.insert(p.clone()))
            .enumerate()
            .map(|(i, p)| (p, r(0, i as u32)))
            .collect();
        let t = RouteTable::new("portal.example", list.iter().map(|(p, r)| ("h.example".to_string(), p.clone(), *r)));
        let mut raw = path.iter().map(|s| format!("/{s}")).collect::<String>();
        if raw.is_empty() || trailing { raw.push('/'); }
        let want = naive_match(&list, &raw).map_or(RouteMatch::NotFound, RouteMatch::Service);
        prop_assert_eq!(t.resolve("h.example", &raw), Ok(want));
    }

    #[test]
    fn harmless_rewritings_keep_the_service(
        path in prop::collection::vec(segment(), 1..5),
        dup in any::<bool>(),
        upper in any::<bool>(),
        encode in any::<bool>(),
        param in any::<bool>(),
    ) {
        let t = table();
        let plain = path.iter().map(|s| format!("/{s}")).collect::<String>();
        let mut rewritten = String::new();
        for s in &path {
            rewritten.push('/');
            if dup { rewritten.push('/'); }
            let s = if upper { s.to_ascii_uppercase() } else { s.clone() };
            if encode {
                for b in s.bytes() { rewritten.push_str(&format!("%{b:02x}")); }
            } else {
                rewritten.push_str(&s);
            }
            if param { rewritten.push_str(";p=1"); }
        }
        prop_assert_eq!(t.resolve("a.example", &plain), t.resolve("a.example", &rewritten));
    }

    #[test]
    fn arbitrary_targets_never_panic(host in ".{0,40}", path in ".{0,80}") {
        let _ = table().resolve(&host, &path);
    }

    #[test]
    fn fast_and_slow_paths_agree(path in "/[a-zA-Z0-9._~/-]{0,40}") {
        if is_canonical(path.as_bytes()) {
            let slow = normalize_path(&path).expect("canonical paths normalise");
            let t = table();
            let fast = t.resolve("a.example", &path);
            let via_slow = t.resolve("a.example", std::str::from_utf8(&slow).expect("utf8"));
            prop_assert_eq!(fast, via_slow);
        }
    }
}
