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

    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
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
