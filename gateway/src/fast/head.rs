//! Reading a request head for the fast path: it parses with the same `httparse` call as
//! pingora, builds the same `RequestHeader`, and says which heads the fast path may serve. Any
//! other head (a body, an upgrade, a hop-by-hop header pingora acts on, an odd target, HTTP/1.0,
//! anything malformed) goes to pingora's proxy, byte for byte as it arrived.

use http::header::HOST;
use pingora::http::RequestHeader;

/// The longest head the fast path waits for; a longer one goes to pingora, which has its own
/// limit and error.
pub const MAX_HEAD: usize = 16 * 1024;

/// The most headers the fast path parses; a head with more goes to pingora.
const MAX_HEADERS: usize = 96;

/// What the bytes read so far hold.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "made and moved once per request; a box would be one more allocation per request"
)]
pub enum Head {
    /// Not the whole head yet.
    Partial,
    /// A head pingora's proxy serves.
    Slow,
    /// A head the fast path may serve.
    Fast(FastHead),
}

/// A complete head the fast path may serve.
#[derive(Debug)]
pub struct FastHead {
    /// The request, built as pingora builds it.
    pub header: RequestHeader,
    /// The head's length in bytes: the next request starts there (no body).
    pub len: usize,
    /// The client asked to close the connection after this request.
    pub close: bool,
}

/// Headers whose presence sends the request to pingora: a body (`Content-Length`,
/// `Transfer-Encoding`), an upgrade, an expectation, or a hop-by-hop header pingora strips or
/// acts on.
const SLOW_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "expect",
    "upgrade",
    "http2-settings",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Reads `buf` (the bytes received, starting at a request).
pub fn parse(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Partial,
        // Too many headers, a bad token, a bad version: pingora answers (or escapes a target).
        Err(_) => return Head::Slow,
    };
    if req.version != Some(1) {
        return Head::Slow;
    }
    let method = match req.method {
        Some("GET") => http::Method::GET,
        Some("HEAD") => http::Method::HEAD,
        _ => return Head::Slow,
    };
    let Some(target) = req.path.filter(|t| plain_origin_form(t.as_bytes())) else {
        return Head::Slow;
    };
    let mut close = false;
    let mut hosts = 0;
    for h in req.headers.iter() {
        let name = h.name;
        if SLOW_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            return Head::Slow;
        }
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("connection") {
            match connection_close(h.value) {
                Some(c) => close |= c,
                None => return Head::Slow,
            }
        }
    }
    if hosts != 1 {
        return Head::Slow;
    }
    let Ok(mut header) = RequestHeader::build(method, target.as_bytes(), Some(req.headers.len()))
    else {
        return Head::Slow;
    };
    // The URI must read back as the bytes that came: routing and the back-end see one target.
    if header.raw_path() != target.as_bytes() || header.uri.authority().is_some() {
        return Head::Slow;
    }
    for h in req.headers.iter() {
        let Ok(value) = http::HeaderValue::from_bytes(h.value) else {
            return Head::Slow;
        };
        // The name as the client spelled it, as pingora keeps it.
        let name = bytes::Bytes::copy_from_slice(h.name.as_bytes());
        if header.append_header(name, value).is_err() {
            return Head::Slow;
        }
    }
    if header.headers.get(HOST).is_none()
        || pingora::protocols::http::authority::validate_request_authority(&header).is_err()
    {
        return Head::Slow;
    }
    Head::Fast(FastHead { header, len, close })
}

/// An origin-form target (RFC 9112 §3.2.1) of visible ASCII without a fragment: anything else
/// pingora rewrites or refuses, so it decides.
fn plain_origin_form(target: &[u8]) -> bool {
    target.first() == Some(&b'/')
        && target
            .iter()
            .all(|b| (0x21..0x7f).contains(b) && *b != b'#')
}

/// `Some(true)` for a `Connection` of `close` (with `keep-alive` or not), `Some(false)` for
/// only `keep-alive`, `None` for any other token (a nomination pingora strips).
fn connection_close(value: &[u8]) -> Option<bool> {
    let mut close = false;
    for token in value.split(|b| *b == b',') {
        let token = token.trim_ascii();
        if token.eq_ignore_ascii_case(b"close") {
            close = true;
        } else if !token.eq_ignore_ascii_case(b"keep-alive") && !token.is_empty() {
            return None;
        }
    }
    Some(close)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(raw: &str) -> FastHead {
        match parse(raw.as_bytes()) {
            Head::Fast(h) => h,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    fn slow(raw: &str) -> bool {
        matches!(parse(raw.as_bytes()), Head::Slow)
    }

    #[test]
    fn a_plain_get_is_fast_and_keeps_its_spelling() {
        let raw = "GET /a/b?c=d%2F HTTP/1.1\r\nHost: a.test:8080\r\nX-Thing: 1\r\nx-thing: 2\r\nCookie: k=v\r\n\r\nGET /next";
        let h = fast(raw);
        assert_eq!(h.len, raw.len() - "GET /next".len());
        assert!(!h.close);
        assert_eq!(h.header.raw_path(), b"/a/b?c=d%2F");
        assert_eq!(h.header.uri.path(), "/a/b");
        let values: Vec<_> = h.header.headers.get_all("x-thing").iter().collect();
        assert_eq!(values, ["1", "2"]);
        let wire =
            pingora::protocols::http::v1::client::http_req_header_to_wire(&h.header).expect("wire");
        let wire = String::from_utf8_lossy(&wire);
        assert!(wire.contains("\r\nX-Thing: 1\r\n"), "{wire}");
        assert!(wire.contains("\r\nHost: a.test:8080\r\n"), "{wire}");
    }

    #[test]
    fn heads_and_close_are_read() {
        let h = fast("HEAD / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n");
        assert_eq!(h.header.method, http::Method::HEAD);
        assert!(h.close);
        assert!(!fast("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n").close);
    }

    #[test]
    fn partial_heads_wait() {
        for raw in [
            "",
            "GE",
            "GET / HTTP/1.1\r\nHost: a\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n\r",
        ] {
            assert!(matches!(parse(raw.as_bytes()), Head::Partial), "{raw:?}");
        }
    }

    #[test]
    fn every_other_shape_goes_to_pingora() {
        for raw in [
            // bodies and framing: pingora reconciles them (smuggling defences live there)
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\ntransfer-encoding : chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\n\r\n",
            "get / HTTP/1.1\r\nHost: a\r\n\r\n",
            // upgrades, expectations, hop-by-hop headers
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nKeep-Alive: 5\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: x\r\n\r\n",
            // a nomination would remove a header
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: x-varco-level\r\n\r\n",
            // hosts
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a@b\r\n\r\n",
            // targets
            "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /\u{e8} HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET a HTTP/1.1\r\nHost: a\r\n\r\n",
            // versions and malformed heads
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{0}b\r\n\r\n",
        ] {
            assert!(slow(raw), "{raw:?}");
        }
        let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
        assert!(slow(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")));
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..20_000 {
            let len = (seed % 64) as usize;
            let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                raw.push(b"\r\n :/?#%aZ\x00\x7f\xff,;="[(seed % 16) as usize]);
            }
            raw.extend_from_slice(b"\r\n\r\n");
            let _ = parse(&raw);
        }
    }
}
