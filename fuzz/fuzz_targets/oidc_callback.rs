//! Any bytes as what an OpenID provider sends: split into a callback query, a JWK Set and a
//! token (ID token, signed UserInfo), which is verified with the set and checked as an ID
//! token: an error, never a panic or a hang, and never an accepted token.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let query = parts.next().unwrap_or("");
    let jwks = parts.next().unwrap_or("");
    let token = parts.next().unwrap_or("");
    assert!(!idp_bridge::insecure_test_idp::oidc_untrusted_inputs(
        query,
        jwks.as_bytes(),
        token
    ));
});
