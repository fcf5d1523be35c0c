use std::path::{Path, PathBuf};

use super::*;
use crate::identity::{Access, Level};
use crate::route::RouteMatch;

const MAIN: &str = r#"
[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:9090"
public_url = "http://portal.localhost"

[sp]
entity_id = "http://portal.localhost/.sso/metadata"
key = "sp.key"
cert = "sp.crt"
organization = { name = "Provincia di Prova", display_name = "Prova", url = "https://prova.example" }
contact = { ipa_code = "p_pr", email = "spid@prova.example", municipality = "046007" }
audit_key = "audit.key"

[[sp.attribute_set]]
index = 0
name = "Identità di base"
attributes = ["fiscalNumber", "name", "familyName"]
"#;

const GOOD: &str = r#"
[comune]
name = "Comune di Capannori"
ipa_code = "c_b648"
istat_code = "046007"

[[service]]
id = "tari"
name = "Pagamento TARI"
description = "Paga la TARI"
category = "tributi-finanze-e-contravvenzioni"
route = { host = "servizi.capannori.example", path_prefix = "/tari/" }
upstream = "http://127.0.0.1:9001"
level = "SpidL2"
attributes = ["fiscalNumber", "name"]
headers = { "X-CF" = "fiscalNumber" }
"#;

/// A configuration directory with the main file and the given policy files.
fn setup(main: &str, policies: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("sp.key"), "key").expect("write");
    std::fs::write(dir.path().join("sp.crt"), "crt").expect("write");
    std::fs::write(dir.path().join("audit.key"), [7u8; 32]).expect("write");
    std::fs::create_dir(dir.path().join("policies")).expect("mkdir");
    for (name, text) in policies {
        std::fs::write(dir.path().join("policies").join(name), text).expect("write");
    }
    let main_path = dir.path().join("varco.toml");
    std::fs::write(&main_path, main).expect("write");
    (dir, main_path)
}

/// `file-name:line:col: message` for every diagnostic, file names without directories.
fn problems(main: &Path) -> Vec<String> {
    match load(main) {
        Ok(_) => Vec::new(),
        Err(Error::Invalid(d)) => d
            .iter()
            .map(|d| {
                let name = d.path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
                format!("{name}:{}:{}: {}", d.line, d.col, d.message)
            })
            .collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn assert_problems(main: &Path, expected: &[&str]) {
    let got = problems(main);
    assert_eq!(got.len(), expected.len(), "got:\n{}", got.join("\n"));
    for (g, e) in got.iter().zip(expected) {
        assert!(
            g.starts_with(e),
            "expected a line starting with\n  {e}\ngot\n  {g}\nall:\n{}",
            got.join("\n")
        );
    }
}

#[test]
fn the_example_configuration_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/varco.toml");
    let snap = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(snap.comuni.len(), 3);
    assert_eq!(snap.services().count(), 10);
    assert_eq!(snap.files.len(), 4);
    let m = snap
        .routes
        .resolve("capannori.localhost:8080", "/tari/avviso")
        .expect("valid");
    let RouteMatch::Service(r) = m else {
        panic!("{m:?}")
    };
    let (c, s) = snap.service(r).expect("exists");
    assert_eq!((c.ipa_code.as_str(), s.id.as_str()), ("c_b648", "tari"));
    assert_eq!(s.access, Access::Login(Level::SpidL2));
}

#[test]
fn a_good_policy_compiles() {
    let (_d, main) = setup(MAIN, &[("capannori.toml", GOOD)]);
    let snap = load(&main).unwrap_or_else(|e| panic!("{e}"));
    let (_, s) = snap
        .services()
        .next()
        .map(|(_, c, s)| (c, s))
        .expect("one service");
    assert_eq!(
        s.headers,
        vec![("X-CF".to_string(), crate::Attribute::FiscalNumber)]
    );
    assert_eq!(s.upstream.authority(), "127.0.0.1:9001");
    assert_eq!(s.route.match_prefix, "/tari");
    assert_eq!(
        snap.routes.resolve("portal.localhost", "/"),
        Ok(RouteMatch::Portal)
    );
    assert_eq!(
        snap.routes
            .resolve("servizi.capannori.example", "/.sso/login"),
        Ok(RouteMatch::Sso)
    );
    assert_eq!(
        snap.routes.resolve("other.example", "/.sso/login"),
        Ok(RouteMatch::NotFound)
    );
}

#[test]
fn every_problem_of_a_broken_file_is_reported_with_its_position() {
    let broken = r#"[comune]
name = "Comune di Prova"
ipa_code = "C-B648"
istat_code = "46007"
colour = "red"

[[service]]
id = "tari"
name = "TARI"
description = "Tassa rifiuti"
category = "tributi"
route = { host = "a.example", path_prefix = "/tari/" }
upstream = "ftp://files.example"
level = "SpidL4"
attributes = ["fiscalNumber", "codiceFiscale", "email"]
headres = { "X-CF" = "fiscalNumber" }

[[service]]
id = "Bad Id"
name = "Senza descrizione"
category = "ambiente"
route = { host = "a.example", path_prefix = "tari" }
upstream = "http://127.0.0.1:1/app"
level = "public"
attributes = ["name"]
"#;
    let (_d, main) = setup(MAIN, &[("prova.toml", broken)]);
    assert_problems(
        &main,
        &[
            "prova.toml:3:12: [comune]: `ipa_code` must be an IPA code",
            "prova.toml:4:14: [comune]: `istat_code` must be a 6-digit ISTAT code",
            "prova.toml:5:1: [comune]: unknown key `colour`",
            "prova.toml:11:12: [[service]]: `category` \"tributi\" is not an official category; did you mean \"tributi-finanze-e-contravvenzioni\"?",
            "prova.toml:13:12: [[service]]: `upstream` must be an http:// or https:// URL",
            "prova.toml:14:9: [[service]]: `level` must be \"public\", \"SpidL1\", \"SpidL2\" or \"SpidL3\", found \"SpidL4\" (did you mean \"SpidL3\"?)",
            "prova.toml:15:14: [[service]]: no [[sp.attribute_set]] asks for all of [fiscalNumber, email]",
            "prova.toml:15:31: [[service]]: unknown SPID attribute `codiceFiscale`",
            "prova.toml:16:1: [[service]]: unknown key `headres` (did you mean `headers`?)",
            "prova.toml:18:1: [[service]]: missing required field `description`",
            "prova.toml:19:6: [[service]]: `id` must be 1-64 lower-case letters",
            "prova.toml:22:45: service.route: `path_prefix` must start with `/`",
            "prova.toml:23:12: [[service]]: `upstream` must be an origin",
            "prova.toml:25:14: [[service]]: a public service receives no identity",
        ],
    );
}

#[test]
fn syntax_errors_point_at_the_offending_spot() {
    let (_d, main) = setup(
        MAIN,
        &[("x.toml", "[comune]\nname = \"Comune\nipa_code = 1\n")],
    );
    let got = problems(&main);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("x.toml:2:"), "{got:?}");
    assert!(got[0].contains("invalid TOML"), "{got:?}");
}

