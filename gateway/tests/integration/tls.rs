//! HTTPS terminated by varco (`[server.tls]`): a certificate per SNI name, TLS 1.1 refused, HSTS,
//! the redirecting HTTP listener with ACME challenges, certificates reloaded under load without a
//! failed request, and an upstream with a certificate varco does not trust refused with a 502.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};

use crate::harness::*;
use crate::tls_kit::{HttpsFileServer, Issued, Serve, TestCa};

pub(crate) struct TlsGateway {
    pub(crate) gw: Gateway,
    pub(crate) tls_port: u16,
    redirect_port: u16,
    pub(crate) ca: TestCa,
}

pub(crate) fn write_pair(dir: &std::path::Path, name: &str, issued: &Issued) {
    std::fs::write(
        dir.join(format!("{name}.pem")),
        issued.cert.to_pem().expect("pem"),
    )
    .expect("cert");
    std::fs::write(
        dir.join(format!("{name}.key")),
        issued.key.private_key_to_pem_pkcs8().expect("pem"),
    )
    .expect("key");
}

/// A gateway whose portal is `https://portal.localhost:<tls>`, with a.test's own certificate, a
/// public service at a.test/pub/ and `extra_policy` services.
fn tls_gateway(extra: Vec<Svc>) -> TlsGateway {
    let none = tempfile::tempdir().expect("tempdir");
    tls_gateway_with_files(extra, none.path())
}

/// As [`tls_gateway`], with every file of `files` copied next to the configuration first.
fn tls_gateway_with_files(extra: Vec<Svc>, files: &std::path::Path) -> TlsGateway {
    tls_gateway_configured(extra, files, "")
}

/// As [`tls_gateway_with_files`], with `more` appended to the main configuration.
pub(crate) fn tls_gateway_configured(
    extra: Vec<Svc>,
    files: &std::path::Path,
    more: &str,
) -> TlsGateway {
    let be = echo("tls");
    let mut services = vec![Svc::public("pub", "a.test", "/pub/", be)];
    services.extend(extra);
    let (dir, port, admin) = write_config_with("", &one_comune(&services), |d| {
        for f in std::fs::read_dir(files).expect("files").flatten() {
            std::fs::copy(f.path(), d.join(f.file_name())).expect("copy");
        }
    });
    let (tls_port, redirect_port) = (free_port(), free_port());
    let ca = TestCa::new("varco test CA");
    std::fs::create_dir(dir.path().join("tls")).expect("mkdir");
    std::fs::create_dir(dir.path().join("acme")).expect("mkdir");
    write_pair(
        &dir.path().join("tls"),
        "default",
        &ca.server(&["portal.localhost", "cns.portal.localhost"]),
    );
    write_pair(&dir.path().join("tls"), "a", &ca.server(&["a.test"]));
    let main = dir.path().join("varco.toml");
    let text = std::fs::read_to_string(&main).expect("read").replace(
        &format!("public_url = \"http://portal.localhost:{port}\""),
        &format!("public_url = \"https://portal.localhost:{tls_port}\""),
    );
    let text = format!(
        "{text}\n[server.tls]\nlisten = \"127.0.0.1:{tls_port}\"\ndefault = {{ cert = \"tls/default.pem\", key = \"tls/default.key\" }}\ncerts = [{{ hosts = [\"a.test\"], cert = \"tls/a.pem\", key = \"tls/a.key\" }}]\nhttp_redirect = \"127.0.0.1:{redirect_port}\"\nacme_challenge_dir = \"acme\"\n{more}"
    );
    std::fs::write(&main, text).expect("write");
    let gw = Gateway::serve(dir, port, admin);
    // Each listener is its own pingora service, started one after the other: wait for both.
    let deadline = Instant::now() + Duration::from_secs(10);
    for (listener, name) in [(tls_port, "TLS"), (redirect_port, "HTTP redirect")] {
        while TcpStream::connect(("127.0.0.1", listener)).is_err() {
            assert!(Instant::now() < deadline, "no {name} listener");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    TlsGateway {
        gw,
        tls_port,
        redirect_port,
        ca,
    }
}

impl TlsGateway {
    /// An HTTPS client that trusts the test CA only and resolves the test hosts to varco.
    pub(crate) fn client(&self) -> reqwest::Client {
        self.client_with(None)
    }

    /// As [`TlsGateway::client`], presenting `identity` when a server asks for a certificate.
    pub(crate) fn client_with(&self, identity: Option<reqwest::Identity>) -> reqwest::Client {
        let addr: SocketAddr = ([127, 0, 0, 1], self.tls_port).into();
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(&self.ca.cert.to_pem().expect("pem")).expect("ca"),
            );
        for h in [
            "portal.localhost",
            "cns.portal.localhost",
            "a.test",
            "b.test",
        ] {
            b = b.resolve(h, addr);
        }
        if let Some(identity) = identity {
            b = b.identity(identity);
        }
        b.build().expect("client")
    }

    pub(crate) fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.tls_port)
    }

    /// The certificate varco presents for `sni` (none: no SNI), with TLS between `min` and `max`.
    fn handshake(
        &self,
        sni: Option<&str>,
        versions: (SslVersion, SslVersion),
    ) -> Result<openssl::x509::X509, String> {
        let mut b = SslConnector::builder(SslMethod::tls()).expect("connector");
        b.set_verify(SslVerifyMode::NONE);
        // Let the client offer old protocols, so that a refusal is the server's.
        b.set_security_level(0);
        let _ = b.set_cipher_list("DEFAULT@SECLEVEL=0");
        b.set_min_proto_version(Some(versions.0)).expect("min");
        b.set_max_proto_version(Some(versions.1)).expect("max");
        let connector = b.build();
        let tcp = TcpStream::connect(("127.0.0.1", self.tls_port)).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut cfg = connector.configure().expect("configure");
        cfg.set_use_server_name_indication(sni.is_some());
        cfg.set_verify_hostname(false);
        let tls = cfg
            .connect(sni.unwrap_or("ignored"), tcp)
            .map_err(|e| e.to_string())?;
        tls.ssl()
            .peer_certificate()
            .ok_or_else(|| "no certificate".to_string())
    }
}

