//! ACS validations per second on one core: a signed SPID response (Response and Assertion
//! signed, RSA-2048/SHA-256) through every check, the pending login taken from the store.
//!
//! `cargo bench -p benches --bench acs`

#![allow(missing_docs, clippy::unwrap_used)] // criterion's macros generate undocumented items

use std::path::Path;

use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use idp_bridge::testing::{ResponseBuilder, TestIdpKey};
use idp_bridge::{
    AcsContext, AcsRequest, BrowserBinding, IdpRegistry, LoginStore, MemoryLoginStore, PendingLogin,
};

const SP: &str = "https://sp.example/metadata";
const ACS: &str = "https://sp.example/.sso/acs";
const IDP: &str = "https://localhost:8443";

fn acs(c: &mut Criterion) {
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../idp-bridge/test_vectors");
    let idps = IdpRegistry::load(&[policies::IdpConfig {
        metadata: vectors.join("spid-sp-test-idp.xml"),
        kind: policies::IdpKind::Spid,
        federation_cert: None,
    }])
    .unwrap();
    let key = TestIdpKey::from_pem(
        &std::fs::read(vectors.join("spid-sp-test-idp/private.key")).unwrap(),
        &std::fs::read(vectors.join("spid-sp-test-idp/public.cert")).unwrap(),
    )
    .unwrap();
    let store = MemoryLoginStore::new(1_000_000);
    let binding = BrowserBinding::new();
    let request_id = idp_bridge::new_request_id();
    let response = base64::engine::general_purpose::STANDARD.encode(
        ResponseBuilder::new(IDP, SP, ACS, &request_id)
            .signed_xml(&key)
            .unwrap(),
    );
    let pending = PendingLogin {
        request_id,
        issue_instant: chrono::Utc::now(),
        idp: IDP.into(),
        level: policies::Level::SpidL2,
        attribute_set: 0,
        return_to: "https://portal.example/".into(),
        binding: binding.digest(),
        relay_state: [0; 32],
        replaces: None,
        handoff_binding: None,
    };
    let ctx = AcsContext {
        entity_id: SP,
        acs_url: ACS,
        idps: &idps,
    };
    c.bench_function("ACS: validate a signed SPID response", |b| {
        b.iter_batched(
            || store.put(pending.clone()),
            |()| {
                idp_bridge::consume(
                    &ctx,
                    &store,
                    &AcsRequest {
                        saml_response: &response,
                        relay_state: None,
                        binding: Some(&binding),
                    },
                )
                .unwrap()
            },
            // One at a time: a pending login is one-shot, so it is put back before each run.
            BatchSize::PerIteration,
        )
    });
}

criterion_group!(benches, acs);
criterion_main!(benches);