#[test]
fn wrong_types_and_duplicate_keys_are_reported() {
    let text = "[comune]\nname = 3\nipa_code = \"c_b648\"\nistat_code = \"046007\"\n";
    let (_d, main) = setup(MAIN, &[("x.toml", text)]);
    assert_problems(
        &main,
        &["x.toml:2:8: [comune]: `name` must be a string, found an integer"],
    );
    let dup = "[comune]\nname = \"a\"\nname = \"b\"\n";
    let (_d2, main2) = setup(MAIN, &[("x.toml", dup)]);
    let got = problems(&main2);
    assert!(
        got.len() == 1 && got[0].starts_with("x.toml:3:") && got[0].contains("invalid TOML"),
        "{got:?}"
    );
}

#[test]
fn duplicate_ids_routes_and_codes_across_files_are_reported() {
    let second = GOOD
        .replace("Capannori", "Altro")
        .replace("c_b648", "c_b649");
    let dup_id = format!("{GOOD}\n[[service]]\nid = \"tari\"\nname = \"n\"\ndescription = \"d\"\ncategory = \"ambiente\"\nroute = {{ host = \"x.example\" }}\nupstream = \"http://127.0.0.1:1\"\nlevel = \"public\"\n");
    let (_d, main) = setup(MAIN, &[("a.toml", &dup_id), ("b.toml", &second)]);
    assert_problems(
        &main,
        &[
            "a.toml:19:6: [[service]]: duplicate service id \"tari\" (first declared on line 8)",
            "b.toml:5:14: [comune]: ISTAT code \"046007\" is already used by",
            "b.toml:12:9: service.route: host \"servizi.capannori.example\" belongs to Comune di Capannori (service \"tari\" at ",
        ],
    );
    // Case and trailing slash do not make a different route.
    let upper = GOOD
        .replace("\"/tari/\"", "\"/TARI\"")
        .replace("c_b648", "c_zzzz")
        .replace("046007", "046099");
    let (_d, main) = setup(MAIN, &[("a.toml", GOOD), ("b.toml", &upper)]);
    let got = problems(&main);
    assert!(
        got.len() == 1 && got[0].contains("belongs to Comune di Capannori"),
        "{got:?}"
    );
    // Within one comune, case and trailing slash do not make a different route either.
    let twice = format!(
        "{GOOD}\n[[service]]\nid = \"tari2\"\nname = \"n\"\ndescription = \"d\"\ncategory = \"ambiente\"\nroute = {{ host = \"servizi.capannori.example\", path_prefix = \"/TARI\" }}\nupstream = \"http://127.0.0.1:1\"\nlevel = \"public\"\n"
    );
    let (_d, main) = setup(MAIN, &[("a.toml", &twice)]);
    let got = problems(&main);
    assert!(
        got.len() == 1 && got[0].contains("already claimed by service \"tari\""),
        "{got:?}"
    );
}

#[test]
fn a_comune_cannot_claim_paths_on_another_comunes_host() {
    // Comune B routes a longer prefix on A's host: it would make A's subtree public, or take A's
    // citizens and their identity headers to B's back-end.
    let intruder = GOOD
        .replace("Capannori", "Altro")
        .replace("c_b648", "c_b649")
        .replace("046007", "046008")
        .replace("\"/tari/\"", "\"/tari/avvisi/\"")
        .replace("level = \"SpidL2\"", "level = \"public\"")
        .replace("attributes = [\"fiscalNumber\", \"name\"]\n", "")
        .replace("headers = { \"X-CF\" = \"fiscalNumber\" }\n", "");
    let (_d, main) = setup(MAIN, &[("a.toml", GOOD), ("b.toml", &intruder)]);
    assert_problems(
        &main,
        &["b.toml:12:9: service.route: host \"servizi.capannori.example\" belongs to Comune di Capannori (service \"tari\" at "],
    );
    let got = problems(&main);
    assert!(
        got[0].contains("a.toml:12:9"),
        "names both positions: {got:?}"
    );
    // A host shared on purpose is declared in the main configuration.
    let shared = MAIN.replace(
        "admin_listen = \"127.0.0.1:9090\"",
        "admin_listen = \"127.0.0.1:9090\"\nshared_hosts = [\"servizi.capannori.example\"]",
    );
    let (_d, main) = setup(&shared, &[("a.toml", GOOD), ("b.toml", &intruder)]);
    assert_eq!(problems(&main), Vec::<String>::new());
}

