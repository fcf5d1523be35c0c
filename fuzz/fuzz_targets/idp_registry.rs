//! Any bytes as a federation's IdP registry (`[[idp_source]]`, `IdpSet::verify`): a set or an
//! error, never a panic or a hang. Checked against the key that signed the seed (so mutations
//! that keep the signature valid reach the entities) and against a certificate whose key the
//! fuzzer lacks, where nothing may verify.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../idp-bridge/test_vectors")
}

fn seeded() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/idp_registry");
        let _ = std::fs::create_dir_all(&corpus);
        let key = idp_bridge::insecure_test_idp::TestIdpKey::from_pem(
            &std::fs::read(vectors().join("spid-sp-test-idp/private.key")).expect("key"),
            &std::fs::read(vectors().join("spid-sp-test-idp/public.cert")).expect("cert"),
        )
        .expect("key pair");
        let idp = std::fs::read_to_string(vectors().join("spid-sp-test-idp.xml")).expect("idp");
        let other = idp.replace("https://localhost:8443\"", "https://idp2.localhost:8443\"");
        if let Ok(set) =
            idp_bridge::insecure_test_idp::signed_registry(&[&idp, &other], "_seed", None, &key)
        {
            let _ = std::fs::write(corpus.join("seed.xml"), set);
        }
    });
}

fuzz_target!(|data: &[u8]| {
    seeded();
    let signer = vectors().join("spid-sp-test-idp/public.cert");
    let stranger = vectors().join("../../examples/keys/sp.crt");
    let rules = |cert: &'static Path| idp_bridge::SetRules {
        source: "https://registry.fuzz/idps.xml",
        federation_cert: cert,
        kind: policies::IdpKind::Spid,
        cache: Path::new("/nonexistent/cache.xml"),
        max_age: Duration::from_secs(3600),
    };
    static SIGNER: OnceLock<PathBuf> = OnceLock::new();
    static STRANGER: OnceLock<PathBuf> = OnceLock::new();
    let signer: &'static Path = SIGNER.get_or_init(|| signer);
    let stranger: &'static Path = STRANGER.get_or_init(|| stranger);
    let now = chrono::Utc::now();
    if let Ok(set) = idp_bridge::IdpSet::verify(data, &rules(signer), now) {
        assert!(!set.idps().is_empty());
    }
    assert!(idp_bridge::IdpSet::verify(data, &rules(stranger), now).is_err());
});
