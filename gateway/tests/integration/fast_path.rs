//! The fast path against pingora's path. The same byte streams go through a gateway with
//! `[server] fast_path` on (the default) and one with it off, in front of the same back-ends:
//! what the client gets and what the back-end receives must agree, response shape by response
//! shape (lengths, chunks with extensions and trailers, bodies until close, 1xx, 204, 304, HEAD,
//! planted cookies, malformed and truncated answers, a back-end that is down) and for the
//! requests the fast path must hand to pingora (bodies, upgrades, odd targets, forged headers).
//! The counter `varco_fast_path_requests_total` shows which path served.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use policies::Level;

use crate::citizen::*;
use crate::harness::*;

/// A back-end that answers each request with the raw bytes its path names (then closes when
/// the script says so).
fn scripted_back_end() -> SocketAddr {
    raw_back_end(|head| script(head.split(' ').nth(1).unwrap_or(""), head))
}

/// The scripted answers: (bytes, close after).
fn script(path: &str, head: &str) -> (Vec<u8>, bool) {
    let seen = head.len();
    let a = |s: &str| s.as_bytes().to_vec();
    match path.trim_start_matches("/raw") {
        "/length" => (a(&format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Head-Bytes: {seen}\r\nContent-Length: 5\r\n\r\nhello")), false),
        "/chunked" => (a("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"), false),
        "/close" => (a("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"), true),
        "/http10" => (a("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"), true),
        "/early" => (a("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), false),
        "/nocontent" => (a("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"), false),
        "/notmodified" => (a("HTTP/1.1 304 Not Modified\r\nETag: \"1\"\r\nContent-Length: 50\r\n\r\n"), false),
        "/reason" => (a("HTTP/1.1 299 Odd But Fine\r\nContent-Length: 0\r\n\r\n"), false),
        "/cookies" => (a("HTTP/1.1 200 OK\r\nSet-Cookie: app=1; Path=/\r\nSet-Cookie: varco_session=planted; Path=/\r\nSet-Cookie: __Host-varco_session=planted; Path=/; Secure\r\nStrict-Transport-Security: max-age=1\r\nContent-Length: 0\r\n\r\n"), false),
        "/hop" => (a("HTTP/1.1 200 OK\r\nConnection: close\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok"), true),
        "/bad-length" => (a("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!"), true),
        "/bad-coding" => (a("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx"), true),
        "/bad-head" => (a("HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n"), true),
        "/switch" => (a("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"), true),
        "/truncated" => (a("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), true),
        "/bad-chunk" => (a("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), true),
        "/silent" => (Vec::new(), true),
        _ => (a("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"), false),
    }
}

fn policies(echo: SocketAddr, raw: SocketAddr, down: u16) -> Vec<(&'static str, String)> {
    let down: SocketAddr = ([127, 0, 0, 1], down).into();
    one_comune(&[
        Svc::public("pub", "a.test", "/pub/", echo),
        Svc::public("raw", "a.test", "/raw/", raw),
        Svc::public("down", "a.test", "/down/", down),
        Svc::at_level(
            "tari",
            "a.test",
            "/tari/",
            echo,
            "SpidL2",
            "attributes = [\"fiscalNumber\"]",
        ),
    ])
}

/// Two gateways with the same policies: the fast path on, and off.
fn pair() -> (Gateway, Gateway) {
    let p = policies(echo("fast-path"), scripted_back_end(), closed_port());
    (
        Gateway::start("", &p),
        Gateway::start("fast_path = false", &p),
    )
}

/// One response as a client reads it: status line, headers (names lower case, `Date` and the
/// echo's peer left out), the body decoded.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status_line: String,
    headers: BTreeMap<String, Vec<String>>,
    body: String,
}

/// Everything the client got on one connection, and whether the server closed it.
#[derive(Debug, PartialEq, Eq)]
struct Conversation {
    responses: Vec<Seen>,
    /// Bytes that did not parse as a response (a truncated body), as text.
    rest: String,
    closed: bool,
}

/// Sends `request` on a new connection and reads until the server closes or 1.5 s of silence.
fn converse(port: u16, request: &[u8], head_request: bool) -> Conversation {
    let (out, closed) = read_until_closed(port, request, Duration::from_millis(1500));
    // The pages link to the portal, whose port differs between two gateways.
    let out = String::from_utf8_lossy(&out).replace(&format!(":{port}/"), ":PORT/");
    let (responses, rest) = parse_responses(out.as_bytes(), head_request, closed);
    Conversation {
        responses,
        rest,
        closed,
    }
}

fn parse_responses(mut bytes: &[u8], head_request: bool, closed: bool) -> (Vec<Seen>, String) {
    let mut seen = Vec::new();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = resp.parse(bytes) else {
            break;
        };
        let code = resp.code.unwrap_or(0);
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for h in resp.headers.iter() {
            let name = h.name.to_ascii_lowercase();
            if name != "date" {
                map.entry(name)
                    .or_default()
                    .push(mask_random(&String::from_utf8_lossy(h.value)));
            }
        }
        let status_line = format!(
            "HTTP/1.{} {} {}",
            resp.version.unwrap_or(9),
            code,
            resp.reason.unwrap_or("")
        );
        let rest = &bytes[len..];
        let header = |n: &str| map.get(n).and_then(|v| v.first()).cloned();
        let (body, used) =
            if head_request || code == 204 || code == 304 || (100..200).contains(&code) {
                (Vec::new(), 0)
            } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
                match dechunk(rest) {
                    Some(r) => r,
                    None => break,
                }
            } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
                if rest.len() < n {
                    break;
                }
                (rest[..n].to_vec(), n)
            } else if closed {
                (rest.to_vec(), rest.len())
            } else {
                break;
            };
        seen.push(Seen {
            status_line,
            headers: map,
            body: normalize_body(&String::from_utf8_lossy(&body)),
        });
        bytes = &rest[used..];
    }
    (seen, String::from_utf8_lossy(bytes).into_owned())
}

/// Fresh random values (login bindings, cookies) as `RANDOM`: runs of 32 or more base64url
/// characters.
fn mask_random(value: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 32 {
            out.push_str("RANDOM");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in value.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn dechunk(mut b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let start = b.len();
    let mut out = Vec::new();
    loop {
        let lf = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..lf]).ok()?, 16).ok()?;
        b = &b[lf + 2..];
        if size == 0 {
            b = b.strip_prefix(b"\r\n")?;
            return Some((out, start - b.len()));
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

/// The echo's JSON without what differs between two gateways (the peer's port), its headers
/// sorted by name (pingora's header map does not keep the order of removed and re-added names).
fn normalize_body(body: &str) -> String {
    let Ok(mut json) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_string();
    };
    if let Some(o) = json.as_object_mut() {
        o.remove("peer");
        if let Some(h) = o.get_mut("headers").and_then(|h| h.as_array_mut()) {
            for pair in h.iter_mut() {
                if let Some(name) = pair.get_mut(0) {
                    *name = name.as_str().unwrap_or("").to_ascii_lowercase().into();
                }
            }
            h.sort_by_key(|p| p[0].as_str().unwrap_or("").to_string());
        }
    }
    json.to_string()
}

fn fast_count(gw: &Gateway) -> u64 {
    gw.metrics()
        .lines()
        .filter(|l| l.starts_with("varco_fast_path_requests_total"))
        .find_map(|l| l.rsplit(' ').next()?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn both_paths_answer_every_response_shape_alike() {
    let (fast, slow) = pair();
    let get = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: a.test\r\nUser-Agent: t\r\nConnection: close\r\n\r\n")
    };
    let mut cases: Vec<(String, bool)> = [
        "/pub/x?y=1&z=%2F",
        "/pub/x?echo_chunks=3",
        "/pub/x?echo_status=204",
        "/pub/x?echo_set_cookie=varco_session&echo_set_cookie=kept",
        "/raw/length",
        "/raw/chunked",
        "/raw/close",
        "/raw/http10",
        "/raw/early",
        "/raw/nocontent",
        "/raw/notmodified",
        "/raw/reason",
        "/raw/cookies",
        "/raw/hop",
        "/raw/bad-length",
        "/raw/bad-coding",
        "/raw/bad-head",
        "/raw/switch",
        "/raw/truncated",
        "/raw/bad-chunk",
        "/raw/silent",
        "/down/",
        "/tari/avviso",
        "/nowhere",
    ]
    .iter()
    .map(|p| (get(p), false))
    .collect();
    cases.push((
        "HEAD /raw/length HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n".into(),
        true,
    ));
    cases.push((
        "HEAD /pub/ HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n".into(),
        true,
    ));
    for (request, head) in &cases {
        let a = converse(fast.port, request.as_bytes(), *head);
        let b = converse(slow.port, request.as_bytes(), *head);
        if request.contains("/raw/switch") {
            // The one deliberate difference: a 101 that no one asked for (RFC 9110 §15.2.2
            // forbids it) reaches the client through pingora's path; the fast path answers 502.
            assert!(b.responses[0].status_line.contains(" 101 "), "{b:?}");
            assert!(a.rest.starts_with("HTTP/1.1 502 "), "{a:?}");
            continue;
        }
        assert_eq!(a, b, "{request}");
        assert!(
            !a.responses.is_empty() || a.closed,
            "{request}: no answer at all: {a:?}"
        );
    }
    assert_eq!(
        fast_count(&slow),
        0,
        "the switch sends everything to pingora"
    );
    assert!(fast_count(&fast) >= 20, "{}", fast_count(&fast));
}

#[test]
fn both_paths_forward_hostile_requests_alike() {
    let (fast, slow) = pair();
    let cases = [
        // forged identity and forwarding headers, in every spelling
        "GET /pub/a HTTP/1.1\r\nHost: a.test\r\nX-Varco-Level: SpidL3\r\nx_varco_fiscal_number: FORGED\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Original-URL: /tari/\r\nConnection: close\r\n\r\n",
        // varco's cookies do not reach a back-end; the others do
        "GET /pub/a HTTP/1.1\r\nHost: a.test\r\nCookie: a=1; varco_session=x; b=2\r\nCookie: varco_login=y\r\nConnection: close\r\n\r\n",
        // a Connection nomination (pingora's path strips it)
        "GET /pub/a HTTP/1.1\r\nHost: a.test\r\nX-Keep: 1\r\nConnection: X-Keep, close\r\n\r\n",
        // bodies, upgrades, expectations go to pingora
        "POST /pub/a HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        "GET /pub/a HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        "GET /pub/a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
        "GET /pub/a HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        "GET /pub/a HTTP/1.1\r\nHost: a.test\r\nTE: trailers\r\nConnection: close\r\n\r\n",
        // hosts and targets
        "GET /pub/a HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n",
        "GET /pub/a HTTP/1.1\r\nHost: A.TEST.\r\nConnection: close\r\n\r\n",
        "GET /pub/a HTTP/1.1\r\nHost: a.test:1\r\nConnection: close\r\n\r\n",
        "GET /pub/a HTTP/1.1\r\nHost: x@a.test\r\nConnection: close\r\n\r\n",
        "GET /pub/%2e%2e/tari/ HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        "GET /pub/../tari/ HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        "GET /PUB/a HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        "GET /pub/a#frag HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        "GET http://a.test/pub/a HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        "GET /pub/a HTTP/1.0\r\nHost: a.test\r\n\r\n",
        "GET /pub/a HTTP/1.1\r\nHost: a.test\r\nX: \x01\r\nConnection: close\r\n\r\n",
        // pipelined: both answered, in order, the first without its close
        "GET /pub/1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /pub/2 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        // a fast request, then one for pingora, on one connection
        "GET /pub/1 HTTP/1.1\r\nHost: a.test\r\n\r\nPOST /pub/2 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    ];
    for request in cases {
        let a = converse(fast.port, request.as_bytes(), false);
        let b = converse(slow.port, request.as_bytes(), false);
        if request.starts_with("GET /pub/1 ") {
            // pingora answers the first of two pipelined requests and closes; the fast path
            // answers both, in order, as nginx does (the second through pingora when it has a
            // body).
            assert_eq!(b.responses.len(), 1, "{b:?}");
            assert_eq!(a.responses.len(), 2, "{a:?}");
            assert_eq!(a.responses[0], b.responses[0]);
            assert!(a.responses[1].body.contains("\"/pub/2\""), "{a:?}");
            assert!(a.closed);
            continue;
        }
        assert_eq!(a, b, "{request:?}");
        for r in &a.responses {
            let body = r.body.to_ascii_lowercase();
            assert!(
                !body.contains("forged") && !body.contains("6.6.6.6") && !body.contains("spidl3"),
                "{request:?}: {body}"
            );
            assert!(
                !body.contains("varco_session") && !body.contains("x-keep"),
                "{body}"
            );
        }
    }
}

#[test]
fn an_authenticated_request_takes_the_fast_path_with_its_identity() {
    let (fast, _slow) = pair();
    let session = rt().block_on(async {
        let mut b = Browser::new(&fast);
        b.idp.level = Level::SpidL2;
        let page = b.visit(&fast.url("a.test", "/tari/avviso?anno=2026")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        b.cookie("a.test", "varco_session").expect("session")
    });
    let before = fast_count(&fast);
    let request = format!(
        "GET /tari/avviso HTTP/1.1\r\nHost: a.test\r\nCookie: varco_session={session}; app=1\r\nX-Varco-Fiscal-Number: FORGED\r\nConnection: close\r\n\r\n"
    );
    let got = converse(fast.port, request.as_bytes(), false);
    assert_eq!(got.responses.len(), 1, "{got:?}");
    assert_eq!(fast_count(&fast), before + 1, "served by the fast path");
    let json: serde_json::Value = serde_json::from_str(&got.responses[0].body).expect("echo JSON");
    let headers = received_headers(&json);
    let one = |n: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(one("x-varco-level"), ["SpidL2"]);
    assert_eq!(one("x-varco-fiscal-number").len(), 1);
    assert_ne!(one("x-varco-fiscal-number"), ["FORGED"]);
    assert_eq!(one("x-varco-assertion").len(), 1);
    assert_eq!(one("cookie"), ["app=1"]);
    assert_eq!(one("x-forwarded-for"), ["127.0.0.1"]);
    assert!(one("connection").is_empty());
    // Without the session the same request starts a login (pingora's path answers it).
    let anonymous = converse(
        fast.port,
        b"GET /tari/avviso HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        false,
    );
    assert!(
        anonymous.responses[0].status_line.contains(" 302 "),
        "{anonymous:?}"
    );
    assert_eq!(fast_count(&fast), before + 1);
}

#[test]
fn keep_alive_connections_reuse_one_back_end_connection() {
    let (fast, _slow) = pair();
    let mut s = TcpStream::connect(("127.0.0.1", fast.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut peers = std::collections::HashSet::new();
    for i in 0..20 {
        let req = format!("GET /pub/{i} HTTP/1.1\r\nHost: a.test\r\n\r\n");
        s.write_all(req.as_bytes()).expect("write");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let seen = loop {
            let n = s.read(&mut buf).expect("read");
            assert!(n > 0, "closed after {i} requests");
            got.extend_from_slice(&buf[..n]);
            let (seen, _) = parse_responses(&got, false, false);
            if let Some(first) = seen.into_iter().next() {
                break first;
            }
        };
        assert!(seen.status_line.contains(" 200 "), "{seen:?}");
        assert_eq!(seen.headers["connection"], ["keep-alive"]);
        let json: serde_json::Value = serde_json::from_str(&fast_raw_body(&got)).expect("json");
        peers.insert(json["peer"].as_str().expect("peer").to_string());
    }
    assert!(peers.len() <= 2, "{peers:?}");
    assert!(fast_count(&fast) >= 20);
}

/// The raw body of one length-delimited response.
fn fast_raw_body(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string())
}
