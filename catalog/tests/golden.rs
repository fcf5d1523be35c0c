//! Golden files: the JSON and JSON-LD catalog of the example configuration (`examples/`), and of
//! filtered queries, compared as JSON values (every member, every value, arrays in order). After an intended change, rewrite
//! them with `UPDATE_GOLDEN=1 cargo test -p catalog --test golden` and review the diff.

use std::path::{Path, PathBuf};

fn example_catalog() -> catalog::Catalog {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/varco.toml");
    let snapshot = policies::load(&config).unwrap_or_else(|e| panic!("{e}"));
    catalog::Catalog::build(&snapshot)
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn check(name: &str, body: &str) {
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
    let pretty = serde_json::to_string_pretty(&value).expect("pretty") + "\n";
    let path = golden(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &pretty).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (create it with UPDATE_GOLDEN=1)", path.display()));
    let expected: serde_json::Value = serde_json::from_str(&expected)
        .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    // Compared as JSON values: the order of an object's members is no part of the contract (and
    // serde_json keeps or sorts it depending on a feature another crate of the build may turn on).
    assert!(
        expected == value,
        "{name} differs from {}; if intended, run with UPDATE_GOLDEN=1 and review the diff.\n{pretty}",
        path.display()
    );
}

#[test]
fn the_example_catalog_as_json() {
    let c = example_catalog();
    check("examples.json", c.json().text());
    let (q, e) = catalog::Query::parse("comune=c_e715&level=SpidL2", true);
    assert!(e.is_empty());
    check("examples-lucca-spidl2.json", &c.render_json(&q));
    let (q, _) = catalog::Query::parse("q=rifiuti", true);
    check("examples-q-rifiuti.json", &c.render_json(&q));
}

#[test]
fn the_example_catalog_as_json_ld() {
    let c = example_catalog();
    check("examples.jsonld", c.jsonld().text());
    let doc: serde_json::Value = serde_json::from_str(c.jsonld().text()).expect("JSON");
    assert_eq!(doc["@context"], "https://schema.org");
    let graph = doc["@graph"].as_array().expect("graph");
    let services = graph
        .iter()
        .filter(|n| n["@type"] == "GovernmentService")
        .count();
    let orgs: Vec<_> = graph
        .iter()
        .filter(|n| n["@type"] == "GovernmentOrganization")
        .collect();
    assert_eq!((services, orgs.len()), (9, 3));
    // Every provider reference resolves to an organisation with its ISTAT and IPA codes.
    for s in graph.iter().filter(|n| n["@type"] == "GovernmentService") {
        let org = orgs
            .iter()
            .find(|o| o["@id"] == s["provider"]["@id"])
            .expect("provider in the graph");
        let ids: Vec<&str> = org["identifier"]
            .as_array()
            .expect("identifiers")
            .iter()
            .filter_map(|i| i["propertyID"].as_str())
            .collect();
        assert_eq!(ids, ["ISTAT", "IPA"]);
    }
}

#[test]
fn unlisted_services_stay_out_of_every_output() {
    let c = example_catalog();
    assert!(c.services.iter().all(|s| s.id != "c_b648/intranet"));
    for body in [c.json().text(), c.jsonld().text()] {
        assert!(!body.contains("intranet") && !body.contains("Gestionale interno"));
    }
    let html = catalog::results(
        &catalog::Site::example(),
        &c,
        &catalog::Query::default(),
        &[],
        None,
    );
    assert!(!html.contains("Gestionale interno"));
}