fn common_name(cert: &openssl::x509::X509) -> String {
    cert.subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
        .unwrap_or_default()
}

#[test]
fn each_host_gets_its_certificate_and_old_protocols_are_refused() {
    let t = tls_gateway(Vec::new());
    let tls12 = (SslVersion::TLS1_2, SslVersion::TLS1_2);
    assert_eq!(
        common_name(&t.handshake(Some("a.test"), tls12).expect("a.test")),
        "a.test"
    );
    assert_eq!(
        common_name(
            &t.handshake(Some("portal.localhost"), tls12)
                .expect("portal")
        ),
        "portal.localhost"
    );
    assert_eq!(
        common_name(&t.handshake(Some("unknown.test"), tls12).expect("default")),
        "portal.localhost",
        "a name no entry lists gets the default"
    );
    assert_eq!(
        common_name(&t.handshake(None, tls12).expect("no SNI")),
        "portal.localhost"
    );
    let tls13 = (SslVersion::TLS1_3, SslVersion::TLS1_3);
    assert!(t.handshake(Some("a.test"), tls13).is_ok(), "TLS 1.3");
    for old in [SslVersion::TLS1_1, SslVersion::TLS1] {
        let refused = t.handshake(Some("a.test"), (old, old));
        let e = refused.expect_err("TLS 1.1 and 1.0 are refused");
        // The server's alert (70, protocol_version), not a client that could not try.
        assert!(e.contains("alert protocol version"), "{e}");
    }

    // HTTPS answers carry HSTS, proxied or varco's own; the cookies are __Host- ones.
    rt().block_on(async {
        let c = t.client();
        let r = c
            .get(t.url("a.test", "/pub/x"))
            .send()
            .await
            .expect("https");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
        let r = c
            .get(t.url("a.test", "/nowhere"))
            .send()
            .await
            .expect("https");
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
        let r = c
            .get(t.url(
                "portal.localhost",
                "/.sso/login?idp=https%3A%2F%2Flocalhost%3A8443",
            ))
            .send()
            .await
            .expect("https");
        assert_eq!(r.status(), 302);
        let cookie = r.headers()["set-cookie"].to_str().expect("ascii");
        // The login binding is scoped to /.sso/, so __Secure- (a __Host- cookie needs Path=/).
        assert!(
            cookie.starts_with("__Secure-varco_login=") && cookie.contains("; Secure"),
            "{cookie}"
        );
        // The plain listener (behind a balancer, say) does not claim HSTS.
        let plain =
            t.gw.client()
                .get(t.gw.url("a.test", "/pub/x"))
                .send()
                .await
                .expect("http");
        assert!(plain.headers().get("strict-transport-security").is_none());
    });
}

