//! Any bytes as the XML of a posted SAMLResponse, answering a pending login `_fuzz` (so that
//! mutations of a real response reach the signature and field checks): an error or a principal,
//! never a panic or a hang. Seed with a signed response: `cargo run --example` is not needed, the
//! first run writes one into the corpus.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use base64::Engine as _;
use idp_bridge::{AcsContext, AcsRequest, BrowserBinding, IdpRegistry, LoginStore, MemoryLoginStore, PendingLogin};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    idps: IdpRegistry,
    store: MemoryLoginStore,
    binding: BrowserBinding,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../idp-bridge/test_vectors");
        let idps = IdpRegistry::load(&[policies::IdpConfig {
            metadata: vectors.join("spid-sp-test-idp.xml"),
            kind: policies::IdpKind::Spid,
            federation_cert: None,
        }])
        .expect("idp");
        // A seed: a valid signed response to `_fuzz`.
        let key = idp_bridge::testing::TestIdpKey::from_pem(
            &std::fs::read(vectors.join("spid-sp-test-idp/private.key")).expect("key"),
            &std::fs::read(vectors.join("spid-sp-test-idp/public.cert")).expect("cert"),
        )
        .expect("key pair");
        let seed = idp_bridge::testing::ResponseBuilder::new("https://localhost:8443", "https://sp.example/metadata", "https://sp.example/.sso/acs", "_fuzz")
            .signed_xml(&key)
            .expect("sign");
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/acs_response");
        let _ = std::fs::create_dir_all(&corpus);
        let _ = std::fs::write(corpus.join("seed-signed-response.xml"), seed);
        Fixture { idps, store: MemoryLoginStore::new(10), binding: BrowserBinding::new() }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    f.store.put(PendingLogin {
        request_id: "_fuzz".into(),
        issue_instant: chrono::Utc::now() - chrono::Duration::seconds(5),
        idp: "https://localhost:8443".into(),
        level: policies::Level::SpidL1,
        attribute_set: 0,
        return_to: "https://portal.example/".into(),
        binding: f.binding.digest(),
        relay_state: [0; 32],
        replaces: None,
        handoff_binding: None,
    });
    let ctx = AcsContext { entity_id: "https://sp.example/metadata", acs_url: "https://sp.example/.sso/acs", idps: &f.idps };
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let _ = idp_bridge::consume(&ctx, &f.store, &AcsRequest { saml_response: &b64, relay_state: None, binding: Some(&f.binding) });
});