#[test]
fn plain_http_is_for_loopback_only() {
    for (url, ok) in [
        ("http://portal.localhost", true),
        ("http://localhost:8080", true),
        ("http://127.0.0.2:8080", true),
        ("http://[::1]:8080", true),
        ("https://accesso.example.it", true),
        ("http://accesso.example.it", false),
        ("http://10.0.0.1", false),
        ("http://localhost.evil.example", false),
    ] {
        let main = MAIN.replace("http://portal.localhost\"", &format!("{url}\""));
        let (_d, path) = setup(&main, &[("a.toml", GOOD)]);
        let got = problems(&path);
        assert_eq!(
            got.iter().any(|p| p.contains("must be https off loopback")),
            !ok,
            "{url}: {got:?}"
        );
    }
}

#[test]
fn attributes_must_be_covered_by_a_declared_set() {
    let text = GOOD.replace(
        "[\"fiscalNumber\", \"name\"]",
        "[\"fiscalNumber\", \"email\"]",
    );
    let (_d, main) = setup(MAIN, &[("a.toml", &text)]);
    assert_problems(&main, &["a.toml:15:14: [[service]]: no [[sp.attribute_set]] asks for all of [fiscalNumber, email]"]);
}

#[test]
fn headers_are_checked() {
    let text = GOOD.replace(
        "{ \"X-CF\" = \"fiscalNumber\" }",
        "{ \"X-Varco-Level\" = \"name\", \"Cookie\" = \"name\", \"X-Name\" = \"familyName\", \"X-Bad Name\" = \"name\", \"x-cf\" = \"fiscalNumber\", \"X-CF\" = \"fiscalNumber\", \"X_Y\" = \"name\" }",
    );
    let (_d, main) = setup(MAIN, &[("a.toml", &text)]);
    let got = problems(&main);
    let expect = [
        "uses the reserved `X-Varco-` prefix",
        "\"Cookie\" is reserved for HTTP itself",
        "carries `familyName`, which is not in this service's `attributes`",
        "must be 1-64 letters, digits or `-`",
        "\"X-CF\" is declared twice",
        "\"X_Y\" must be 1-64 letters",
    ];
    assert_eq!(got.len(), expect.len(), "{got:#?}");
    for e in expect {
        assert!(
            got.iter()
                .any(|g| g.contains(e) && g.starts_with("a.toml:16:")),
            "missing {e}: {got:#?}"
        );
    }
}

#[test]
fn the_main_file_is_validated_too() {
    let main = MAIN
        .replace("public_url = \"http://portal.localhost\"", "public_url = \"ftp://portal.localhost/x\"\nthreads = 0\ntrusted_proxies = [\"10.0.0.0/8\", \"nonsense\"]")
        .replace("key = \"sp.key\"", "key = \"missing.key\"")
        .replace("municipality = \"046007\"", "municipality = \"Lucca\"")
        .replace("index = 0", "index = 0\nindex_ = 1");
    let (_d, path) = setup(&main, &[("a.toml", GOOD)]);
    let got = problems(&path);
    let expect = [
        "varco.toml:5:14: `public_url` must be http or https",
        "varco.toml:6:11: `threads` must be between 1 and 256",
        "varco.toml:7:34: `trusted_proxies`: \"nonsense\" is not an IP address or CIDR range",
        "varco.toml:11:7: `key`: file",
        "varco.toml:14:77: sp.contact: `municipality` must be a 6-digit ISTAT code",
        "varco.toml:19:1: [[sp.attribute_set]]: unknown key `index_`",
    ];
    assert_eq!(got.len(), expect.len(), "{got:#?}");
    for (g, e) in got.iter().zip(expect) {
        assert!(g.starts_with(e), "expected {e}\ngot {g}\n{got:#?}");
    }
}

#[test]
fn services_cannot_hide_portal_or_sso_paths() {
    let on_portal = GOOD.replace(
        "servizi.capannori.example\", path_prefix = \"/tari/\"",
        "portal.localhost\", path_prefix = \"/\"",
    );
    let (_d, main) = setup(MAIN, &[("a.toml", &on_portal)]);
    assert!(problems(&main)
        .iter()
        .any(|p| p.contains("would hide the portal's own pages")));
    let sso = GOOD.replace("/tari/", "/.sso/x");
    let (_d, main) = setup(MAIN, &[("a.toml", &sso)]);
    assert!(problems(&main)
        .iter()
        .any(|p| p.contains("must not be under `/.sso/`")));
    let ok = GOOD.replace(
        "servizi.capannori.example\", path_prefix = \"/tari/\"",
        "portal.localhost\", path_prefix = \"/tari/\"",
    );
    let (_d, main) = setup(MAIN, &[("a.toml", &ok)]);
    assert_eq!(problems(&main), Vec::<String>::new());
}

#[test]
fn hostile_files_give_errors_not_panics() {
    let cases: &[&[u8]] = &[
        b"\xff\xfe[comune]",
        b"[comune]\nname = \"\x00\"",
        b"[[comune]]\nname = 1",
        b"comune = 1\nservice = 2",
        b"[comune]\n[[service]]\nroute = \"x\"\nattributes = [1, {}]\nheaders = []",
        b"[[service]]\nid = \"a\"\n[[service]]\nid = \"a\"",
        b"[comune]\nname = \"a\"\nipa_code = \"c_b648\"\nistat_code = \"046007\"\n[[service]]\nlevel = \"public\"\nroute = { host = \"a..b\", path_prefix = \"/a/../b\" }",
    ];
    for (i, bytes) in cases.iter().enumerate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_d, main) = setup(MAIN, &[]);
        let p = main
            .parent()
            .expect("dir")
            .join("policies")
            .join(format!("h{i}.toml"));
        std::fs::write(&p, bytes).expect("write");
        let got = problems(&main);
        assert!(!got.is_empty(), "case {i} was accepted");
        drop(dir);
    }
    // A deeply nested document must not overflow the stack.
    let deep = format!("x = {}1{}", "[".repeat(5000), "]".repeat(5000));
    let (_d, main) = setup(MAIN, &[("deep.toml", &deep)]);
    assert!(!problems(&main).is_empty());
}

