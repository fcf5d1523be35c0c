//! Any bytes as the main configuration file (with `[sp.aggregator]`, `[[oidc]]`...): an error
//! list or a configuration, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = policies::check_config(std::path::Path::new("/nonexistent/varco.toml"), text);
    }
});
