use super::*;

fn request(headers: &[(&str, &str)]) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/", None).expect("request");
    for (n, v) in headers {
        req.append_header(n.to_string(), *v).expect("header");
    }
    req
}

fn names(req: &RequestHeader) -> Vec<String> {
    let mut v: Vec<String> = req.headers.keys().map(|k| k.as_str().to_string()).collect();
    v.sort();
    v
}

#[test]
fn every_spelling_of_an_owned_header_goes() {
    let set = StripSet::new(["X-CF", "X-Codice-Fiscale"]);
    let mut req = request(&[
        ("X-Varco-Fiscal-Number", "RSSMRA80A01H501U"),
        ("x-varco-level", "SpidL3"),
        ("X_Varco_Level", "SpidL3"),
        ("x-VARCO_name", "Mario"),
        ("X-Varco-Assertion", "forged"),
        ("X-Varco-Assertion", "forged-again"),
        ("x_cf", "RSSMRA80A01H501U"),
        ("X-Cf", "RSSMRA80A01H501U"),
        ("x-codice_fiscale", "RSSMRA80A01H501U"),
        ("Accept", "text/html"),
        ("X-Varcox", "kept: not the prefix"),
    ]);
    let removed = strip_inbound(&mut req, false) + strip_mapped(&mut req, &set);
    assert_eq!(names(&req), vec!["accept", "x-varcox"]);
    assert_eq!(removed, 8);
}

#[test]
fn path_overrides_go_in_every_spelling() {
    let mut req = request(&[
        ("X-Original-URL", "/admin/"),
        ("x_rewrite_url", "/admin/"),
        ("X-Rewrite-Url", "/admin/"),
        ("X-Original-Host", "kept"),
    ]);
    strip_inbound(&mut req, true);
    assert_eq!(names(&req), vec!["x-original-host"]);
}

#[test]
fn a_mapped_name_goes_only_where_its_set_applies() {
    let mut req = request(&[("Origin", "https://a.example"), ("X-CF", "x")]);
    strip_inbound(&mut req, false);
    strip_mapped(&mut req, &StripSet::default());
    assert_eq!(
        names(&req),
        vec!["origin", "x-cf"],
        "another comune's mapping is not applied here"
    );
}

#[test]
fn forwarding_headers_go_unless_the_peer_is_trusted() {
    let spoof = [
        ("Forwarded", "for=1.2.3.4"),
        ("X-Forwarded-For", "1.2.3.4"),
        ("X_Forwarded_For", "1.2.3.4"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Real-IP", "1.2.3.4"),
    ];
    let mut req = request(&spoof);
    strip_inbound(&mut req, false);
    assert!(names(&req).is_empty(), "{:?}", names(&req));
    let mut req = request(&spoof);
    strip_inbound(&mut req, true);
    assert_eq!(names(&req).len(), 6);
}

#[test]
fn connection_nominations_are_removed_and_only_safe_tokens_stay() {
    let mut req = request(&[
        ("Connection", "keep-alive, X-Trace, x-forwarded-for"),
        ("Connection", "Upgrade"),
        ("X-Trace", "1"),
        ("Upgrade", "websocket"),
    ]);
    strip_inbound(&mut req, true);
    assert_eq!(names(&req), vec!["connection", "upgrade"]);
    assert_eq!(
        req.headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"keep-alive, Upgrade"[..])
    );
}

#[test]
fn forwarded_headers_are_set_or_appended() {
    let ip: IpAddr = "192.0.2.7".parse().expect("ip");
    let host = HeaderValue::from_static("servizi.capannori.example");
    let mut up = request(&[]);
    set_forwarded(&mut up, Some(ip), "http", Some(&host)).expect("set");
    assert_eq!(up.headers["x-forwarded-for"], "192.0.2.7");
    assert_eq!(up.headers["x-forwarded-proto"], "http");
    assert_eq!(up.headers["x-forwarded-host"], "servizi.capannori.example");
    let mut up = request(&[
        ("X-Forwarded-For", "203.0.113.1"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("X-Forwarded-Proto", "https"),
    ]);
    set_forwarded(&mut up, Some(ip), "http", Some(&host)).expect("set");
    assert_eq!(
        up.headers["x-forwarded-for"],
        "203.0.113.1, 10.0.0.1, 192.0.2.7"
    );
    assert_eq!(up.headers["x-forwarded-proto"], "https");
}

#[test]
fn trust_is_by_network() {
    let nets: Vec<IpNet> = vec![
        "10.0.0.0/8".parse().expect("net"),
        "::1/128".parse().expect("net"),
    ];
    assert!(is_trusted(Some("10.1.2.3".parse().expect("ip")), &nets));
    assert!(is_trusted(Some("::1".parse().expect("ip")), &nets));
    assert!(!is_trusted(Some("192.168.1.1".parse().expect("ip")), &nets));
    assert!(!is_trusted(None, &nets));
}

#[test]
fn client_address_headers_come_only_from_trusted_proxies() {
    let spoofed: Vec<(&str, &str)> = CLIENT_ADDRESS
        .iter()
        .map(|n| (*n, "6.6.6.6"))
        .chain([("True_Client_IP", "6.6.6.6"), ("Accept", "*/*")])
        .collect();
    let mut from_client = request(&spoofed);
    strip_inbound(&mut from_client, false);
    assert_eq!(names(&from_client), vec!["accept"]);
    let mut from_proxy = request(&spoofed);
    strip_inbound(&mut from_proxy, true);
    assert_eq!(names(&from_proxy).len(), CLIENT_ADDRESS.len() + 2);
}
