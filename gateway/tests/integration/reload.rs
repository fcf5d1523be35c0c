use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::*;

fn policy(upstream: std::net::SocketAddr, extra_service: Option<&'static str>) -> String {
    let mut services = vec![Svc::public("pub", "a.test", "/", upstream)];
    if let Some(id) = extra_service {
        services.push(Svc::public(id, "b.test", "/", upstream));
    }
    policy_toml("c_a001", "046001", &services)
}

/// Replaces a file the way editors and config tools do: write aside, then rename over it.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn wait_for(gw: &Gateway, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = gw;
}

#[test]
fn hot_reload_under_concurrent_load_drops_no_request() {
    let v1 = echo("v1");
    let v2 = echo("v2");
    let gw = Gateway::start("", &[("a.toml", policy(v1, None))]);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let seen_v2 = Arc::new(AtomicBool::new(false));
    let mut loads = Vec::new();
    for _ in 0..4 {
        let (c, url) = (gw.client(), gw.url("a.test", "/x"));
        let (stop, ok, failed, seen_v2) =
            (stop.clone(), ok.clone(), failed.clone(), seen_v2.clone());
        loads.push(rt().spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        let text = r.text().await.unwrap_or_default();
                        if text.contains("\"backend\": \"v2\"") {
                            seen_v2.store(true, Ordering::Relaxed);
                        }
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let path = gw.policy_path("a.toml");
    for i in 0..8 {
        std::thread::sleep(Duration::from_millis(250));
        let upstream = if i % 2 == 0 { v2 } else { v1 };
        replace(&path, &policy(upstream, Some("nuovo")));
    }
    // A broken file in the middle of the load must not replace the good snapshot.
    replace(
        &path,
        &policy(v2, Some("nuovo")).replace("level = \"public\"", "level = \"pubblico\""),
    );
    wait_for(&gw, "the refused reload", || {
        gw.metrics()
            .contains("varco_policy_reloads_total{result=\"failure\"")
    });
    std::thread::sleep(Duration::from_millis(300));
    replace(&path, &policy(v2, Some("finale")));
    let c = gw.client();
    wait_for(&gw, "the final policy", || {
        rt().block_on(async {
            c.get(gw.url("b.test", "/"))
                .send()
                .await
                .map(|r| r.status() == 200)
                .unwrap_or(false)
        }) && gw.shared.current().snapshot.comuni[0]
            .services
            .iter()
            .any(|s| s.id.as_str() == "finale")
    });
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for l in loads {
        rt().block_on(l).expect("load task");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(
        failed, 0,
        "{failed} requests failed during reloads ({ok} succeeded)"
    );
    assert!(
        ok > 100,
        "only {ok} requests were sent: the load did not overlap the reloads"
    );
    assert!(
        seen_v2.load(Ordering::Relaxed),
        "reloads never took effect under load"
    );
    assert!(
        gw.shared.current().generation >= 3,
        "generation {}",
        gw.shared.current().generation
    );
}

/// A deploy that writes a policy while varco is still starting (after the first load, before
/// the watcher runs) is served, not lost until the next edit; a file written the moment the
/// ports open is seen too.
#[test]
fn a_change_while_starting_is_not_lost() {
    let be = echo("start");
    let (dir, port, admin) = write_config("", &[("a.toml", policy(be, None))]);
    let shared = std::sync::Arc::new(
        gateway::state::Shared::load(&dir.path().join("varco.toml")).expect("load"),
    );
    replace(
        &dir.path().join("policies").join("a.toml"),
        &policy(be, Some("tardi")),
    );
    let gw = Gateway::serve_loaded(dir, port, admin, shared);
    let c = gw.client();
    let served = |host: &'static str| {
        rt().block_on(async {
            c.get(gw.url(host, "/"))
                .send()
                .await
                .map(|r| r.status() == 200)
                .unwrap_or(false)
        })
    };
    wait_for(&gw, "the policy written during start", || served("b.test"));
    assert_eq!(gw.shared.current().generation, 2);
    // Right after the ports open: one more edit, seen by the watcher.
    replace(
        &gw.policy_path("a.toml"),
        &policy(be, None).replace("a.test", "c.test"),
    );
    wait_for(&gw, "the next edit", || {
        served("c.test") && !served("b.test")
    });
}

#[test]
fn an_invalid_reload_keeps_serving_the_previous_policy() {
    let be = echo("keep");
    let gw = Gateway::start("", &[("a.toml", policy(be, None))]);
    let c = gw.client();
    let path = gw.policy_path("a.toml");
    // Two services claiming one route: refused as a whole.
    let dup = format!("{}\n{}", policy(be, Some("x")), "[[service]]\nid = \"y\"\nname = \"Y\"\ndescription = \"d\"\ncategory = \"ambiente\"\nroute = { host = \"b.test\" }\nupstream = \"http://127.0.0.1:1\"\nlevel = \"public\"\n");
    replace(&path, &dup);
    wait_for(&gw, "the refused reload", || {
        gw.metrics()
            .contains("varco_policy_reloads_total{result=\"failure\"")
    });
    assert!(gw
        .metrics()
        .contains("varco_policy_last_reload_errors{otel_scope_name=\"varco\"} 1"));
    assert_eq!(gw.shared.current().generation, 1);
    rt().block_on(async {
        assert_eq!(
            c.get(gw.url("a.test", "/"))
                .send()
                .await
                .expect("send")
                .status(),
            200
        );
        assert_eq!(
            c.get(gw.url("b.test", "/"))
                .send()
                .await
                .expect("send")
                .status(),
            404,
            "nothing of the bad file is served"
        );
    });
    // Deleting a file is a change too; an empty policy directory is valid.
    std::fs::remove_file(&path).expect("remove");
    wait_for(&gw, "the reload after removal", || {
        gw.shared.current().generation == 2
    });
    rt().block_on(async {
        assert_eq!(
            c.get(gw.url("a.test", "/"))
                .send()
                .await
                .expect("send")
                .status(),
            404
        );
    });
    // And an explicit reload (what SIGHUP runs) of an unchanged, valid configuration.
    let outcome = rt().block_on(gateway::ops::reload::reload(&gw.shared, "test"));
    assert_eq!(outcome, gateway::ops::reload::Outcome::Swapped(3));
}

#[test]
fn files_that_are_not_policy_do_not_trigger_reloads() {
    let be = echo("quiet");
    let gw = Gateway::start("", &[("a.toml", policy(be, None))]);
    // A log file next to the configuration, keys, notes and hidden files in the policies dir.
    for (i, name) in [
        "varco.log",
        "sp.key.bak",
        "policies/README.md",
        "policies/.a.toml.swp",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(gw.dir.path().join(name), format!("{i}")).expect("write");
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        gw.shared.current().generation,
        1,
        "an unrelated file change reloaded the policy"
    );
    // A new policy file does.
    std::fs::write(
        gw.policy_path("b.toml"),
        policy_toml("c_b001", "046002", &[Svc::public("b", "b.test", "/", be)]),
    )
    .expect("write");
    wait_for(&gw, "the new file to load", || {
        gw.shared.current().generation == 2
    });
}
