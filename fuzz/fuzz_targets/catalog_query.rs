//! Any bytes as the query string of /catalog, /catalog.json and /catalog.jsonld, against a small
//! catalog: parsing, the canonical form, selection, pagination and every renderer must end with a
//! result (or reported problems), never a panic, a hang or an out-of-range slice.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn catalog() -> &'static catalog::Catalog {
    static C: OnceLock<catalog::Catalog> = OnceLock::new();
    C.get_or_init(|| {
        let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/varco.toml");
        let snapshot = policies::load(&config).expect("the example configuration loads");
        catalog::Catalog::build(&snapshot)
    })
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let c = catalog();
    for strict in [true, false] {
        let (q, _) = catalog::Query::parse(&raw, strict);
        // The canonical form is a fixed point: parsing it gives the same query.
        let canonical = q.canonical();
        let (again, problems) = catalog::Query::parse(&canonical, true);
        assert!(problems.is_empty(), "{canonical}: {problems:?}");
        assert_eq!(again.canonical(), canonical);
        let _ = c.render_json(&q);
        let _ = c.render_jsonld(&q);
        let _ = catalog::results(&catalog::Site::example(), c, &q, &[], None);
    }
});