#[test]
fn missing_files_and_directories_are_reported() {
    let got = problems(Path::new("/nonexistent/varco.toml"));
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("varco.toml:1:1: cannot read file"),
        "{got:?}"
    );
    let (d, main) = setup(MAIN, &[]);
    std::fs::remove_dir(d.path().join("policies")).expect("rmdir");
    let got = problems(&main);
    assert!(
        got.len() == 1 && got[0].contains("policies directory"),
        "{got:?}"
    );
}

#[test]
fn services_are_checked_even_without_the_comune_table() {
    let text = GOOD.replace("[comune]\nname = \"Comune di Capannori\"\nipa_code = \"c_b648\"\nistat_code = \"046007\"\n", "").replace("level = \"SpidL2\"", "level = \"alto\"");
    let (_d, main) = setup(MAIN, &[("a.toml", &text)]);
    let got = problems(&main);
    assert!(
        got.iter()
            .any(|p| p.contains("missing required field `comune`")),
        "{got:?}"
    );
    assert!(got.iter().any(|p| p.contains("`level` must be")), "{got:?}");
}

#[test]
fn catalog_fields_are_read_and_checked() {
    let good = GOOD.replace(
        "istat_code = \"046007\"\n",
        "istat_code = \"046007\"\nprovince = \"Lucca\"\n",
    ) + "keywords = [\"rifiuti\", \"tassa\"]\nhelp_url = \"mailto:tributi@capannori.example\"\nunlisted = true\n";
    let (_d, main) = setup(MAIN, &[("capannori.toml", &good)]);
    let snap = load(&main).unwrap_or_else(|e| panic!("{e}"));
    let c = &snap.comuni[0];
    assert_eq!(c.province.as_deref(), Some("Lucca"));
    let s = &c.services[0];
    assert_eq!(s.keywords, ["rifiuti", "tassa"]);
    assert_eq!(
        s.help_url.as_deref(),
        Some("mailto:tributi@capannori.example")
    );
    assert!(s.unlisted);

    let bad = GOOD.replace(
        "istat_code = \"046007\"\n",
        "istat_code = \"046007\"\nprovince = \"\"\n",
    )
        + "keywords = [\"ok\", \"\"]\nhelp_url = \"javascript:alert(1)\"\nunlisted = \"yes\"\n";
    let (_d, main) = setup(MAIN, &[("capannori.toml", &bad)]);
    assert_problems(
        &main,
        &[
            "capannori.toml:6:12: [comune]: `province` must be a name like \"Lucca\"",
            "capannori.toml:18:19: [[service]]: a keyword must be 1-64 characters",
            "capannori.toml:19:12: [[service]]: `help_url` must be an https:// page or a mailto: address, found \"javascript:alert(1)\"",
            "capannori.toml:20:12: [[service]]: `unlisted` must be true or false, found a string",
        ],
    );
}

#[test]
fn request_semantics_cannot_carry_identity() {
    // A mapping would make varco strip the client's own value on that back-end's routes (and so
    // break CSRF checks, content negotiation or ranges) and overwrite it.
    for name in [
        "Origin",
        "Referer",
        "Accept",
        "Range",
        "Sec-Fetch-Site",
        "Sec-Fetch-Mode",
        "Sec-CH-UA",
        "X-Original-URL",
        "X-Rewrite-URL",
    ] {
        let text = GOOD.replace(
            "{ \"X-CF\" = \"fiscalNumber\" }",
            &format!("{{ \"{name}\" = \"fiscalNumber\" }}"),
        );
        let (_d, main) = setup(MAIN, &[("a.toml", &text)]);
        let got = problems(&main);
        assert!(
            got.len() == 1 && got[0].contains("is reserved for HTTP itself"),
            "{name}: {got:?}"
        );
    }
}

#[test]
fn portal_links_and_public_ports_are_checked() {
    let main = MAIN.replace(
        "public_url = \"http://portal.localhost\"",
        "public_url = \"http://portal.localhost\"\npublic_ports = [8443, 0, \"x\", 70000]",
    ) + "\n[portal]\naccessibility_url = \"javascript:alert(1)\"\nprivacy_url = \"https://prova.example/privacy\"\nextra = 1\n";
    let (_d, path) = setup(&main, &[("a.toml", GOOD)]);
    let got = problems(&path);
    let expect = [
        "varco.toml:6:23: `public_ports`: 0 is not a TCP port",
        "varco.toml:6:26: [server]: `public_ports` must contain only integers",
        "varco.toml:6:31: `public_ports`: 70000 is not a TCP port",
        "varco.toml:22:21: [portal]: `accessibility_url` must be an http(s) URL",
        "varco.toml:24:1: [portal]: unknown key `extra`",
    ];
    assert_eq!(got.len(), expect.len(), "{got:#?}");
    for (g, e) in got.iter().zip(expect) {
        assert!(g.starts_with(e), "expected {e}\ngot {g}\n{got:#?}");
    }
    // Valid ones are read.
    let good = MAIN.replace(
        "public_url = \"http://portal.localhost\"",
        "public_url = \"http://portal.localhost\"\npublic_ports = [8443]",
    ) + "\n[portal]\nprivacy_url = \"https://prova.example/privacy\"\n";
    let (_d, path) = setup(&good, &[("a.toml", GOOD)]);
    let snapshot = load(&path).expect("loads");
    assert_eq!(snapshot.config.server.public_ports, [8443]);
    assert_eq!(
        snapshot.config.portal.privacy_url.as_deref(),
        Some("https://prova.example/privacy")
    );
    assert!(snapshot.config.portal.accessibility_url.is_none());
}

