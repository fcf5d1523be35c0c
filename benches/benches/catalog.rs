//! The catalog at the scale of a region: 273 comuni × 40 services (the whole of Tuscany).
//! Rebuild time (on every policy reload) and the cost of each kind of answer.
//!
//! `cargo bench -p benches --bench catalog`

#![allow(missing_docs, clippy::unwrap_used)] // criterion's macros generate undocumented items

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

fn tuscany() -> (tempfile::TempDir, policies::Snapshot) {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = benches::write_tuscany(
        dir.path(),
        40,
        "http://127.0.0.1:9",
        "127.0.0.1:18080",
        "127.0.0.1:19090",
        "http://portale.toscana.test",
    )
    .expect("write");
    let snapshot = policies::load(&main).expect("load");
    (dir, snapshot)
}

fn catalog(c: &mut Criterion) {
    let (_dir, snapshot) = tuscany();
    let mut g = c.benchmark_group("catalog 273 × 40");
    g.sample_size(10);
    g.bench_function(
        "build the catalog (model, search text, JSON, JSON-LD)",
        |b| b.iter(|| catalog::Catalog::build(black_box(&snapshot))),
    );
    g.finish();

    let cat = catalog::Catalog::build(&snapshot);
    let query = |raw: &str| catalog::Query::parse(raw, true).0;
    let one_comune = query("comune=c_b648");
    c.bench_function("catalog: JSON of one comune (40 services)", |b| {
        b.iter(|| cat.render_json(black_box(&one_comune)))
    });
    let search = query("q=permesso+ztl&page=1&per_page=20");
    c.bench_function(
        "catalog: text search over 10 920 services, JSON page of 20",
        |b| b.iter(|| cat.render_json(black_box(&search))),
    );
    let html = query("q=ztl");
    c.bench_function("catalog: results page (HTML) for a search", |b| {
        b.iter(|| catalog::results(&catalog::Site::example(), &cat, black_box(&html), &[], None))
    });
    c.bench_function("catalog: home page (HTML, 273 comuni)", |b| {
        b.iter(|| catalog::home(&catalog::Site::example(), black_box(&cat), None))
    });
}

criterion_group!(benches, catalog);

criterion_main!(benches);