#[test]
fn the_http_listener_only_redirects_and_serves_acme_challenges() {
    let t = tls_gateway(Vec::new());
    std::fs::write(t.gw.dir.path().join("acme/tok3n_-A"), "tok3n_-A.thumbprint").expect("write");
    let get = |host: &str, path: &str| {
        raw(
            t.redirect_port,
            format!(
                "GET {path} HTTP/1.1\r\nHost: {host}:{}\r\nConnection: close\r\n\r\n",
                t.redirect_port
            )
            .as_bytes(),
        )
    };
    let r = get("a.test", "/pub/x?y=1&z=%2F");
    assert!(r.starts_with("HTTP/1.1 308"), "{r}");
    assert!(
        r.contains(&format!(
            "location: https://a.test:{}/pub/x?y=1&z=%2F\r\n",
            t.tls_port
        )),
        "{r}"
    );
    assert!(get("portal.localhost", "/").starts_with("HTTP/1.1 308"));
    assert!(
        get("evil.test", "/").starts_with("HTTP/1.1 404"),
        "no redirect for a host varco does not serve"
    );
    let challenge = get("a.test", "/.well-known/acme-challenge/tok3n_-A");
    assert!(
        challenge.starts_with("HTTP/1.1 200") && challenge.ends_with("tok3n_-A.thumbprint"),
        "{challenge}"
    );
    for bad in [
        "/.well-known/acme-challenge/missing",
        "/.well-known/acme-challenge/..%2Fvarco.toml",
        "/.well-known/acme-challenge/../varco.toml",
        "/.well-known/acme-challenge/",
    ] {
        assert!(get("a.test", bad).starts_with("HTTP/1.1 404"), "{bad}");
    }
}

