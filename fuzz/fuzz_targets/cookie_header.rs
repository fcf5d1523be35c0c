//! Any bytes as a request's `Cookie` header: the browser-binding cookies are read or not
//! (`gateway::cookies::presented_cookie_binding`), and on the way upstream every varco cookie goes,
//! in any spelling, while every other pair stays as it was (`gateway::cookies::strip_varco_cookies`).
#![no_main]

use gateway::cookies::{is_varco_cookie, strip_varco_cookies};
use libfuzzer_sys::fuzz_target;
use pingora::http::RequestHeader;

fn pairs(v: &str) -> Vec<String> {
    v.split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let Ok(mut req) = RequestHeader::build("GET", b"/", None) else {
        return;
    };
    if req.append_header("cookie", value.clone()).is_err() {
        return;
    }
    for name in ["varco_login", "__Secure-varco_login", "varco_handoff"] {
        if let Some(b) = gateway::cookies::presented_cookie_binding(&req, name) {
            assert_eq!(b.secret().len(), 43);
        }
    }
    let _ = gateway::cookies::presented_binding(&req, gateway::cookies::Cookie::Login, true);
    if strip_varco_cookies(&mut req).is_err() {
        return;
    }
    let after: Vec<String> = req
        .headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(pairs)
        .collect();
    for p in &after {
        let name = p.split('=').next().unwrap_or(p);
        assert!(!is_varco_cookie(name.as_bytes()), "{p:?} reached the back-end");
    }
    if let Ok(before) = value.to_str() {
        let kept: Vec<String> = pairs(before)
            .into_iter()
            .filter(|p| !is_varco_cookie(p.split('=').next().unwrap_or(p).as_bytes()))
            .collect();
        assert_eq!(kept, after, "the back-end's own cookies stay as sent");
    }
});
