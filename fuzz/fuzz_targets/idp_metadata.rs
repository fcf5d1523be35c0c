//! Any bytes as an IdP metadata file, loaded as `[[idp]]` both without and with a federation
//! certificate (`IdpRegistry::load`): a registry or an error naming the file, never a panic or a
//! hang. With the federation certificate nothing the fuzzer writes can be trusted (it does not
//! have the key), so that load must always fail.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("varco-fuzz-metadata-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        // Seed: the genuine metadata.
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/idp_metadata");
        let _ = std::fs::create_dir_all(&corpus);
        let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../idp-bridge/test_vectors");
        let _ = std::fs::copy(vectors.join("spid-sp-test-idp.xml"), corpus.join("seed.xml"));
        dir.join("metadata.xml")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    if std::fs::write(path, data).is_err() {
        return;
    }
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../idp-bridge/test_vectors");
    let mut config = policies::IdpConfig {
        metadata: path.clone(),
        kind: policies::IdpKind::Spid,
        federation_cert: None,
    };
    if let Err(errors) = idp_bridge::IdpRegistry::load(std::slice::from_ref(&config)) {
        assert!(errors.iter().all(|e| e.to_string().contains("metadata.xml")));
    }
    // The examples' SP certificate stands in for a federation whose key the fuzzer lacks.
    config.federation_cert = Some(vectors.join("../../examples/keys/sp.crt"));
    assert!(idp_bridge::IdpRegistry::load(&[config]).is_err());
});
