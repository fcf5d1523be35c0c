use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn a_down_back_end_gets_502_and_a_slow_one_504_within_the_timeouts() {
    let be = echo("slow");
    let down = Svc {
        upstream: format!("http://127.0.0.1:{}", closed_port()),
        ..Svc::public("down", "a.test", "/down/", be)
    };
    let mut slow = Svc::public("slow", "a.test", "/slow/", be);
    slow.extra = "read_timeout = \"300ms\"";
    let gw = Gateway::start(
        "upstream_connect_timeout = \"500ms\"",
        &[("a.toml", policy_toml("c_a001", "046001", &[down, slow]))],
    );
    let c = gw.client();
    rt().block_on(async {
        let t = Instant::now();
        let r = c
            .get(gw.url("a.test", "/down/x"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 502);
        // The connection closes after a failure, and the answer says so: a client that sent its
        // next request on it would get a reset.
        assert_eq!(r.headers()["connection"], "close");
        assert!(r
            .text()
            .await
            .expect("text")
            .contains("momentaneamente non disponibile"));
        assert!(t.elapsed() < Duration::from_secs(2));

        let t = Instant::now();
        let r = c
            .get(gw.url("a.test", "/slow/x?echo_delay_ms=3000"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 504);
        assert!(r
            .text()
            .await
            .expect("text")
            .contains("non ha risposto in tempo"));
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(2),
            "{took:?}"
        );

        // Fast enough: fine.
        let r = c
            .get(gw.url("a.test", "/slow/x?echo_delay_ms=50"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    });
    let m = gw.metrics();
    assert!(
        m.contains("varco_requests_total{comune=\"c_a001\",service=\"down\",status=\"502\""),
        "{m}"
    );
    assert!(
        m.contains("varco_requests_total{comune=\"c_a001\",service=\"slow\",status=\"504\""),
        "{m}"
    );
}

#[test]
fn a_back_end_that_never_accepts_gets_504_at_the_connect_timeout() {
    // A listener whose accept queue is full and never drained: the kernel drops further SYNs,
    // so a connection attempt hangs the way it does towards an unreachable host.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    let _listener = rt().block_on(async { socket.listen(0) }).expect("listen");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(s);
        }
    }
    let gw = Gateway::start(
        "upstream_connect_timeout = \"300ms\"",
        &[(
            "a.toml",
            policy_toml(
                "c_a001",
                "046001",
                &[Svc::public("hung", "a.test", "/", addr)],
            ),
        )],
    );
    let t = Instant::now();
    let resp = raw(
        gw.port,
        b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    );
    let took = t.elapsed();
    assert!(resp.starts_with("HTTP/1.1 504"), "{resp}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
}
