//! A login through the SPID/CIE OpenID Connect Federation, against the reference
//! implementation: PyPI `spid-cie-oidc` (`tests/federation/run.py`: a trust anchor and an OpenID
//! provider in one Django process, varco registered as a leaf under the anchor). varco resolves
//! the provider through the trust chain, sends a signed request object, redeems the code with a
//! `private_key_jwt` assertion, decrypts and verifies the signed+encrypted UserInfo; the provider
//! resolves varco through its entity configuration.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};

use crate::citizen::enc;
use crate::harness::*;
use crate::oidc::{op_client, rp_key, Jar};
use crate::one_login::verify_jwt;

/// `tests/federation/run.py` on a free port, killed on drop.
struct ReferenceFederation {
    ta: String,
    op: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl ReferenceFederation {
    fn start(rp: &str, rp_jwks: &std::path::Path, ta_jwks_out: &std::path::Path) -> Self {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/federation");
        let python = root.join(".venv/bin/python");
        assert!(
            python.is_file(),
            "the reference federation is not installed: run tests/federation/setup.sh (tests/run.sh does)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(&python)
            .arg(root.join("run.py"))
            .args(["--port", &free_port().to_string(), "--rp", rp])
            .arg("--rp-jwks")
            .arg(rp_jwks)
            .arg("--state")
            .arg(dir.path())
            .arg("--ta-jwks-out")
            .arg(ta_jwks_out)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the reference federation: {e}"));
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read");
        let mut parts = line.split_whitespace();
        assert_eq!(parts.next(), Some("ready"), "it did not start: {line:?}");
        let (ta, op) = (
            parts.next().expect("TA").to_string(),
            parts.next().expect("OP").to_string(),
        );
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Self { ta, op, child, dir }
    }

    fn origin(&self) -> &str {
        self.ta.trim_end_matches('/')
    }
}

impl Drop for ReferenceFederation {
    #[allow(clippy::print_stderr)] // a failing test's report
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("federation.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "--- the reference federation said (last lines):\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `value` of the form input named `name` in `html`.
fn input_value(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no input {name} in {html}"));
    let start = html[..at].rfind('<').expect("tag start");
    let end = at + html[at..].find('>').expect("tag end");
    let tag = &html[start..end];
    let v = tag
        .split("value=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .unwrap_or_else(|| panic!("input {name} has no value: {tag}"));
    v.replace("&quot;", "\"").replace("&amp;", "&")
}

#[test]
fn a_citizen_logs_in_through_the_reference_federation() {
    let be = echo("federation");
    let mut tari = Svc::public("tari", "a.test", "/tari/", be);
    tari.level = "SpidL2";
    tari.extra = "attributes = [\"fiscalNumber\", \"name\", \"familyName\"]";
    let (dir, port, admin) = write_config("", &one_comune(&[tari]));
    // The reference provider checks URLs with pydantic's HttpUrl: a `.localhost` name does not
    // pass, an IP literal does.
    let entity = format!("http://127.0.0.1:{port}");
    rp_key(dir.path());
    for name in ["keys/fed-1.pem", "keys/enc.pem"] {
        let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
        std::fs::write(
            dir.path().join(name),
            rsa.private_key_to_pem().expect("pem"),
        )
        .expect("write");
    }
    // The anchor registers varco's federation key as varco publishes it.
    let fed_jwks =
        idp_bridge::insecure_test_idp::TestOpKey::load(&dir.path().join("keys/fed-1.pem"))
            .expect("key")
            .public_jwks();
    std::fs::write(dir.path().join("keys/fed.jwks.json"), fed_jwks.to_string()).expect("write");
    let fed = ReferenceFederation::start(
        &entity,
        &dir.path().join("keys/fed.jwks.json"),
        &dir.path().join("keys/ta.jwks.json"),
    );
    let main = dir.path().join("varco.toml");
    let text = std::fs::read_to_string(&main).expect("read").replace(
        &format!("public_url = \"http://portal.localhost:{port}\""),
        &format!("public_url = \"{entity}\""),
    );
    assert!(text.contains(&entity));
    std::fs::write(
        &main,
        format!(
            r#"{text}
[oidc_federation]
trust_anchors = [{{ entity_id = "{ta}", jwks = "keys/ta.jwks.json" }}]
authority_hints = ["{ta}"]
federation_keys = ["keys/fed-1.pem"]
encryption_key = "keys/enc.pem"

[[oidc]]
issuer = "{op}"
federation = true
key = "keys/oidc-rp.pem"
display_name = "Provider SPID di riferimento"
kind = "spid"
"#,
            ta = fed.ta,
            op = fed.op,
        ),
    )
    .expect("write");
    let gw = Gateway::serve(dir, port, admin);
    rt().block_on(async {
        let c = gw.client();
        let get = |url: String, cookie: String| {
            let c = c.clone();
            async move {
                c.get(url)
                    .header("cookie", cookie)
                    .send()
                    .await
                    .expect("send")
            }
        };
        // The service sends the citizen to log in; they pick the federation's provider.
        let r = get(gw.url("a.test", "/tari/avviso"), String::new()).await;
        assert_eq!(r.status(), 302);
        let login = location_of(&r);
        assert!(
            login.starts_with(&format!("{entity}/.sso/login?")),
            "{login}"
        );
        let handoff_binding = cookie_pair(&r);
        let r = get(format!("{login}&idp={}", enc(&fed.op)), String::new()).await;
        assert_eq!(r.status(), 302, "{}", r.text().await.unwrap_or_default());
        let binding = cookie_pair(&r);
        let to_op = location_of(&r);
        // The authorization endpoint came from the trust chain: the provider has no discovery.
        assert!(
            to_op.starts_with(&format!("{}authorization?", fed.op)),
            "{to_op}"
        );
        assert!(to_op.contains("&request="), "{to_op}");

        // At the provider: its login form, then its consent form.
        let op = op_client();
        let mut jar = Jar::default();
        let r = op
            .get(&to_op)
            .header("cookie", jar.header())
            .send()
            .await
            .expect("send");
        jar.take(&r);
        assert_eq!(r.status(), 200, "the provider accepted varco's request");
        let page = r.text().await.expect("text");
        let r = op
            .post(format!("{}/oidc/op/authorization", fed.origin()))
            .header("cookie", jar.header())
            .form(&[
                (
                    "csrfmiddlewaretoken",
                    input_value(&page, "csrfmiddlewaretoken"),
                ),
                (
                    "authz_request_object",
                    input_value(&page, "authz_request_object"),
                ),
                ("username", "mario".to_string()),
                ("password", "mario-rossi-password".to_string()),
            ])
            .send()
            .await
            .expect("send");
        jar.take(&r);
        assert_eq!(r.status(), 302, "logged in at the provider");
        let r = op
            .get(format!("{}/oidc/op/consent", fed.origin()))
            .header("cookie", jar.header())
            .send()
            .await
            .expect("send");
        jar.take(&r);
        let page = r.text().await.expect("text");
        assert!(page.contains("agree"), "{page}");
        let r = op
            .post(format!("{}/oidc/op/consent", fed.origin()))
            .header("cookie", jar.header())
            .form(&[
                (
                    "csrfmiddlewaretoken",
                    input_value(&page, "csrfmiddlewaretoken"),
                ),
                ("agree", "True".to_string()),
            ])
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 302);
        let callback = location_of(&r);
        assert!(
            callback.starts_with(&format!("{entity}/.sso/oidc/callback?code=")),
            "{callback}"
        );

        // Back at varco: the code redeemed, the encrypted UserInfo read, a session.
        let r = get(callback, binding).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        let handoff = onward_of(&r).expect("onward");
        let r = get(handoff, handoff_binding).await;
        assert_eq!(r.status(), 302);
        let session = cookie_pair(&r);
        let r = get(gw.url("a.test", "/tari/avviso"), session).await;
        assert_eq!(r.status(), 200);
        let j: serde_json::Value = r.json().await.expect("json");
        let h = received_headers(&j);
        let one = |n: &str| {
            h.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(one("x-varco-idp"), fed.op, "the provider's entity ID");
        assert_eq!(one("x-varco-fiscal-number"), "RSSMRA80A01H501U");
        assert_eq!(one("x-varco-name"), "Mario");
        assert_eq!(one("x-varco-family-name"), "Rossi");
        assert_eq!(one("x-varco-level"), "SpidL2");
        let jwks: serde_json::Value = get(gw.url("a.test", "/.sso/jwks.json"), String::new())
            .await
            .json()
            .await
            .expect("json");
        let claims = verify_jwt(&one("x-varco-assertion"), &jwks).expect("the JWT verifies");
        assert_eq!(claims["protocol"], "oidc");
    });
}