#[test]
fn certificates_reload_under_load_without_a_failed_request() {
    let t = tls_gateway(Vec::new());
    let before = t
        .handshake(Some("a.test"), (SslVersion::TLS1_2, SslVersion::TLS1_3))
        .expect("a.test");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let client = t.client();
    let url = t.url("a.test", "/pub/load");
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            rt().block_on(async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match client.get(&url).send().await {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    // A renewal as certbot writes it: new files in place, then a reload (the watcher sees them).
    let renewed = t.ca.server(&["a.test"]);
    write_pair(&t.gw.dir.path().join("tls"), "a", &renewed);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = t
            .handshake(Some("a.test"), (SslVersion::TLS1_2, SslVersion::TLS1_3))
            .expect("a.test");
        if now.serial_number().to_bn().expect("bn")
            == renewed.cert.serial_number().to_bn().expect("bn")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not picked up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load");
    assert_ne!(
        before.serial_number().to_bn().expect("bn"),
        renewed.cert.serial_number().to_bn().expect("bn")
    );
    assert!(
        ok.load(Ordering::Relaxed) > 20,
        "{} requests",
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request failed during the reload"
    );

    // A key that does not match its certificate (half a renewal) is refused whole: the renewed
    // certificate keeps serving.
    let other = t.ca.server(&["a.test"]);
    std::fs::write(
        t.gw.dir.path().join("tls/a.key"),
        other.key.private_key_to_pem_pkcs8().expect("pem"),
    )
    .expect("write");
    std::thread::sleep(Duration::from_secs(1));
    let still = t
        .handshake(Some("a.test"), (SslVersion::TLS1_2, SslVersion::TLS1_3))
        .expect("a.test");
    assert_eq!(
        still.serial_number().to_bn().expect("bn"),
        renewed.cert.serial_number().to_bn().expect("bn")
    );
}

#[test]
fn an_upstream_whose_certificate_varco_does_not_trust_gets_a_502() {
    let stranger = TestCa::new("not in any trust store");
    let upstream = HttpsFileServer::start(
        stranger.server(&["localhost"]),
        Serve::Body(b"secret".to_vec()),
    );
    let mut svc = Svc::public(
        "tls-be",
        "a.test",
        "/be/",
        ([127, 0, 0, 1], upstream.port).into(),
    );
    svc.upstream = format!("https://localhost:{}", upstream.port);
    let t = tls_gateway(vec![svc]);
    rt().block_on(async {
        let r = t
            .client()
            .get(t.url("a.test", "/be/x"))
            .send()
            .await
            .expect("https");
        assert_eq!(r.status(), 502);
        let body = r.text().await.expect("body");
        assert!(!body.contains("secret"));
    });
    assert_eq!(
        upstream.hits.load(Ordering::Relaxed),
        0,
        "no request reached it"
    );
}

#[test]
fn an_upstream_is_reached_with_its_own_ca_sni_host_and_client_certificate() {
    let upstream_ca = TestCa::new("comune's internal CA");
    let clients = TestCa::new("clients of the tributi back-end");
    // The back-end's certificate names an internal host, not the address varco connects to, and
    // it takes only clients with a certificate of its own CA.
    let backend = HttpsFileServer::start_with(
        upstream_ca.server(&["tributi.internal"]),
        Serve::Body(b"tributi".to_vec()),
        Some(&clients.cert),
    );
    let at = ([127, 0, 0, 1], backend.port).into();
    let mut with_cert = Svc::public("mtls", "a.test", "/mtls/", at);
    with_cert.upstream = format!("https://127.0.0.1:{}", backend.port);
    with_cert.extra = "upstream_ca = \"../upstream-ca.pem\"\nupstream_sni = \"tributi.internal\"\nupstream_host = \"tributi.internal:8443\"\nupstream_client_cert = \"../client.pem\"\nupstream_client_key = \"../client.key\"";
    let mut without_cert = Svc::public("nocert", "a.test", "/nocert/", at);
    without_cert.upstream = format!("https://127.0.0.1:{}", backend.port);
    without_cert.extra =
        "upstream_ca = \"../upstream-ca.pem\"\nupstream_sni = \"tributi.internal\"";
    let mut wrong_name = Svc::public("wrongname", "a.test", "/wrongname/", at);
    wrong_name.upstream = format!("https://127.0.0.1:{}", backend.port);
    wrong_name.extra = "upstream_ca = \"../upstream-ca.pem\"\nupstream_sni = \"anagrafe.internal\"\nupstream_client_cert = \"../client.pem\"\nupstream_client_key = \"../client.key\"";
    // The files must exist before the configuration loads: write them next to it first.
    let staging = tempfile::tempdir().expect("tempdir");
    upstream_ca.write_pem(&staging.path().join("upstream-ca.pem"));
    write_pair(staging.path(), "client", &clients.client("varco"));
    let t = tls_gateway_with_files(vec![with_cert, without_cert, wrong_name], staging.path());
    rt().block_on(async {
        let c = t.client();
        let r = c
            .get(t.url("a.test", "/mtls/x"))
            .send()
            .await
            .expect("https");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("body"), "tributi");
        let head = backend.last_head.lock().expect("head").to_ascii_lowercase();
        assert!(
            head.contains("\r\nhost: tributi.internal:8443\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nx-forwarded-host: a.test:"), "{head}");
        let hits = backend.hits.load(Ordering::Relaxed);
        // Without the client certificate the back-end refuses the handshake; with a name its
        // certificate does not carry, varco refuses it.
        for path in ["/nocert/x", "/wrongname/x"] {
            let r = c.get(t.url("a.test", path)).send().await.expect("https");
            assert_eq!(r.status(), 502, "{path}");
        }
        assert_eq!(
            backend.hits.load(Ordering::Relaxed),
            hits,
            "no request got through"
        );
    });
}
