//! Any bytes as the start of a connection, through the fast path's head reader: a head for
//! pingora, a wait for more, or a head the fast path serves, never a panic; and a head it
//! serves reads back the same once written to a back-end.
#![no_main]

use gateway::fast::head::{parse, Head};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Head::Fast(h) = parse(data) else {
        return;
    };
    assert!(h.len <= data.len());
    assert!(matches!(
        h.header.method,
        http::Method::GET | http::Method::HEAD
    ));
    assert_eq!(h.header.headers.get_all(http::header::HOST).iter().count(), 1);
    for refused in ["content-length", "transfer-encoding", "upgrade", "expect", "te"] {
        assert!(!h.header.headers.contains_key(refused), "{refused}");
    }
    let wire = pingora::protocols::http::v1::client::http_req_header_to_wire(&h.header)
        .expect("a served head can be written");
    let Head::Fast(again) = parse(&wire) else {
        panic!("a written head reads back as another kind");
    };
    assert_eq!(again.len, wire.len());
    assert_eq!(again.header.raw_path(), h.header.raw_path());
    assert_eq!(again.header.headers, h.header.headers);
    assert_eq!(again.close, h.close);
});
