//! ACS validations per second on one core: a signed SPID response (Response and Assertion
//! signed, RSA-2048/SHA-256) posted as a form, through the login door the gateway's ACS uses
//! (`idp_bridge::login::finish`: form, shape checks, every verification, the audit record built),
//! against the pending login a real `login::start` left.
//!
//! `cargo bench -p benches --bench acs`

#![allow(missing_docs, clippy::unwrap_used)] // criterion's macros generate undocumented items

use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use idp_bridge::insecure_test_idp::{ready, DiscardAudit, ResponseBuilder, TestIdpKey};
use idp_bridge::{BrowserBinding, Callback, IdpRegistry, LoginStart, Outgoing, Sp, SpKeys};

const IDP: &str = "https://localhost:8443";

fn acs(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let vectors = root.join("idp-bridge/test_vectors");
    // The example deployment's SP, as `varco run` loads it.
    let config = policies::load(&root.join("examples/varco.toml"))
        .unwrap()
        .config;
    let keys = SpKeys::load(&config.sp.key, &config.sp.cert).unwrap();
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
    let oidc = idp_bridge::OidcRegistry::default();
    let sp = Sp {
        config: &config,
        keys: &keys,
        idps: &idps,
        oidc: &oidc,
        cns: None,
    };
    let binding = BrowserBinding::new();
    // A real login start: the pending login the ACS takes from the store.
    let started = ready(idp_bridge::login::start(
        sp,
        LoginStart {
            provider: idp_bridge::Provider::Saml(idps.get(IDP).unwrap()),
            wanted: policies::AttributeMask::EMPTY,
            level: policies::Level::SpidL2,
            attribute_set: 0,
            binding: &binding,
            return_to: "http://127.0.0.1:8080/".into(),
            replaces: None,
            handoff_binding: None,
            prefer_post: false,
            audience: policies::Audience::Sp,
        },
        &DiscardAudit,
    ))
    .unwrap();
    let Outgoing::Redirect(url) = &started.outgoing else {
        panic!("the test IdP takes HTTP-Redirect");
    };
    let relay_state = url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let endpoints = idp_bridge::SpEndpoints::of(&config, &policies::Audience::Sp);
    let response = ResponseBuilder::new(
        IDP,
        &config.sp.entity_id,
        &endpoints.acs,
        started.pending.request_id(),
    )
    .to_base64(&key)
    .unwrap();
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", &response)
        .append_pair("RelayState", &relay_state)
        .finish();
    c.bench_function("ACS: validate a signed SPID response", |b| {
        b.iter_batched(
            // One at a time: a pending login is one-shot, so each run gets its own copy, as the
            // store would hand it over.
            || started.pending.clone(),
            |pending| {
                let callback = Callback::saml_post(form.as_bytes(), policies::Audience::Sp);
                ready(idp_bridge::login::finish(
                    sp,
                    callback,
                    Some(pending),
                    Some(&binding),
                    &DiscardAudit,
                ))
                .unwrap()
            },
            BatchSize::PerIteration,
        )
    });
}

criterion_group!(benches, acs);
criterion_main!(benches);