#[test]
fn oidc_providers_are_read_with_their_defaults() {
    let main = format!(
        "{MAIN}\n[[oidc]]\nissuer = \"http://127.0.0.1:9800\"\nclient_id = \"varco\"\nkey = \"sp.key\"\ndisplay_name = \"Regione\"\nkind = \"spid\"\n\n[[oidc]]\nissuer = \"https://login.example.it/realms/x\"\nclient_id = \"varco\"\nclient_auth = \"client_secret_basic\"\nclient_secret_file = \"audit.key\"\ndisplay_name = \"Keycloak\"\nscopes = [\"openid\", \"profile\"]\nclaims = {{ fiscalNumber = \"fiscal_number\", name = \"given_name\" }}\nacr = {{ SpidL2 = \"urn:l2\", SpidL1 = \"urn:l1\" }}\n"
    );
    let (_d, path) = setup(&main, &[("a.toml", GOOD)]);
    let snap = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let [spid, kc] = &snap.config.oidc[..] else {
        panic!("{:?}", snap.config.oidc)
    };
    assert_eq!(spid.kind, crate::IdpKind::Spid);
    assert_eq!(spid.client_auth, crate::ClientAuth::PrivateKeyJwt);
    assert_eq!(spid.scopes, ["openid"]);
    assert_eq!(
        spid.claim_for(crate::Attribute::FiscalNumber),
        Some("https://attributes.eid.gov.it/fiscal_number")
    );
    assert_eq!(
        spid.acr_for(Level::SpidL2),
        Some("https://www.spid.gov.it/SpidL2")
    );
    assert!(matches!(
        kc.client_auth,
        crate::ClientAuth::ClientSecretBasic { .. }
    ));
    assert_eq!(kc.kind, crate::IdpKind::Other);
    assert_eq!(kc.claim_for(crate::Attribute::Email), None);
    assert_eq!(kc.level_of("urn:l2"), Some(Level::SpidL2));
    // Weakest first, whatever the file's order.
    assert_eq!(kc.acr[0].0, Level::SpidL1);
}

#[test]
fn oidc_mistakes_are_reported_where_they_are() {
    let main = format!(
        "{MAIN}\n[[oidc]]\nissuer = \"http://login.example.it\"\nclient_id = \"varco\"\ndisplay_name = \"A\"\nkind = \"saml\"\nscopes = [\"profile\"]\nclaims = {{ codiceFiscale = \"cf\" }}\nacr = {{ SpidL4 = \"x\" }}\n\n[[oidc]]\nissuer = \"https://x.example/?q=1\"\nclient_id = \"varco\"\nclient_auth = \"client_secret_basic\"\ndisplay_name = \"B\"\n\n[[oidc]]\nissuer = \"https://a.example\"\nclient_id = \"v\"\nkey = \"sp.key\"\ndisplay_name = \"C\"\nacr = {{ SpidL1 = \"same\", SpidL2 = \"same\" }}\nclient_secrett = \"x\"\n"
    );
    let (_d, path) = setup(&main, &[("a.toml", GOOD)]);
    assert_problems(
        &path,
        &[
            "varco.toml:20:1: [[oidc]]: `client_auth = \"private_key_jwt\"` needs `key`",
            "varco.toml:21:10: [[oidc]]: `issuer` must be https off loopback",
            "varco.toml:24:8: [[oidc]]: `kind` must be \"spid\", \"cie\" or \"other\", found \"saml\"",
            "varco.toml:25:10: [[oidc]]: `scopes` must include \"openid\"",
            "varco.toml:26:12: [[oidc]]: `claims`: `codiceFiscale` is not a SPID attribute",
            "varco.toml:27:9: [[oidc]]: `acr`: `SpidL4` is not a level",
            "varco.toml:30:10: [[oidc]]: `issuer` must be a URL with a host and no query",
            "varco.toml:32:15: [[oidc]]: `client_auth = \"client_secret_basic\"` needs `client_secret_file`",
            "varco.toml:40:35: [[oidc]]: `acr`: \"same\" stands for two levels",
            "varco.toml:41:1: [[oidc]]: unknown key `client_secrett` (did you mean `client_secret_file`?)",
        ],
    );
}

