//! Any bytes as a logout message at `/.sso/slo`: as the XML of an HTTP-POST `SAMLRequest` or
//! `SAMLResponse` (`idp_bridge::verify_post`), and as the raw query of an HTTP-Redirect one
//! (`idp_bridge::verify_redirect`). An error or a verified message, never a panic or a hang; a
//! message that verifies must come from the test IdP (whose key the fuzzer does not have, so
//! none should).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use base64::Engine as _;
use idp_bridge::{IdpRegistry, LogoutMessage};
use libfuzzer_sys::fuzz_target;

const SLO: &str = "https://sp.example/.sso/slo";

fn registry() -> &'static IdpRegistry {
    static R: OnceLock<IdpRegistry> = OnceLock::new();
    R.get_or_init(|| {
        let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../idp-bridge/test_vectors");
        IdpRegistry::load(&[policies::IdpConfig {
            metadata: vectors.join("spid-sp-test-idp.xml"),
            kind: policies::IdpKind::Spid,
            federation_cert: None,
        }])
        .expect("idp")
    })
}

fn check(m: Result<LogoutMessage, idp_bridge::SloError>) {
    if let Ok(m) = m {
        let idp = match &m {
            LogoutMessage::Request { idp, .. } | LogoutMessage::Response { idp, .. } => idp,
        };
        assert_eq!(idp, "https://localhost:8443");
    }
}

fuzz_target!(|data: &[u8]| {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    check(idp_bridge::verify_post(&b64, registry(), SLO));
    if let Ok(query) = std::str::from_utf8(data) {
        check(idp_bridge::verify_redirect(query, registry(), SLO));
    }
});
