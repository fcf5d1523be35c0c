//! Any text as the `return_to` of `/.sso/login` (`gateway::sso::return_target`), against the
//! example configuration: refused, or an absolute URL on the portal's own scheme and port whose
//! host is the portal's or a configured service's, without credentials: never an open redirect.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn snapshot() -> &'static policies::Snapshot {
    static S: OnceLock<policies::Snapshot> = OnceLock::new();
    S.get_or_init(|| {
        policies::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/varco.toml"))
            .expect("the example configuration")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let snap = snapshot();
    let Some(target) = gateway::sso::return_target(snap, raw) else {
        return;
    };
    let url = url::Url::parse(&target.url).expect("an absolute URL");
    let public = &snap.config.server.public_url.url;
    assert_eq!(url.scheme(), public.scheme(), "{raw:?}");
    assert_eq!(url.port_or_known_default(), public.port_or_known_default(), "{raw:?}");
    assert!(url.username().is_empty() && url.password().is_none(), "{raw:?}");
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let known = host == snap.config.server.public_url.host || snap.routes.hosts().any(|h| h == host);
    assert!(known, "{raw:?} leads to {host}");
});