#[test]
fn the_federation_is_read_and_checked() {
    let good = format!(
        "{MAIN}\n[oidc_federation]\ntrust_anchors = [{{ entity_id = \"https://ta.example\", jwks = \"audit.key\" }}]\nauthority_hints = [\"https://ta.example\"]\nfederation_keys = [\"sp.key\"]\n\n[[oidc]]\nissuer = \"https://op.example\"\nfederation = true\nkey = \"sp.key\"\ndisplay_name = \"OP\"\n"
    );
    let (_d, path) = setup(&good, &[("a.toml", GOOD)]);
    let snap = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let f = snap.config.oidc_federation.as_ref().expect("federation");
    assert_eq!(f.trust_anchors[0].entity_id, "https://ta.example");
    let op = &snap.config.oidc[0];
    assert!(op.federation);
    assert_eq!(op.client_id, "http://portal.localhost", "the entity ID");

    let bad = format!(
        "{MAIN}\n[oidc_federation]\ntrust_anchors = []\nauthority_hints = [\"ftp://ta\"]\nfederation_keys = [\"missing.pem\"]\n\n[[oidc]]\nissuer = \"https://op.example\"\nfederation = true\nclient_id = \"someone-else\"\nkey = \"sp.key\"\ndisplay_name = \"OP\"\n"
    );
    let (_d, path) = setup(&bad, &[("a.toml", GOOD)]);
    assert_problems(
        &path,
        &[
            "varco.toml:20:1: [oidc_federation]: `trust_anchors` must name at least one",
            "varco.toml:22:20: [oidc_federation]: `authority_hints`: must be an https URL",
            "varco.toml:23:20: `federation_keys`: file",
            "varco.toml:28:13: [[oidc]]: in the federation `client_id` is varco's entity ID",
        ],
    );
    let orphan = format!(
        "{MAIN}\n[[oidc]]\nissuer = \"https://op.example\"\nfederation = true\nkey = \"sp.key\"\ndisplay_name = \"OP\"\n"
    );
    let (_d, path) = setup(&orphan, &[("a.toml", GOOD)]);
    assert_problems(
        &path,
        &["varco.toml:22:14: [[oidc]]: `federation = true` needs an `[oidc_federation]` table"],
    );
}

fn in_sp(line: &str) -> String {
    MAIN.replace(
        "audit_key = \"audit.key\"\n",
        &format!("audit_key = \"audit.key\"\n{line}\n"),
    )
}

#[test]
fn aggregator_mode_gives_each_comune_its_own_entity() {
    let main = format!(
        "{}\n[sp.aggregator]\nipa_code = \"r_toscan\"\nvat_number = \"IT01386030488\"\ncompany = \"Regione Toscana\"\nemail = \"spid@regione.toscana.example\"\nphone = \"+390554381111\"\n",
        in_sp("mode = \"aggregator\"")
    );
    let (_d, path) = setup(&main, &[("capannori.toml", GOOD)]);
    let snap = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let config = &snap.config;
    let a = config.sp.mode.aggregator().expect("aggregator mode");
    assert_eq!(a.ipa_code.as_deref(), Some("r_toscan"));
    assert_eq!(a.phone.as_deref(), Some("+390554381111"));
    let comune = &snap.comuni[0];
    let audience = config.audience_for(comune);
    assert_eq!(audience, crate::Audience::Comune(comune.ipa_code.clone()));
    assert_eq!(
        config.entity_id(&audience),
        "http://portal.localhost/pub-ag-full/c_b648"
    );
    assert_eq!(
        config.entity_id(&crate::Audience::Sp),
        "http://portal.localhost/.sso/metadata"
    );
    assert_eq!(audience.path_suffix(), "/c_b648");

    // The default is one SP for everyone.
    let (_d, path) = setup(MAIN, &[("capannori.toml", GOOD)]);
    let snap = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(snap.config.sp.mode, crate::SpMode::Single);
    assert_eq!(
        snap.config.audience_for(&snap.comuni[0]),
        crate::Audience::Sp
    );
}

#[test]
fn aggregator_mistakes_are_reported_where_they_are() {
    let (_d, path) = setup(&in_sp("mode = \"aggregatore\""), &[("a.toml", GOOD)]);
    assert_problems(
        &path,
        &["varco.toml:14:8: [sp]: `mode` must be \"single\" or \"aggregator\", found \"aggregatore\" (did you mean \"aggregator\"?)"],
    );
    let (_d, path) = setup(&in_sp("mode = \"aggregator\""), &[("a.toml", GOOD)]);
    assert_problems(
        &path,
        &["varco.toml:14:8: [sp]: mode = \"aggregator\" needs an [sp.aggregator] table"],
    );
    let main = format!("{MAIN}\n[sp.aggregator]\nipa_code = \"r_toscan\"\ncompany = \"R\"\nemail = \"a@b.example\"\n");
    let (_d, path) = setup(&main, &[("a.toml", GOOD)]);
    assert_problems(
        &path,
        &["varco.toml:20:1: [sp.aggregator] is read only with mode = \"aggregator\" in [sp]"],
    );
    let main = format!(
        "{}\n[sp.aggregator]\nvat_number = \"01386030488\"\nfiscal_code = \"x\"\ncompany = \"R\"\nemail = \"spid at regione\"\nphone = \"+39 055 4381111\"\ntelefono = \"1\"\n\n[[oidc]]\nissuer = \"https://login.regione.example\"\nclient_id = \"varco\"\nclient_auth = \"client_secret_basic\"\nclient_secret_file = \"audit.key\"\ndisplay_name = \"Regione\"\n",
        in_sp("mode = \"aggregator\"")
    );
    let (_d, path) = setup(&main, &[("a.toml", GOOD)]);
    assert_problems(
        &path,
        &[
            "varco.toml:22:14: [sp.aggregator]: `vat_number` must start with its ISO 3166 country code",
            "varco.toml:23:15: [sp.aggregator]: `fiscal_code` must be 11 digits",
            "varco.toml:25:9: [sp.aggregator]: `email` is not an e-mail address",
            "varco.toml:26:9: [sp.aggregator]: `phone` must be in international form without spaces",
            "varco.toml:27:1: [sp.aggregator]: unknown key `telefono`",
            "varco.toml:29:1: [[oidc]]: OpenID Connect providers are not supported with sp.mode = \"aggregator\"",
        ],
    );
    let main = format!(
        "{}\n[sp.aggregator]\ncompany = \"R\"\nemail = \"a@b.example\"\n",
        in_sp("mode = \"aggregator\"")
    );
    let (_d, path) = setup(&main, &[("a.toml", GOOD)]);
    assert_problems(
        &path,
        &["varco.toml:21:1: [sp.aggregator]: give the aggregator's `ipa_code`, `vat_number` or `fiscal_code`"],
    );
}

