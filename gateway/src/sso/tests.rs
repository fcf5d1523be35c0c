use policies::{Level, Snapshot};

use super::login::shuffled;
use super::return_to::login_redirect;
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

mod public_origins {
    use super::*;
    use proptest::prelude::*;

    /// The example's runtime with this `public_url` and `public_ports`.
    fn runtime(public_url: &str, ports: &[u16]) -> Runtime {
        let mut s = example();
        let url = url::Url::parse(public_url).expect("url");
        s.config.server.public_url = policies::PublicUrl {
            host: url.host_str().expect("host").to_string(),
            https: url.scheme() == "https",
            url,
        };
        s.config.server.public_ports = ports.to_vec();
        Runtime::build(s, 1).expect("runtime")
    }

    fn request(line_target: &str, host: &str, forwarded: &[(&str, String)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", line_target.as_bytes(), None).expect("request");
        req.insert_header("host", host).expect("host");
        for (n, v) in forwarded {
            req.insert_header(n.to_string(), v.as_str())
                .expect("header");
        }
        req
    }

    const PUBLIC_URLS: &[(&str, &[u16])] = &[
        ("http://127.0.0.1:8080", &[]),
        ("http://portal.localhost", &[]),
        ("https://accesso.example", &[]),
        ("https://accesso.example:8443", &[]),
        ("https://accesso.example", &[8443]),
        ("https://accesso.example:8443", &[9443, 443]),
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every redirect to the login that a protected service answers is accepted by
        /// `/.sso/login`, and sends the citizen back to the origin they used; when that origin
        /// cannot be returned to, there is no redirect at all.
        #[test]
        fn every_login_redirect_is_accepted_where_it_points(
            which in 0..PUBLIC_URLS.len(),
            host_port in prop_oneof![Just(None), Just(Some(80u16)), Just(Some(443u16)), Just(Some(8080u16)), Just(Some(8443u16)), Just(Some(9443u16)), (1u16..).prop_map(Some)],
            absolute in any::<bool>(),
            upper in any::<bool>(),
            trusted in any::<bool>(),
            fwd_host in prop_oneof![Just(None), Just(Some(None)), Just(Some(Some(443u16))), Just(Some(Some(8443u16))), (1u16..).prop_map(|p| Some(Some(p)))],
            fwd_port in prop_oneof![Just(None), Just(Some(443u16)), Just(Some(8443u16)), (1u16..).prop_map(Some)],
        ) {
            let (public_url, ports) = PUBLIC_URLS[which];
            thread_local! {
                static RUNTIMES: std::cell::RefCell<Vec<Option<Runtime>>> =
                    std::cell::RefCell::new((0..PUBLIC_URLS.len()).map(|_| None).collect());
            }
            let name = if upper { "CAPANNORI.localhost" } else { "capannori.localhost" };
            let with_port = |p: Option<u16>| p.map_or(name.to_string(), |p| format!("{name}:{p}"));
            let host = with_port(host_port);
            let mut forwarded = Vec::new();
            if let Some(fh) = fwd_host {
                forwarded.push(("x-forwarded-host", with_port(fh)));
            }
            if let Some(fp) = fwd_port {
                forwarded.push(("x-forwarded-port", fp.to_string()));
            }
            let target = if absolute {
                format!("http://{host}/tari/avviso?anno=2026")
            } else {
                "/tari/avviso?anno=2026".to_string()
            };
            let req = request(&target, &host, &forwarded);
            RUNTIMES.with(|cache| {
                let mut cache = cache.borrow_mut();
                let rt = cache[which].get_or_insert_with(|| runtime(public_url, ports));
                let public = &rt.snapshot.config.server.public_url;
                let default = if public.https { 443 } else { 80 };
                // Where the browser is, worked out independently.
                let effective_port = match (trusted, fwd_host) {
                    (true, Some(fh)) => fh.or(fwd_port),
                    _ => host_port.or(if trusted { fwd_port } else { None }),
                };
                let allowed = {
                    let p = effective_port.unwrap_or(default);
                    p == default
                        || Some(p) == public.url.port_or_known_default()
                        || ports.contains(&p)
                };
                let reply = login_redirect(rt, &req, Level::SpidL2, trusted);
                if !allowed {
                    prop_assert_eq!(reply.status, 400);
                    return Ok(());
                }
                prop_assert_eq!(reply.status, 302);
                let location = reply
                    .headers
                    .iter()
                    .find(|(n, _)| n == http::header::LOCATION)
                    .map(|(_, v)| v.to_str().expect("ascii").to_string())
                    .expect("location");
                let login = format!("{}/.sso/login?", public.url.origin().ascii_serialization());
                prop_assert!(location.starts_with(&login), "{}", location);
                let query = url::Url::parse(&location).expect("url");
                let return_to = query
                    .query_pairs()
                    .find(|(k, _)| k == "return_to")
                    .map(|(_, v)| v.into_owned())
                    .expect("return_to");
                prop_assert!(
                    return_target(&rt.snapshot, &return_to).is_some(),
                    "{} refuses {}", login, return_to
                );
                let expected_origin = match effective_port {
                    Some(p) if p != default => format!("{}://capannori.localhost:{p}", public.url.scheme()),
                    _ => format!("{}://capannori.localhost", public.url.scheme()),
                };
                prop_assert_eq!(return_to, format!("{expected_origin}/tari/avviso?anno=2026"));
                Ok(())
            })?;
        }
    }
}
