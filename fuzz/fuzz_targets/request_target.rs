//! Any Host and path against a route table: a match or a refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static TABLE: std::sync::OnceLock<policies::Snapshot> = std::sync::OnceLock::new();
    let snap = TABLE.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/varco.toml");
        policies::load(&path).expect("example configuration")
    });
    let text = String::from_utf8_lossy(data);
    let (host, path) = text.split_once('\n').unwrap_or(("capannori.localhost", &text));
    let _ = snap.routes.resolve(host, path);
});
