//! Any bytes as the XML of a posted SAMLResponse, answering a pending login `_fuzz` (so that
//! mutations of a real response reach the signature and field checks): an error or a principal,
//! never a panic or a hang, through the login door the gateway uses. Seed with a signed response: `cargo run --example` is not needed, the
//! first run writes one into the corpus.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use base64::Engine as _;
use idp_bridge::insecure_test_idp::{pending_login_for_tests, ready, DiscardAudit};
use idp_bridge::{BrowserBinding, Callback, IdpRegistry, Sp, SpKeys};
use libfuzzer_sys::fuzz_target;

const IDP: &str = "https://localhost:8443";

struct Fixture {
    config: policies::Config,
    keys: SpKeys,
    idps: IdpRegistry,
    oidc: idp_bridge::OidcRegistry,
    binding: BrowserBinding,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let vectors = root.join("idp-bridge/test_vectors");
        let config = policies::load(&root.join("examples/varco.toml")).expect("example").config;
        let keys = SpKeys::load(&config.sp.key, &config.sp.cert).expect("sp keys");
        let idps = IdpRegistry::load(&[policies::IdpConfig {
            metadata: vectors.join("spid-sp-test-idp.xml"),
            kind: policies::IdpKind::Spid,
            federation_cert: None,
        }])
        .expect("idp");
        // A seed: a valid signed response to `_fuzz`.
        let key = idp_bridge::insecure_test_idp::TestIdpKey::from_pem(
            &std::fs::read(vectors.join("spid-sp-test-idp/private.key")).expect("key"),
            &std::fs::read(vectors.join("spid-sp-test-idp/public.cert")).expect("cert"),
        )
        .expect("key pair");
        let acs = idp_bridge::SpEndpoints::of(&config, &policies::Audience::Sp).acs;
        let seed = idp_bridge::insecure_test_idp::ResponseBuilder::new(IDP, &config.sp.entity_id, &acs, "_fuzz")
            .signed_xml(&key)
            .expect("sign");
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/acs_response");
        let _ = std::fs::create_dir_all(&corpus);
        let _ = std::fs::write(corpus.join("seed-signed-response.xml"), seed);
        Fixture { config, keys, idps, oidc: idp_bridge::OidcRegistry::default(), binding: BrowserBinding::new() }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let sp = Sp { config: &f.config, keys: &f.keys, idps: &f.idps, oidc: &f.oidc, cns: None };
    let Some(idp) = f.idps.get(IDP) else { return };
    let pending = pending_login_for_tests("_fuzz", idp, &f.binding);
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let form = url::form_urlencoded::Serializer::new(String::new()).append_pair("SAMLResponse", &b64).finish();
    // Through the login door, as the gateway's ACS calls it.
    let callback = Callback::saml_post(form.as_bytes(), policies::Audience::Sp);
    let pending = (callback.answers().as_deref() == Some("_fuzz")).then_some(pending);
    let _ = ready(idp_bridge::login::finish(sp, callback, pending, Some(&f.binding), &DiscardAudit));
});