#[test]
fn a_hostile_main_file_gives_errors_not_panics() {
    let (_d, main) = setup(MAIN, &[]);
    let good = std::fs::read_to_string(&main).expect("read");
    assert!(
        check_config(&main, &good).is_ok(),
        "the main file alone checks"
    );
    let cases = [
        "[sp]\nmode = 1".to_string(),
        "[sp]\nmode = [\"aggregator\"]\naggregator = 3".to_string(),
        in_sp("mode = \"aggregator\"\naggregator = \"r_toscan\""),
        format!("{}\n[sp.aggregator]\nipa_code = \"\"\nvat_number = \"IT\"\nfiscal_code = \"\\u0000\"\ncompany = 7\nemail = \"@\"\nphone = \"+\"\n", in_sp("mode = \"aggregator\"")),
        format!("{}\n[sp.aggregator]\nvat_number = \"€€€€\"\ncompany = \"R\"\nemail = \"a@b.example\"\n", in_sp("mode = \"aggregator\"")),
        format!("{}\n[[sp.aggregator]]\nipa_code = \"r_toscan\"\n", in_sp("mode = \"aggregator\"")),
        format!("x = {}1{}", "[".repeat(5000), "]".repeat(5000)),
    ];
    for (i, text) in cases.iter().enumerate() {
        assert!(check_config(&main, text).is_err(), "case {i} was accepted");
    }
}

#[test]
fn idp_sources_are_read_with_their_defaults_and_checked() {
    let main = format!(
        "{MAIN}\n[[idp_source]]\nurl = \"https://registry.spid.gov.it/entities-idp\"\nfederation_cert = \"sp.crt\"\n\n[[idp_source]]\nurl = \"http://127.0.0.1:9999/cie.xml\"\nfederation_cert = \"sp.crt\"\nkind = \"cie\"\nrefresh = \"30m\"\ncache = \"cache/cie.xml\"\nca = \"sp.crt\"\nmax_age = \"2d\"\n"
    );
    let (d, path) = setup(&main, &[("a.toml", GOOD)]);
    let snap = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let [spid, cie] = snap.config.idp_sources.as_slice() else {
        panic!("two sources")
    };
    assert_eq!(spid.kind, crate::IdpKind::Spid);
    assert_eq!(spid.refresh, std::time::Duration::from_secs(6 * 3600));
    assert_eq!(spid.max_age, std::time::Duration::from_secs(7 * 24 * 3600));
    assert_eq!(spid.cache, d.path().join("state/idps/source-0-spid.xml"));
    assert_eq!(spid.ca, None);
    assert_eq!(cie.kind, crate::IdpKind::Cie);
    assert_eq!(cie.refresh, std::time::Duration::from_secs(1800));
    assert_eq!(cie.cache, d.path().join("cache/cie.xml"));
    assert_eq!(cie.ca, Some(d.path().join("sp.crt")));

    let main = format!(
        "{MAIN}\n[[idp_source]]\nurl = \"http://registry.example/x.xml\"\nfederation_cert = \"nope.pem\"\nkind = \"oidc\"\nrefresh = \"often\"\n\n[[idp_source]]\nurl = \"https://a.example/x\"\n\n[[idp_source]]\nurl = \"https://a.example/x\"\nfederation_cert = \"sp.crt\"\ncache = \"c.xml\"\n\n[[idp_source]]\nurl = \"https://a.example/x\"\nfederation_cert = \"sp.crt\"\n"
    );
    let (_d, path) = setup(&main, &[("a.toml", GOOD)]);
    assert_problems(
        &path,
        &[
            "varco.toml:21:7: [[idp_source]]: `url` must be https (plain http only on loopback)",
            "varco.toml:22:19: `federation_cert`: file",
            "varco.toml:23:8: [[idp_source]]: `kind` must be \"spid\" or \"cie\", found \"oidc\"",
            "varco.toml:24:11: `refresh` must be a duration",
            "varco.toml:26:1: [[idp_source]]: missing required field `federation_cert`",
            "varco.toml:34:1: [[idp_source]]: `url` \"https://a.example/x\" is configured twice",
        ],
    );
}

#[test]
fn tls_settings_are_read_and_checked() {
    let main = MAIN.replace(
        "public_url = \"http://portal.localhost\"",
        "public_url = \"https://portal.localhost\"",
    );
    let tls = "\n[server.tls]\nlisten = \"127.0.0.1:8443\"\ndefault = { cert = \"sp.crt\", key = \"sp.key\" }\ncerts = [{ hosts = [\"Servizi.Capannori.example\", \"*.lucca.example\"], cert = \"sp.crt\", key = \"sp.key\" }]\nhttp_redirect = \"127.0.0.1:8081\"\n";
    let (d, path) = setup(&format!("{main}{tls}"), &[("a.toml", GOOD)]);
    let snap = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let t = snap.config.server.tls.as_ref().expect("tls");
    assert_eq!(t.hsts.as_deref(), Some("max-age=31536000"));
    assert_eq!(
        t.certs[0].hosts,
        ["servizi.capannori.example", "*.lucca.example"]
    );
    assert_eq!(t.default.cert, d.path().join("sp.crt"));
    assert_eq!(t.files().count(), 4);

    let bad = "\n[server.tls]\nlisten = \"127.0.0.1:8080\"\ndefault = { cert = \"nope.pem\", key = \"sp.key\" }\ncerts = [{ hosts = [\"a..b\"], cert = \"sp.crt\", key = \"sp.key\" }, { cert = \"sp.crt\", key = \"sp.key\" }]\nhsts = \"forever\"\nacme_challenge_dir = \"nowhere\"\n";
    let (_d, path) = setup(&format!("{MAIN}{bad}"), &[("a.toml", GOOD)]);
    let got = problems(&path).join("\n");
    for needle in [
        "`cert`: file",
        "\"a..b\" is not a host name",
        "`hosts` must list the host names",
        "`hsts` must be a Strict-Transport-Security value",
        "`acme_challenge_dir`",
        "must differ from each other",
        "`public_url` must be https when varco terminates TLS",
    ] {
        assert!(got.contains(needle), "missing {needle}:\n{got}");
    }
}

