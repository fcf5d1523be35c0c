//! Faults a deployment meets, against a real gateway: a back-end that resets every connection,
//! the shared store going away and coming back, an IdP metadata file broken at a reload, and a
//! full disk under the audit trail. (A down or slow back-end: `failures.rs`; a broken policy
//! pushed under load: `reload.rs`.)

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::citizen::*;
use crate::harness::*;

/// A back-end that accepts connections and closes them at once, or after half an answer.
fn resetting_back_end(half_answer: bool) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = s.read(&mut buf);
            if half_answer {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Len");
            }
            drop(s);
        }
    });
    addr
}

#[test]
fn a_back_end_that_resets_every_connection_gets_a_502_at_once_and_nothing_sticks() {
    let be = echo("faults");
    let reset = Svc {
        upstream: format!("http://{}", resetting_back_end(false)),
        ..Svc::public("reset", "a.test", "/reset/", be)
    };
    let half = Svc {
        upstream: format!("http://{}", resetting_back_end(true)),
        ..Svc::public("half", "a.test", "/half/", be)
    };
    let gw = Gateway::start(
        "",
        &one_comune(&[reset, half, Svc::public("ok", "a.test", "/ok/", be)]),
    );
    rt().block_on(async {
        // Forty clients, made before the clock starts: building one (its TLS roots) takes longer
        // than the gateway's answer, and the time limit is the gateway's.
        let clients: Vec<_> = (0..40)
            .map(|i| {
                let path = if i % 2 == 0 { "/reset/x" } else { "/half/x" };
                (gw.client(), gw.url("a.test", path))
            })
            .collect();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (c, url) in clients {
            tasks.push(tokio::spawn(async move {
                c.get(url).send().await.map(|r| r.status().as_u16())
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task").expect("an answer"), 502);
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // The gateway is none the worse for it.
        let r = gw
            .client()
            .get(gw.url("a.test", "/ok/"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    });
}

fn readiness(gw: &Gateway) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", gw.admin)).expect("admin");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn redis_down_and_back_readiness_and_recovery_without_a_restart() {
    let mut redis = RedisServer::start();
    let be = echo("faults-redis");
    let url = redis.url();
    let gw = Gateway::start_edited("", &pub_and_tari_policies(be), move |text, _| {
        format!("{text}\n[session]\nstore = \"{url}\"\n")
    });
    assert_eq!(readiness(&gw), 200);
    let mut b = Browser::new(&gw);
    rt().block_on(async {
        assert_eq!(b.visit(&gw.url("a.test", "/tari/")).await.status, 200);
        redis.kill();
    });
    assert_eq!(readiness(&gw), 503, "not ready without the store");
    rt().block_on(async {
        assert_eq!(b.get(&gw.url("a.test", "/tari/")).await.status(), 503);
        assert_eq!(b.get(&gw.url("a.test", "/pub/")).await.status(), 200);
        assert_eq!(b.get(&gw.url("portal.localhost", "/")).await.status(), 200);
    });
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while readiness(&gw) != 200 {
        assert!(Instant::now() < deadline, "readiness did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
    rt().block_on(async {
        // An empty Redis: the old session is gone, a new login works, no restart needed.
        let mut b = Browser::new(&gw);
        let page = b.visit(&gw.url("a.test", "/tari/")).await;
        assert_eq!(page.status, 200, "{}", page.body);
    });
}

#[test]
fn an_idp_metadata_file_broken_at_a_reload_keeps_its_last_good_version() {
    let be = echo("faults-metadata");
    let gw = Gateway::start("", &one_comune(&[Svc::public("pub", "a.test", "/", be)]));
    let original = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../idp-bridge/test_vectors/spid-sp-test-idp.xml");
    let metadata = gw.config_path().with_file_name("idp.xml");
    std::fs::copy(&original, &metadata).expect("copy");
    let main = std::fs::read_to_string(gw.config_path()).expect("read");
    std::fs::write(
        gw.config_path(),
        main.replace(&original.display().to_string(), "idp.xml"),
    )
    .expect("write");
    // The file was read at start from the original; from now on this copy counts. The watcher
    // sees the main file change and reloads: let it, and let it settle, so that no reload of its
    // own runs between the ones below (each would count a kept file again).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gw.shared.current().generation < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher did not reload"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(600));
    for broken in [
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"https://localhost:8443\" validUntil=\"2020-01-01T00:00:00Z\"/>",
        "not XML at all",
    ] {
        std::fs::write(&metadata, broken).expect("write");
        let outcome = rt().block_on(gateway::ops::reload::reload(&gw.shared, "test"));
        assert!(
            matches!(outcome, gateway::ops::reload::Outcome::Swapped(_)),
            "the rest of the configuration still reloads: {outcome:?}"
        );
        // Logins with that IdP still start.
        let r = rt().block_on(async {
            gw.client()
                .get(gw.url(
                    "portal.localhost",
                    &format!("/.sso/login?idp={}", enc(IDP)),
                ))
                .send()
                .await
                .expect("send")
        });
        assert_eq!(r.status(), 302);
        assert!(location_of(&r).starts_with(IDP), "{}", location_of(&r));
    }
    assert!(gw
        .metrics()
        .lines()
        .any(|l| l.starts_with("varco_security_events_total")
            && l.contains("metadata_kept")
            && l.ends_with(" 2")));
}

/// A child process that is stopped when the test ends, passed or failed.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `varco run` in a mount namespace of its own where `dir/audit` is a small tmpfs (no root
/// needed: an unprivileged user namespace maps the caller to root there). Returns the child.
fn run_with_small_audit_disk(dir: &std::path::Path) -> Stopped {
    let audit = dir.join("audit");
    std::fs::create_dir_all(&audit).expect("mkdir");
    let script = format!(
        "mount -t tmpfs -o size=256k tmpfs '{}' && exec '{}' run --config '{}'",
        audit.display(),
        env!("CARGO_BIN_EXE_varco"),
        dir.join("varco.toml").display()
    );
    Stopped(
        Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare (util-linux) runs varco in its own mount namespace"),
    )
}

#[test]
fn a_full_disk_under_the_audit_trail_turns_logins_into_a_503_and_recovers() {
    let be = echo("faults-disk");
    let (dir, port, admin) = write_config(
        "",
        &one_comune(&[Svc::public("pub", "a.test", "/pub/", be)]),
    );
    let mut varco = run_with_small_audit_disk(dir.path());
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = varco.0.try_wait() {
            panic!("varco did not start in its namespace: {status} (are unprivileged user namespaces on?)");
        }
        assert!(Instant::now() < deadline, "varco did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The trail's disk, as varco sees it.
    let audit = std::path::PathBuf::from(format!("/proc/{}/root", varco.0.id()))
        .join(dir.path().strip_prefix("/").expect("absolute"))
        .join("audit");
    let filler = audit.join("filler");
    {
        let mut f = std::fs::File::create(&filler).expect("filler on the tmpfs");
        let block = [0u8; 4096];
        while f.write_all(&block).and_then(|()| f.sync_data()).is_ok() {}
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .resolve("portal.localhost", ([127, 0, 0, 1], port).into())
        .resolve("a.test", ([127, 0, 0, 1], port).into())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = |host: &str, path: &str| format!("http://{host}:{port}{path}");
    let login = url("portal.localhost", &format!("/.sso/login?idp={}", enc(IDP)));
    rt().block_on(async {
        // A record or two may still fit in the trail's last page; then no record, no login.
        let mut refused = None;
        for _ in 0..8 {
            let r = client.get(&login).send().await.expect("send");
            match r.status().as_u16() {
                302 => continue,
                503 => {
                    refused = Some(r.text().await.expect("page"));
                    break;
                }
                other => panic!("login start answered {other}"),
            }
        }
        let page = refused.expect("a full disk stops logins");
        assert!(page.contains("momentaneamente non disponibile"), "{page}");
        for (host, path) in [
            ("a.test", "/pub/"),
            ("portal.localhost", "/"),
            ("portal.localhost", "/catalog.json"),
        ] {
            let r = client.get(url(host, path)).send().await.expect("send");
            assert_eq!(r.status(), 200, "{path} keeps working");
        }
        // Room again: logins go on, without a restart.
        std::fs::remove_file(&filler).expect("remove filler");
        let r = client.get(&login).send().await.expect("send");
        assert_eq!(r.status(), 302);
    });
    let mut metrics = String::new();
    TcpStream::connect(("127.0.0.1", admin))
        .and_then(|mut s| {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")?;
            s.read_to_string(&mut metrics)
        })
        .expect("metrics");
    assert!(metrics.contains("audit_unavailable"), "{metrics}");
    // The failed write left no torn record: the chain is intact.
    let copy = dir.path().join("trail-copy.log");
    std::fs::copy(audit.join("saml-audit.log"), &copy).expect("copy the trail");
    let out = Command::new(env!("CARGO_BIN_EXE_varco"))
        .args(["audit", "verify"])
        .arg(&copy)
        .arg("--key")
        .arg(dir.path().join("audit.key"))
        .output()
        .expect("verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verified = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(verified.contains("chain intact"), "{verified}");
    drop(varco);
}
