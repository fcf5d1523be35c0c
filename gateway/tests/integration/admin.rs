use crate::harness::*;

#[test]
fn admin_listener_serves_metrics_and_health_and_the_public_one_does_not() {
    let be = echo("admin");
    let gw = Gateway::start(
        "",
        &[(
            "a.toml",
            policy_toml("c_a001", "046001", &[Svc::public("pub", "a.test", "/", be)]),
        )],
    );
    let c = gw.client();
    rt().block_on(async {
        assert_eq!(
            c.get(gw.url("a.test", "/x"))
                .send()
                .await
                .expect("send")
                .status(),
            200
        );
        let admin = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let base = format!("http://127.0.0.1:{}", gw.admin);
        assert_eq!(
            admin
                .get(format!("{base}/healthz"))
                .send()
                .await
                .expect("send")
                .status(),
            200
        );
        let ready = admin
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("send");
        assert_eq!(ready.status(), 200);
        assert!(ready.text().await.expect("text").contains("generation 1"));
        assert_eq!(
            admin
                .get(format!("{base}/other"))
                .send()
                .await
                .expect("send")
                .status(),
            404
        );
        for path in ["/metrics", "/healthz", "/readyz"] {
            let r = c
                .get(gw.url("portal.localhost", path))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 404, "{path} on the public listener");
        }
    });
    let m = gw.metrics();
    for needle in [
        "varco_requests_total{comune=\"c_a001\",service=\"pub\",status=\"200\"",
        "varco_request_duration_seconds_bucket{comune=\"c_a001\",service=\"pub\"",
        "varco_policy_generation",
        "varco_requests_total{comune=\"-\",service=\"none\",status=\"404\"",
    ] {
        assert!(m.contains(needle), "missing {needle} in\n{m}");
    }
}