#[test]
fn upstream_tls_options_are_checked() {
    let svc = GOOD.replace(
        "upstream = \"http://127.0.0.1:9001\"",
        "upstream = \"http://127.0.0.1:9001\"\nupstream_ca = \"../sp.crt\"\nupstream_sni = \"bad name\"\nupstream_client_cert = \"../sp.crt\"\nupstream_host = \"ok.internal:8443\"",
    );
    let (_d, path) = setup(MAIN, &[("a.toml", &svc)]);
    let got = problems(&path).join("\n");
    for needle in [
        "`upstream_sni` must be a host name",
        "`upstream_client_cert` and `upstream_client_key` go together",
        "need an https:// `upstream`",
    ] {
        assert!(got.contains(needle), "missing {needle}:\n{got}");
    }
    let svc = GOOD.replace(
        "upstream = \"http://127.0.0.1:9001\"",
        "upstream = \"https://10.0.0.5\"\nupstream_ca = \"../sp.crt\"\nupstream_sni = \"Tributi.Internal\"\nupstream_client_cert = \"../sp.crt\"\nupstream_client_key = \"../sp.key\"\nupstream_host = \"tributi.internal\"",
    );
    let (d, path) = setup(MAIN, &[("a.toml", &svc)]);
    let snap = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let (_, s) = snap
        .services()
        .next()
        .map(|(_, c, s)| (c, s))
        .expect("service");
    assert_eq!(s.upstream_tls.sni.as_deref(), Some("tributi.internal"));
    assert_eq!(s.upstream_tls.ca, Some(d.path().join("policies/../sp.crt")));
    assert_eq!(s.upstream_host.as_deref(), Some("tributi.internal"));
}

#[test]
fn the_cns_login_is_read_and_checked() {
    let main = MAIN.replace(
        "public_url = \"http://portal.localhost\"",
        "public_url = \"https://portal.localhost\"",
    );
    let tls = "\n[server.tls]\nlisten = \"127.0.0.1:8443\"\ndefault = { cert = \"sp.crt\", key = \"sp.key\" }\n";
    let cns = "\n[cns]\nhost = \"CNS.Portal.localhost\"\nca = [\"sp.crt\"]\ncrl = [\"sp.crt\"]\nlevel = \"SpidL3\"\n";
    let (d, path) = setup(&format!("{main}{tls}{cns}"), &[("a.toml", GOOD)]);
    let snap = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let c = snap.config.cns.as_ref().expect("cns");
    assert_eq!(c.host, "cns.portal.localhost");
    assert_eq!(c.level, crate::Level::SpidL3);
    assert_eq!(c.ca, [d.path().join("sp.crt")]);
    assert_eq!(c.display_name, "Carta Nazionale dei Servizi (CNS)");
    assert_eq!(c.files().count(), 2);

    // Without varco's own TLS, on the portal's host, with nothing to trust, at no known level.
    let bad = "\n[cns]\nhost = \"portal.localhost\"\nca = []\ncrl = [\"nope.crl\"]\nlevel = \"high\"\ndisplay_name = \" \"\n";
    let (_d, path) = setup(&format!("{MAIN}{bad}"), &[("a.toml", GOOD)]);
    let got = problems(&path).join("\n");
    for needle in [
        "[cns]: `ca` must list the files of the CAs",
        "`crl`: file",
        "[cns]: `level` must be \"SpidL1\", \"SpidL2\" or \"SpidL3\", found \"high\"",
        "[cns]: `display_name` must not be empty",
    ] {
        assert!(got.contains(needle), "missing {needle}:\n{got}");
    }
    let missing = "\n[cns]\nhost = \"portal.localhost\"\nca = [\"sp.crt\"]\ncrl = [\"sp.crt\"]\nlevel = \"SpidL2\"\n";
    let (_d, path) = setup(&format!("{MAIN}{missing}"), &[("a.toml", GOOD)]);
    let got = problems(&path).join("\n");
    for needle in [
        "[cns]: a CNS login needs [server.tls]",
        "[cns]: `host` \"portal.localhost\" must be a host of its own",
    ] {
        assert!(got.contains(needle), "missing {needle}:\n{got}");
    }
    let (_d, path) = setup(
        &format!("{MAIN}\n[cns]\nlevel = \"SpidL2\"\n"),
        &[("a.toml", GOOD)],
    );
    let got = problems(&path).join("\n");
    for needle in ["`host`", "`ca` is required", "`crl` is required"] {
        assert!(got.contains(needle), "missing {needle}:\n{got}");
    }

    // A service on the card's host would have every browser asked for a certificate.
    let on_cns = GOOD.replace(
        "host = \"servizi.capannori.example\"",
        "host = \"cns.portal.localhost\"",
    );
    let (_d, path) = setup(&format!("{main}{tls}{cns}"), &[("a.toml", &on_cns)]);
    let got = problems(&path).join("\n");
    assert!(got.contains("is [cns]'s `host`"), "{got}");
}
