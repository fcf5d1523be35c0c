//! Micro benchmarks of the per-request policy work and of loading the whole of Tuscany.
//!
//! `cargo bench -p benches`

#![allow(missing_docs, clippy::unwrap_used)] // criterion's macros generate undocumented items

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use gateway::request::headers::{strip_inbound, strip_mapped, StripSet};
use pingora::http::RequestHeader;

fn tuscany(services: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let main = benches::write_tuscany(
        dir.path(),
        services,
        "http://127.0.0.1:9",
        "127.0.0.1:18080",
        "127.0.0.1:19090",
        "http://portale.toscana.test",
    )
    .unwrap();
    (dir, main)
}

fn routing(c: &mut Criterion) {
    let (_dir, main) = tuscany(40);
    let snap = policies::load(&main).unwrap();
    let routes = &snap.routes;
    c.bench_function("resolve canonical path (273 hosts x 40 services)", |b| {
        b.iter(|| {
            routes.resolve(
                black_box("b648.toscana.test:8080"),
                black_box("/servizio-17/pratiche/123"),
            )
        })
    });
    c.bench_function("resolve path needing normalisation", |b| {
        b.iter(|| {
            routes.resolve(
                black_box("B648.toscana.test"),
                black_box("//Servizio-17/%70ratiche;jsessionid=1/123"),
            )
        })
    });
    c.bench_function("resolve unknown host", |b| {
        b.iter(|| routes.resolve(black_box("evil.example"), black_box("/x")))
    });
}

fn headers(c: &mut Criterion) {
    let set = StripSet::new(["X-CF", "X-Codice-Fiscale", "X-Utente"]);
    let mut template = RequestHeader::build("GET", b"/servizio-17/pratiche/123", None).unwrap();
    for (n, v) in [
        ("host", "b648.toscana.test"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "it-IT,it;q=0.9,en;q=0.8"),
        ("accept-encoding", "gzip, deflate, br"),
        (
            "cookie",
            "__Host-varco=abcdefghijklmnopqrstuvwxyz0123456789",
        ),
        ("connection", "keep-alive"),
        ("sec-fetch-mode", "navigate"),
    ] {
        template.append_header(n, v).unwrap();
    }
    c.bench_function("strip inbound headers of a browser request", |b| {
        b.iter_batched(
            || template.clone(),
            |mut req| strip_inbound(&mut req, false) + strip_mapped(&mut req, &set),
            criterion::BatchSize::SmallInput,
        )
    });
}

fn load(c: &mut Criterion) {
    let (_dir, main) = tuscany(40);
    let mut group = c.benchmark_group("policy load");
    group.sample_size(10);
    group.bench_function("load and validate 273 comuni x 40 services", |b| {
        b.iter(|| policies::load(&main).unwrap())
    });
    group.finish();
}

criterion_group!(benches, routing, headers, load);
criterion_main!(benches);
