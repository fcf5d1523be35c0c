//! Sessions over Redis Sentinel (`session.store = "redis+sentinel://…"`): a primary, a replica
//! and a Sentinel (Debian's `redis-server`, as `redis-sentinel`), the primary killed while a
//! citizen keeps using a service. The session survives, new logins work, and the test reports
//! how long requests failed.

use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::citizen::Browser;
use crate::harness::*;

/// One redis-server process (a node or a Sentinel), killed on drop.
struct Node {
    port: u16,
    child: std::process::Child,
}

impl Node {
    fn start(dir: &Path, name: &str, args: &[&str], sentinel_conf: Option<String>) -> Self {
        let port = free_port();
        let mut cmd = std::process::Command::new("redis-server");
        let node_dir = dir.join(name);
        std::fs::create_dir_all(&node_dir).expect("mkdir");
        match sentinel_conf {
            Some(conf) => {
                // Sentinel rewrites its configuration file: it must be its own, writable.
                let path = node_dir.join("sentinel.conf");
                std::fs::write(
                    &path,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {}\n{conf}",
                        node_dir.display()
                    ),
                )
                .expect("write");
                cmd.arg(&path).arg("--sentinel");
            }
            None => {
                cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--save", "", "--appendonly", "no"])
                    .arg("--dir")
                    .arg(&node_dir)
                    .args(args);
            }
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server (apt-get install redis-server redis-sentinel): {e}"
                )
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{name} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn query(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
#[allow(clippy::print_stderr)] // the failover's figures are this test's report
fn sessions_and_logins_survive_a_primary_failover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut primary = Node::start(dir.path(), "primary", &[], None);
    let replica = Node::start(
        dir.path(),
        "replica",
        &["--replicaof", "127.0.0.1", &primary.port.to_string()],
        None,
    );
    let sentinel = Node::start(
        dir.path(),
        "sentinel",
        &[],
        Some(format!(
            "sentinel monitor varco 127.0.0.1 {} 1\nsentinel down-after-milliseconds varco 1000\nsentinel failover-timeout varco 5000\nsentinel parallel-syncs varco 1\n",
            primary.port
        )),
    );
    wait_for("the replica to sync", Duration::from_secs(20), || {
        replica
            .query(&["INFO", "replication"])
            .contains("master_link_status:up")
    });
    wait_for(
        "Sentinel to see the primary",
        Duration::from_secs(20),
        || {
            sentinel
                .query(&["SENTINEL", "get-master-addr-by-name", "varco"])
                .contains(&primary.port.to_string())
        },
    );

    let be = echo("sentinel");
    let store = format!(
        "store = \"redis+sentinel://127.0.0.1:{}/varco\"",
        sentinel.port
    );
    let gw = Gateway::start_edited("", &pub_and_tari_policies(be), move |text, _| {
        format!("{text}\n[session]\n{store}\n")
    });
    let mut b = Browser::new(&gw);
    let url = gw.url("a.test", "/tari/avviso");
    let landing = rt().block_on(b.visit(&url));
    assert_eq!(landing.status, 200, "{}", landing.body);
    let cookie = b
        .cookie("a.test", "varco_session")
        .expect("a session on a.test");
    // Let the replica have the session before the primary goes.
    wait_for(
        "the session on the replica",
        Duration::from_secs(10),
        || {
            replica
                .query(&["DBSIZE"])
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
                > 0
        },
    );

    // The citizen keeps using the service while the primary dies.
    let log: Arc<Mutex<Vec<(Duration, u16)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Instant::now();
    let load = {
        let (log, stop, client, url) = (log.clone(), stop.clone(), gw.client(), url.clone());
        std::thread::spawn(move || {
            rt().block_on(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && start.elapsed() < Duration::from_secs(60)
                {
                    let status = client
                        .get(&url)
                        .header("cookie", format!("varco_session={cookie}"))
                        .send()
                        .await
                        .map_or(0, |r| r.status().as_u16());
                    log.lock().expect("log").push((start.elapsed(), status));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let killed_at = start.elapsed();
    primary.kill();
    // Until requests have succeeded again for two seconds.
    wait_for(
        "the service to answer again",
        Duration::from_secs(40),
        || {
            let log = log.lock().expect("log");
            let last_failure = log.iter().rev().find(|(_, s)| *s != 200).map(|(t, _)| *t);
            match last_failure {
                Some(t) => log
                    .last()
                    .is_some_and(|(now, s)| *s == 200 && *now > t + Duration::from_secs(2)),
                None => start.elapsed() > killed_at + Duration::from_secs(10),
            }
        },
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().expect("load");
    let log = log.lock().expect("log").clone();
    let after: Vec<&(Duration, u16)> = log.iter().filter(|(t, _)| *t >= killed_at).collect();
    let failed: Vec<&&(Duration, u16)> = after.iter().filter(|(_, s)| *s != 200).collect();
    let window = match (failed.first(), failed.last()) {
        (Some(first), Some(last)) => last.0 - first.0,
        _ => Duration::ZERO,
    };
    eprintln!(
        "sentinel failover: {} requests after the kill, {} failed ({:?}), over {:.1} s; service back {:.1} s after the kill",
        after.len(),
        failed.len(),
        failed.iter().map(|(_, s)| *s).collect::<std::collections::BTreeSet<_>>(),
        window.as_secs_f64(),
        failed.last().map_or(0.0, |l| (l.0 - killed_at).as_secs_f64()),
    );
    assert!(
        failed.iter().all(|(_, s)| *s == 503),
        "a store that cannot answer gives 503, never a login redirect or a 500: {failed:?}"
    );
    assert!(
        window < Duration::from_secs(20),
        "the failover took {window:?}"
    );
    assert!(
        sentinel
            .query(&["SENTINEL", "get-master-addr-by-name", "varco"])
            .contains(&replica.port.to_string()),
        "Sentinel promoted the replica"
    );

    // The session survived: the same cookie still reaches the service as the same citizen; a
    // new login works on the new primary.
    let again = rt().block_on(async {
        gw.client()
            .get(gw.url("a.test", "/tari/dopo"))
            .header(
                "cookie",
                format!(
                    "varco_session={}",
                    b.cookie("a.test", "varco_session").expect("cookie")
                ),
            )
            .send()
            .await
            .expect("send")
    });
    assert_eq!(again.status(), 200);
    let mut fresh = Browser::new(&gw);
    let landing = rt().block_on(fresh.visit(&gw.url("a.test", "/tari/nuovo")));
    assert_eq!(landing.status, 200, "{}", landing.body);
}
