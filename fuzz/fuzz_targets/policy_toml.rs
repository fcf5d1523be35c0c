//! Any bytes as a policy file: an error list or a comune, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = policies::check_policy(std::path::Path::new("fuzz.toml"), text);
    }
});
