//! Any bytes as the certificate chain a browser sent in the CNS host's TLS handshake (each
//! certificate length-prefixed, two bytes big-endian), finishing a pending CNS login through
//! the login door the gateway uses: a principal or an error, never a panic or a hang. The first
//! run seeds the corpus with a good card of the test CA (so that mutations reach the chain,
//! revocation and subject checks).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use idp_bridge::insecure_test_idp::cns::TestCnsCa;
use idp_bridge::insecure_test_idp::{ready, DiscardAudit};
use idp_bridge::{BrowserBinding, Callback, CnsTrust, IdpRegistry, LoginStart, OidcRegistry, Sp, SpKeys};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    config: policies::Config,
    keys: SpKeys,
    idps: IdpRegistry,
    oidc: OidcRegistry,
    trust: CnsTrust,
    binding: BrowserBinding,
    _dir: std::path::PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let config = policies::load(&root.join("examples/varco.toml")).expect("example").config;
        let keys = SpKeys::load(&config.sp.key, &config.sp.cert).expect("sp keys");
        let dir = std::env::temp_dir().join(format!("varco-fuzz-cns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca = TestCnsCa::new("CA Fuzz").expect("ca");
        let revoked = ca.card("BNCGVN75L15G702L", "GIOVANNI", "BIANCHI").expect("card");
        std::fs::write(dir.join("ca.pem"), ca.cert_pem()).expect("write");
        let next = chrono::Utc::now() + chrono::Duration::days(30);
        std::fs::write(dir.join("ca.crl"), ca.crl(&[&revoked], next).expect("crl")).expect("write");
        let trust = CnsTrust::load(&policies::CnsConfig {
            host: "cns.portal.localhost".into(),
            ca: vec![dir.join("ca.pem")],
            crl: vec![dir.join("ca.crl")],
            level: policies::Level::SpidL2,
            display_name: "CNS".into(),
        })
        .expect("trust");
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/cns_certificate");
        let _ = std::fs::create_dir_all(&corpus);
        let good = ca.card("RSSMRA80A01H501U", "MARIO", "ROSSI").expect("card");
        for (name, chain) in [
            ("good", vec![good.der()]),
            ("revoked", vec![revoked.der()]),
            ("with_ca", vec![good.der(), ca.cert.to_der().expect("der")]),
        ] {
            let mut seed = Vec::new();
            for der in chain {
                seed.extend_from_slice(&(der.len() as u16).to_be_bytes());
                seed.extend_from_slice(&der);
            }
            let _ = std::fs::write(corpus.join(name), seed);
        }
        Fixture {
            config,
            keys,
            idps: IdpRegistry::default(),
            oidc: OidcRegistry::default(),
            trust,
            binding: BrowserBinding::new(),
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut chain = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 && chain.len() < 8 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let take = len.min(rest.len() - 2);
        chain.push(rest[2..2 + take].to_vec());
        rest = &rest[2 + take..];
    }
    let sp = Sp {
        config: &f.config,
        keys: &f.keys,
        idps: &f.idps,
        oidc: &f.oidc,
        cns: Some(&f.trust),
    };
    let Some(provider) = sp.provider(policies::CNS_PROVIDER) else {
        return;
    };
    let start = LoginStart {
        provider,
        level: policies::Level::SpidL2,
        attribute_set: 0,
        wanted: policies::AttributeMask::EMPTY,
        binding: &f.binding,
        return_to: "http://portal.localhost/".into(),
        replaces: None,
        handoff_binding: None,
        prefer_post: false,
        audience: policies::Audience::Sp,
    };
    let Ok(started) = ready(idp_bridge::login::start(sp, start, &DiscardAudit)) else {
        return;
    };
    let id = started.pending.request_id().to_string();
    if let Ok(login) = ready(idp_bridge::login::finish(
        sp,
        Callback::cns(id, chain),
        Some(started.pending),
        Some(&f.binding),
        &DiscardAudit,
    )) {
        // Only the test CA's good card gets through.
        assert_eq!(
            login.principal.fiscal_number().map(|n| n.as_str().to_string()).as_deref(),
            Some("RSSMRA80A01H501U")
        );
    }
});
