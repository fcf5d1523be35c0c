//! The `varco` binary as ops run it: signals, and trace export to an OTLP collector.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

/// A minimal OTLP/HTTP collector: records the path and size of every POST.
/// (path, body length) of every request the collector received.
type Posts = Arc<Mutex<Vec<(String, usize)>>>;

fn collector() -> (u16, Posts) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = rt()
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let s = seen.clone();
    rt().spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    s.lock().expect("lock").push((path, len));
                    buf.drain(..end + 4 + len);
                    if conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

fn get(port: u16, host: &str, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn wait_exit(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

#[test]
fn sighup_reloads_sigterm_stops_and_traces_reach_the_collector() {
    let be = echo("process");
    let (otlp, seen) = collector();
    let extra = format!("\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:{otlp}/v1/traces\"\n");
    // [telemetry] must come after the [server] keys: append it at the end of the file.
    let (dir, port, admin) = write_config(
        "",
        &[(
            "a.toml",
            policy_toml("c_a001", "046001", &[Svc::public("pub", "a.test", "/", be)]),
        )],
    );
    let main = dir.path().join("varco.toml");
    let mut text = std::fs::read_to_string(&main).expect("read");
    text.push_str(&extra);
    std::fs::write(&main, text).expect("write");

    let mut child = Command::new(env!("CARGO_BIN_EXE_varco"))
        .args(["run", "--config", main.to_str().expect("utf8")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn varco");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err()
        || TcpStream::connect(("127.0.0.1", admin)).is_err()
    {
        assert!(Instant::now() < deadline, "varco did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(get(port, "a.test", "/x").starts_with("HTTP/1.1 200"));

    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = get(admin, "127.0.0.1", "/metrics");
        if metrics.contains("varco_policy_generation{otel_scope_name=\"varco\"} 2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(get(port, "a.test", "/y").starts_with("HTTP/1.1 200"));

    // A keep-alive connection opened before SIGTERM...
    let mut kept = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    kept.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    // ...is still served while varco drains, and told to close; readiness fails meanwhile, so
    // that a load balancer moves citizens elsewhere.
    std::thread::sleep(Duration::from_millis(300));
    let readyz = get(admin, "127.0.0.1", "/readyz");
    assert!(readyz.starts_with("HTTP/1.1 503"), "{readyz}");
    write!(kept, "GET /z HTTP/1.1\r\nHost: a.test\r\n\r\n").expect("write");
    let mut answer = String::new();
    let _ = kept.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
    assert_eq!(
        wait_exit(&mut child),
        Some(0),
        "varco did not stop cleanly on SIGTERM"
    );
    let posts = seen.lock().expect("lock").clone();
    assert!(
        posts
            .iter()
            .any(|(path, len)| path == "/v1/traces" && *len > 0),
        "no spans exported: {posts:?}"
    );
}

/// What the load saw: successes, and the first failures with their reasons.
#[derive(Default)]
struct Tally {
    ok: std::sync::atomic::AtomicU64,
    ok_after_handover: std::sync::atomic::AtomicU64,
    failed: Mutex<Vec<String>>,
}

/// `varco run --upgrade` takes over a running varco under keep-alive load (public pages,
/// authenticated pages with a session in Redis, login starts that write the audit trail):
/// no request fails, the old process exits by itself, and the audit trail is one unbroken
/// chain written by both.
#[test]
fn an_upgrade_under_load_fails_no_request() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let redis = RedisServer::start();
    let be = echo("upgrade");
    let store = format!("\n[session]\nstore = \"{}\"\n", redis.url());
    let s1 = store.clone();
    // An in-process instance on the same Redis, to log in through (the scripted IdP).
    let door = Gateway::start_edited("", &pub_and_tari_policies(be), move |text, _| {
        format!("{text}{s1}")
    });
    let public = door.port;
    let (dir, port, admin) = write_config("", &pub_and_tari_policies(be));
    let main = dir.path().join("varco.toml");
    let text = std::fs::read_to_string(&main).expect("read").replace(
        &format!("public_url = \"http://portal.localhost:{port}\""),
        &format!("public_url = \"http://portal.localhost:{public}\""),
    );
    std::fs::write(&main, format!("{text}{store}")).expect("write");
    let spawn = |upgrade: bool, log: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_varco"));
        cmd.args(["run", "--config", main.to_str().expect("utf8")]);
        if upgrade {
            cmd.arg("--upgrade");
        }
        let log = std::fs::File::create(dir.path().join(log)).expect("log");
        cmd.stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn varco")
    };
    let mut old = spawn(false, "old.log");
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err()
        || TcpStream::connect(("127.0.0.1", admin)).is_err()
        || !dir.path().join("audit/varco.run/varco.pid").exists()
    {
        assert!(Instant::now() < deadline, "varco did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let session = rt().block_on(async {
        let mut b = crate::citizen::Browser::new(&door);
        assert_eq!(b.visit(&door.url("a.test", "/tari/")).await.status, 200);
        b.cookie("a.test", "varco_session").expect("session")
    });

    let stop = Arc::new(AtomicBool::new(false));
    let handed_over = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let client = || {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .resolve("a.test", addr)
            .resolve("portal.localhost", addr)
            .build()
            .expect("client")
    };
    let login = format!(
        "http://portal.localhost:{port}/.sso/login?idp={}&return_to={}",
        crate::citizen::enc(crate::citizen::IDP),
        crate::citizen::enc(&format!("http://a.test:{public}/tari/"))
    );
    let mut load = Vec::new();
    for task in 0..6 {
        let (c, stop, handed_over, tally) =
            (client(), stop.clone(), handed_over.clone(), tally.clone());
        let (session, login) = (session.clone(), login.clone());
        load.push(rt().spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                n += 1;
                // Task 0 starts a login now and then (the login limits allow about 20 a second
                // per client address); the others mix public and authenticated pages.
                // Paced, so that the tests running beside this one on 2 cores are not starved.
                tokio::time::sleep(Duration::from_millis(3)).await;
                let (what, request, want) = if task == 0 {
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    ("login", c.get(&login), 302)
                } else if n.is_multiple_of(2) {
                    ("public", c.get(format!("http://a.test:{port}/pub/x")), 200)
                } else {
                    (
                        "authenticated",
                        c.get(format!("http://a.test:{port}/tari/x"))
                            .header("cookie", format!("varco_session={session}")),
                        200,
                    )
                };
                let outcome = match request.send().await {
                    Ok(r) if r.status().as_u16() == want => {
                        let body = r.text().await;
                        match body {
                            Ok(b) if what != "authenticated" || b.contains("RSSMRA80A01H501U") => {
                                Ok(())
                            }
                            Ok(b) => Err(format!("{what}: no identity in {b}")),
                            Err(e) => Err(format!("{what}: body: {e}")),
                        }
                    }
                    Ok(r) => Err(format!("{what}: status {}", r.status())),
                    Err(e) => Err(format!("{what}: {e:?}")),
                };
                match outcome {
                    Ok(()) => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                        if handed_over.load(Ordering::Relaxed) {
                            tally.ok_after_handover.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => tally.failed.lock().expect("lock").push(e),
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let old_pid = old.id();
    let mut new = spawn(true, "new.log");
    let exit = wait_exit(&mut old);
    handed_over.store(true, Ordering::Relaxed);
    let logs = || {
        format!(
            "old:\n{}\nnew:\n{}",
            std::fs::read_to_string(dir.path().join("old.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("new.log")).unwrap_or_default()
        )
    };
    assert_eq!(
        exit,
        Some(0),
        "the old process did not exit cleanly\n{}",
        logs()
    );
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    for l in load {
        rt().block_on(l).expect("load task");
    }
    let failed = tally.failed.lock().expect("lock").clone();
    let ok = tally.ok.load(Ordering::Relaxed);
    let after = tally.ok_after_handover.load(Ordering::Relaxed);
    assert!(
        failed.is_empty(),
        "{} requests failed ({ok} succeeded): {:#?}\n{}",
        failed.len(),
        &failed[..failed.len().min(10)],
        logs()
    );
    assert!(
        ok > 200 && after > 50,
        "{ok} requests, {after} after the hand-over"
    );
    let pid =
        std::fs::read_to_string(dir.path().join("audit/varco.run/varco.pid")).expect("pid file");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("audit/varco.run"))
            .expect("run dir")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o700,
            "the hand-over socket's directory is varco's alone"
        );
    }
    assert_eq!(
        pid.trim(),
        new.id().to_string(),
        "the PID file names the new process"
    );
    assert_ne!(pid.trim(), old_pid.to_string());
    // Both processes wrote the trail, one after the other: one chain.
    let key = idp_bridge::AuditKey::load(&dir.path().join("audit.key")).expect("key");
    let verified = idp_bridge::verify_audit(&dir.path().join("audit/saml-audit.log"), Some(&key))
        .unwrap_or_else(|e| panic!("audit trail: {e}\n{}", logs()));
    assert!(verified.records > 10, "{verified:?}");
    // A second varco on the same trail, not an upgrade, is refused: two writers would fork it.
    let second = Command::new(env!("CARGO_BIN_EXE_varco"))
        .args(["run", "--config", main.to_str().expect("utf8")])
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&second.stderr).into_owned();
    assert_eq!(second.status.code(), Some(1), "{said}");
    assert!(said.contains("open in another varco process"), "{said}");
    let status = Command::new("kill")
        .args(["-TERM", &new.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert_eq!(wait_exit(&mut new), Some(0), "{}", logs());
    // Nothing left to take over.
    let orphan = Command::new(env!("CARGO_BIN_EXE_varco"))
        .args(["run", "--upgrade", "--config", main.to_str().expect("utf8")])
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&orphan.stderr).into_owned();
    assert_eq!(orphan.status.code(), Some(1), "{said}");
    assert!(said.contains("no running varco to take over"), "{said}");
}
