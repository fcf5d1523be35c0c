//! OpenID Connect logins against a real, independent provider: panva's certified
//! `oidc-provider` (npm, `tests/oidc/op.mjs`) on loopback, with PKCE, `private_key_jwt`, signed
//! request objects and `client_secret_basic`; and the callbacks an attacker would send.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};

use crate::citizen::{enc, query_param};
use crate::harness::*;
use crate::one_login::verify_jwt;

/// One `node tests/oidc/op.mjs` on a free port, killed on drop.
pub(crate) struct OpenIdProvider {
    pub(crate) issuer: String,
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl OpenIdProvider {
    /// Starts the provider with these client registrations (a JSON array).
    pub(crate) fn start(port: u16, clients: &serde_json::Value) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("clients.json"), clients.to_string()).expect("write");
        let (child, issuer) = Self::spawn(port, dir.path());
        Self {
            issuer,
            port,
            child,
            _dir: dir,
        }
    }

    /// Stops it and starts it again on the same port and with the same clients: a new signing
    /// key (a new `kid`), nothing remembered.
    pub(crate) fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, issuer) = Self::spawn(self.port, self._dir.path());
        assert_eq!(issuer, self.issuer);
        self.child = child;
    }

    fn spawn(port: u16, dir: &std::path::Path) -> (Child, String) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/oidc");
        assert!(
            root.join("node_modules/oidc-provider").is_dir(),
            "the test OpenID provider is not installed: run `npm ci --prefix tests/oidc` (tests/run.sh does)"
        );
        let mut child = Command::new("node")
            .arg(root.join("op.mjs"))
            .arg(port.to_string())
            .arg(dir.join("clients.json"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("op.log")).expect("log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node (apt-get install nodejs): {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let mut out = std::io::BufReader::new(stdout);
        out.read_line(&mut line).expect("read");
        assert!(
            line.starts_with("ready "),
            "the provider did not start: {line:?} {}",
            std::fs::read_to_string(dir.join("op.log")).unwrap_or_default()
        );
        // Whatever it prints later must find a reader, or its next write kills it (EPIPE).
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        (child, line["ready ".len()..].trim().to_string())
    }

    /// Sets what the next login at the provider does (`acr=...`, `error=...`, `account=...`).
    pub(crate) async fn next(&self, query: &str) {
        let r = reqwest::Client::new()
            .get(format!("{}/test/next?{query}", self.issuer))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    }
}

impl Drop for OpenIdProvider {
    #[allow(clippy::print_stderr)] // a failing test's report
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the provider said, for the failure's report (the test's output).
            let log = std::fs::read_to_string(self._dir.path().join("op.log")).unwrap_or_default();
            eprintln!("--- {} said:\n{log}", self.issuer);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cookies one origin set, sent back as a browser would (names only, no attributes).
#[derive(Default)]
pub(crate) struct Jar(Vec<(String, String)>);

impl Jar {
    pub(crate) fn take(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let pair = v.to_str().expect("ascii").split(';').next().unwrap_or("");
            if let Some((n, val)) = pair.split_once('=') {
                self.0.retain(|(k, _)| k != n);
                if !val.is_empty() {
                    self.0.push((n.to_string(), val.to_string()));
                }
            }
        }
    }
    pub(crate) fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Follows the provider's redirects (its login, automatic here) from `url` until it sends the
/// browser back to varco; returns that callback URL.
pub(crate) async fn through_provider(op: &OpenIdProvider, url: &str) -> String {
    through_provider_with(op, url, &mut Jar::default()).await
}

/// As [`through_provider`], in a browser whose cookies at the provider are `jar`.
pub(crate) async fn through_provider_with(op: &OpenIdProvider, url: &str, jar: &mut Jar) -> String {
    let c = op_client();
    let mut url = url.to_string();
    for _ in 0..8 {
        if !url.starts_with(&op.issuer) {
            return url;
        }
        let r = c
            .get(&url)
            .header("cookie", jar.header())
            .send()
            .await
            .expect("send");
        jar.take(&r);
        assert!(
            r.status().is_redirection(),
            "the provider answered {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
        let next = location_of(&r);
        url = if next.starts_with('/') {
            format!("{}{next}", op.issuer)
        } else {
            next
        };
    }
    panic!("the provider kept redirecting")
}

pub(crate) fn op_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// varco's RSA key for the provider, written to `keys/oidc-rp.pem` of the configuration.
pub(crate) fn rp_key(dir: &std::path::Path) {
    let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
    std::fs::write(
        dir.join("keys/oidc-rp.pem"),
        rsa.private_key_to_pem().expect("pem"),
    )
    .expect("write");
    std::fs::write(dir.join("keys/oidc-secret"), "basic-s3cret\n").expect("write");
}

pub(crate) struct Setup {
    gw: Gateway,
    jwt_op: OpenIdProvider,
    basic_op: OpenIdProvider,
}

/// A gateway with TARI (level 2, fiscal number and name) behind two providers: one with
/// `private_key_jwt` and required signed request objects, one with `client_secret_basic`.
fn setup() -> Setup {
    let be = echo("oidc");
    let mut tari = Svc::public("tari", "a.test", "/tari/", be);
    tari.level = "SpidL2";
    tari.extra = "attributes = [\"fiscalNumber\", \"name\"]";
    let (jwt_port, basic_port) = (free_port(), free_port());
    let (dir, port, admin) = write_config("", &one_comune(&[tari]));
    rp_key(dir.path());
    let main = dir.path().join("varco.toml");
    let mut text = std::fs::read_to_string(&main).expect("read");
    text.push_str(&format!(
        r#"
[[oidc]]
issuer = "http://127.0.0.1:{jwt_port}"
client_id = "varco"
key = "keys/oidc-rp.pem"
display_name = "Regione di Prova"
kind = "spid"
scopes = ["openid", "profile", "fiscal_number"]

[[oidc]]
issuer = "http://127.0.0.1:{basic_port}"
client_id = "varco-basic"
client_auth = "client_secret_basic"
client_secret_file = "keys/oidc-secret"
display_name = "Keycloak di Prova"
scopes = ["openid", "profile", "fiscal_number"]
"#
    ));
    std::fs::write(&main, text).expect("write");
    let gw = Gateway::serve(dir, port, admin);
    let callback = format!("http://portal.localhost:{}/.sso/oidc/callback", gw.port);
    let portal = format!("http://portal.localhost:{}", gw.port);
    // The provider registers varco's public key as varco publishes it.
    let jwks: serde_json::Value = rt().block_on(async {
        gw.client()
            .get(gw.url("portal.localhost", "/.sso/oidc/jwks.json"))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    });
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "{jwks}");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
    let jwt_op = OpenIdProvider::start(
        jwt_port,
        &serde_json::json!([{
            "client_id": "varco",
            "redirect_uris": [callback],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "RS256",
            "request_object_signing_alg": "RS256",
            "require_signed_request_object": true,
            "jwks": jwks,
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "post_logout_redirect_uris": [format!("{portal}/.sso/oidc/logged-out")],
            "backchannel_logout_uri": format!("{portal}/.sso/oidc/backchannel"),
            "backchannel_logout_session_required": true,
        }]),
    );
    let basic_op = OpenIdProvider::start(
        basic_port,
        &serde_json::json!([{
            "client_id": "varco-basic",
            "client_secret": "basic-s3cret",
            "redirect_uris": [callback],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        }]),
    );
    Setup {
        gw,
        jwt_op,
        basic_op,
    }
}

/// Starts a login for `return_to` with `op` from the browser with `cookies` (its varco cookies);
/// returns the provider's URL and the binding cookie pair.
async fn start(s: &Setup, op: &OpenIdProvider, return_to: &str, cookies: &str) -> (String, String) {
    let r =
        s.gw.client()
            .get(s.gw.url(
                "portal.localhost",
                &format!(
                    "/.sso/login?idp={}&return_to={}",
                    enc(&op.issuer),
                    enc(return_to)
                ),
            ))
            .header("cookie", cookies)
            .send()
            .await
            .expect("send");
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap_or_default());
    (location_of(&r), cookie_pair(&r))
}

async fn get(s: &Setup, url: &str, cookies: &str) -> reqwest::Response {
    s.gw.client()
        .get(url)
        .header("cookie", cookies)
        .send()
        .await
        .expect("send")
}

#[test]
fn a_login_through_each_provider_reaches_the_back_end_with_headers_and_jwt() {
    let s = setup();
    let gw = &s.gw;
    rt().block_on(async {
        for (op, pkjwt) in [(&s.jwt_op, true), (&s.basic_op, false)] {
            // 1. The service sends the citizen to the portal; they pick the provider.
            let r = get(&s, &gw.url("a.test", "/tari/avviso"), "").await;
            assert_eq!(r.status(), 302);
            let login = location_of(&r);
            let handoff_binding = cookie_pair(&r);
            let r = get(&s, &format!("{login}&idp={}", enc(&op.issuer)), "").await;
            assert_eq!(r.status(), 302);
            let binding = cookie_pair(&r);
            let to_op = location_of(&r);
            assert!(
                to_op.starts_with(&format!("{}/auth?", op.issuer)),
                "{to_op}"
            );
            assert_eq!(
                query_param(&to_op, "code_challenge_method").as_deref(),
                Some("S256")
            );
            assert_eq!(
                query_param(&to_op, "response_type").as_deref(),
                Some("code")
            );
            if pkjwt {
                // Everything is in the signed request object; nonce and state are not in
                // the URL.
                assert!(query_param(&to_op, "request").is_some(), "{to_op}");
                assert!(query_param(&to_op, "nonce").is_none(), "{to_op}");
            } else {
                assert_eq!(
                    query_param(&to_op, "acr_values").as_deref(),
                    Some("https://www.spid.gov.it/SpidL2 https://www.spid.gov.it/SpidL3")
                );
                assert_eq!(query_param(&to_op, "prompt").as_deref(), Some("login"));
            }
            // 2. The provider logs the citizen in and sends them back with a code.
            let callback = through_provider(op, &to_op).await;
            assert!(
                callback.starts_with(&gw.url("portal.localhost", "/.sso/oidc/callback?")),
                "{callback}"
            );
            assert_eq!(
                query_param(&callback, "iss").as_deref(),
                Some(op.issuer.as_str())
            );
            let r = get(&s, &callback, &binding).await;
            assert_eq!(r.status(), 200, "a page that goes on");
            assert_eq!(r.headers()["cache-control"], "no-store");
            let handoff = onward_of(&r).expect("onward");
            assert!(
                handoff.starts_with(&gw.url("a.test", "/.sso/handoff?code=")),
                "{handoff}"
            );
            // 3. The same callback again: the login was used, a page and no session.
            let again = get(&s, &callback, &binding).await;
            assert_eq!(again.status(), 403);
            assert!(again.headers().get("location").is_none());
            assert!(again.headers().get("set-cookie").is_none());
            assert!(again
                .text()
                .await
                .expect("text")
                .contains("Accesso non completato"));
            // 4. The handoff, then the back-end with the identity.
            let r = get(&s, &handoff, &handoff_binding).await;
            assert_eq!(r.status(), 302);
            let session = cookie_pair(&r);
            let r = get(&s, &gw.url("a.test", "/tari/avviso"), &session).await;
            assert_eq!(r.status(), 200);
            let j: serde_json::Value = r.json().await.expect("json");
            let h = received_headers(&j);
            let one = |n: &str| {
                h.iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            assert_eq!(
                one("x-varco-idp"),
                op.issuer,
                "the issuer exactly as configured"
            );
            assert_eq!(one("x-varco-fiscal-number"), "RSSMRA80A01H501U");
            assert_eq!(one("x-varco-name"), "Mario");
            assert_eq!(one("x-varco-level"), "SpidL2");
            let jwks: serde_json::Value = get(&s, &gw.url("a.test", "/.sso/jwks.json"), "")
                .await
                .json()
                .await
                .expect("json");
            let claims = verify_jwt(&one("x-varco-assertion"), &jwks).expect("the JWT verifies");
            assert_eq!(claims["protocol"], "oidc");
            assert_eq!(claims["idp"], op.issuer.as_str());
            assert_eq!(claims["attributes"]["fiscalNumber"], "RSSMRA80A01H501U");
        }
    });
    // The audit trail has the requests and the token responses, never a bearer token.
    let trail = std::fs::read_to_string(gw.dir.path().join("audit/saml-audit.log")).expect("trail");
    assert_eq!(
        trail.matches("\"kind\":\"authorization_request\"").count(),
        2,
        "{trail}"
    );
    assert_eq!(trail.matches("\"kind\":\"token_response\"").count(), 2);
    let messages: String = trail
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(_, json)| serde_json::from_str::<serde_json::Value>(json).ok())
        .filter(|v| v["kind"] == "token_response")
        .filter_map(|v| v["message"].as_str().map(String::from))
        .map(|m| {
            use base64::Engine as _;
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(m)
                    .expect("b64"),
            )
            .expect("utf-8")
        })
        .collect();
    assert!(
        messages.contains("\"access_token\":\"[redacted]\""),
        "{messages}"
    );
    assert!(
        messages.contains("\"id_token\":\"ey"),
        "the ID token is kept: {messages}"
    );
}

#[test]
fn the_choice_page_offers_the_providers_and_refused_callbacks_make_no_session() {
    let s = setup();
    let gw = &s.gw;
    let op = &s.jwt_op;
    let back = gw.url("portal.localhost", "/");
    rt().block_on(async {
        // The `spid` provider is in the SPID list, the other has a button of its own.
        let r = get(
            &s,
            &gw.url(
                "portal.localhost",
                &format!("/.sso/login?return_to={}", enc(&gw.url("a.test", "/tari/"))),
            ),
            "",
        )
        .await;
        assert_eq!(r.status(), 200);
        let page = r.text().await.expect("text");
        assert!(page.contains("<span>Regione di Prova</span>"), "{page}");
        assert!(page.contains("Entra con Keycloak di Prova"), "{page}");
        assert!(page.contains(&enc(&s.basic_op.issuer)), "{page}");

        let no_session = |r: &reqwest::Response| {
            assert!(r.headers().get("location").is_none(), "never a redirect");
            assert!(
                r.headers().get("refresh").is_none(),
                "never a page that goes on"
            );
            assert!(
                r.headers()
                    .get_all("set-cookie")
                    .iter()
                    .all(|c| !c.to_str().unwrap_or("").starts_with("varco_session=")),
                "no session"
            );
        };
        // An acr below the level asked (level 2 asked, level 1 given).
        let (to_op, binding) = start(&s, op, &gw.url("a.test", "/tari/"), "").await;
        op.next("acr=https%3A%2F%2Fwww.spid.gov.it%2FSpidL1").await;
        let callback = through_provider(op, &to_op).await;
        let r = get(&s, &callback, &binding).await;
        assert_eq!(r.status(), 403);
        no_session(&r);
        assert!(r
            .text()
            .await
            .expect("text")
            .contains("Accesso non riuscito"));

        // The citizen declines at the provider.
        let (to_op, binding) = start(&s, op, &back, "").await;
        op.next("error=access_denied").await;
        let callback = through_provider(op, &to_op).await;
        assert_eq!(
            query_param(&callback, "error").as_deref(),
            Some("access_denied")
        );
        let r = get(&s, &callback, &binding).await;
        assert_eq!(r.status(), 403);
        no_session(&r);
        assert!(r.text().await.expect("text").contains("Accesso negato"));

        // A state from another browser: nothing found, nothing burnt; the right browser then
        // finishes its login.
        let (to_op, binding) = start(&s, op, &back, "").await;
        let callback = through_provider(op, &to_op).await;
        let (_, other_binding) = start(&s, op, &back, "").await;
        for cookie in ["", other_binding.as_str()] {
            let r = get(&s, &callback, cookie).await;
            assert_eq!(r.status(), 403);
            no_session(&r);
        }
        let r = get(&s, &callback, &binding).await;
        assert_eq!(r.status(), 200, "the browser that started it still can");
        assert!(onward_of(&r).is_some());

        // Mix-up: the login went to one provider, the answer claims to come from the other.
        let (to_op, binding) = start(&s, op, &back, "").await;
        let callback = through_provider(op, &to_op).await;
        let forged = callback.replace(
            &format!("iss={}", enc(&op.issuer)),
            &format!("iss={}", enc(&s.basic_op.issuer)),
        );
        assert_ne!(forged, callback);
        let r = get(&s, &forged, &binding).await;
        assert_eq!(r.status(), 403);
        no_session(&r);
        // ... and the real answer after it finds the login burnt: one answer per login.
        assert_eq!(get(&s, &callback, &binding).await.status(), 403);

        // A made-up code for a real state: the token endpoint refuses it.
        let (to_op, binding) = start(&s, op, &back, "").await;
        let callback = through_provider(op, &to_op).await;
        let code = query_param(&callback, "code").expect("code");
        let r = get(&s, &callback.replace(&code, "made-up-code"), &binding).await;
        assert_eq!(r.status(), 403);
        no_session(&r);

        // Junk.
        for q in [
            "",
            "?state=x",
            "?code=x",
            "?code=x&state=y",
            "?error=access_denied",
        ] {
            let r = get(
                &s,
                &gw.url("portal.localhost", &format!("/.sso/oidc/callback{q}")),
                &binding,
            )
            .await;
            assert!(
                matches!(r.status().as_u16(), 400 | 403),
                "{q}: {}",
                r.status()
            );
            no_session(&r);
        }
    });
}

/// Logs in at `op` from a browser whose provider cookies are `jar`; returns the portal's
/// session cookie pair.
async fn portal_login(s: &Setup, op: &OpenIdProvider, jar: &mut Jar) -> String {
    let (to_op, binding) = start(s, op, &s.gw.url("portal.localhost", "/"), "").await;
    let callback = through_provider_with(op, &to_op, jar).await;
    let r = get(s, &callback, &binding).await;
    assert_eq!(r.status(), 200, "a page that goes on");
    let session = cookie_pair(&r);
    assert!(session.starts_with("varco_session="), "{session}");
    session
}

async fn session_status(s: &Setup, session: &str) -> u16 {
    get(s, &s.gw.url("portal.localhost", "/.sso/session"), session)
        .await
        .status()
        .as_u16()
}

#[test]
fn logout_goes_to_the_provider_and_the_provider_logs_out_here() {
    let s = setup();
    let gw = &s.gw;
    let op = &s.jwt_op;
    rt().block_on(async {
        // The provider ends its session (the citizen logged out there): it tells varco on the
        // back channel, and the session here ends.
        let mut jar = Jar::default();
        let session = portal_login(&s, op, &mut jar).await;
        assert_eq!(session_status(&s, &session).await, 200);
        let c = op_client();
        let r = c
            .get(format!("{}/session/end?client_id=varco", op.issuer))
            .header("cookie", jar.header())
            .send()
            .await
            .expect("send");
        jar.take(&r);
        let page = r.text().await.expect("text");
        let xsrf = page
            .split("name=\"xsrf\" value=\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap_or_else(|| panic!("no xsrf in {page}"))
            .to_string();
        let r = c
            .post(format!("{}/session/end/confirm", op.issuer))
            .header("cookie", jar.header())
            .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
            .send()
            .await
            .expect("send");
        assert!(r.status().is_redirection(), "{}", r.status());
        assert_eq!(
            session_status(&s, &session).await,
            401,
            "ended by the back channel"
        );

        // The same logout token again, a tampered one, junk: 400, nothing else ends.
        let other = portal_login(&s, op, &mut Jar::default()).await;
        let token: serde_json::Value = c
            .get(format!("{}/test/last-logout-token", op.issuer))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        let token = token["logout_token"]
            .as_str()
            .expect("a logout token was sent")
            .to_string();
        let post = |body: String| {
            let c = gw.client();
            let url = gw.url("portal.localhost", "/.sso/oidc/backchannel");
            async move {
                c.post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .expect("send")
            }
        };
        let mut tampered = token.clone();
        let last = tampered.pop().expect("char");
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        for body in [
            format!("logout_token={token}"),
            format!("logout_token={tampered}"),
            "logout_token=e30.e30.e30".to_string(),
            "nothing=here".to_string(),
        ] {
            let r = post(body.clone()).await;
            assert_eq!(r.status(), 400, "{body}");
            assert_eq!(r.headers()["cache-control"], "no-store");
        }
        assert_eq!(
            session_status(&s, &other).await,
            200,
            "another login is untouched"
        );

        // RP-initiated: /.sso/logout ends the session here and sends the citizen to end theirs
        // at the provider, which sends them back to /.sso/oidc/logged-out.
        let r = gw
            .client()
            .get(gw.url("portal.localhost", "/.sso/logout"))
            .header("cookie", &other)
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 302);
        let to = location_of(&r);
        assert!(
            to.starts_with(&format!("{}/session/end?client_id=varco&", op.issuer)),
            "{to}"
        );
        let back = query_param(&to, "post_logout_redirect_uri").expect("post_logout_redirect_uri");
        assert_eq!(back, gw.url("portal.localhost", "/.sso/oidc/logged-out"));
        assert_eq!(session_status(&s, &other).await, 401);
        let r = get(&s, &back, "").await;
        assert_eq!(r.status(), 200);
        assert!(r.text().await.expect("text").contains("Sei uscito"));
    });
}

#[test]
fn the_entity_configuration_is_served_signed_and_an_unresolvable_provider_gets_a_page() {
    let be = echo("oidc-federation");
    let (dir, port, admin) = write_config(
        "",
        &one_comune(&[Svc::public("pub", "a.test", "/pub/", be)]),
    );
    rp_key(dir.path());
    let pem = |name: &str| {
        let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
        std::fs::write(
            dir.path().join(name),
            rsa.private_key_to_pem().expect("pem"),
        )
        .expect("write");
    };
    pem("keys/fed-1.pem");
    pem("keys/enc.pem");
    // A trust anchor varco trusts, which does not answer (nothing listens on its port).
    let ta = format!("http://127.0.0.1:{}", closed_port());
    std::fs::write(dir.path().join("keys/ta.jwks.json"), r#"{"keys":[{"kty":"RSA","kid":"ta","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}"#).expect("write");
    let op = format!("http://127.0.0.1:{}/op", closed_port());
    let main = dir.path().join("varco.toml");
    let mut text = std::fs::read_to_string(&main).expect("read");
    text.push_str(&format!(
        r#"
[oidc_federation]
trust_anchors = [{{ entity_id = "{ta}", jwks = "keys/ta.jwks.json" }}]
authority_hints = ["{ta}"]
federation_keys = ["keys/fed-1.pem"]
encryption_key = "keys/enc.pem"

[[oidc]]
issuer = "{op}"
federation = true
key = "keys/oidc-rp.pem"
display_name = "OP della federazione"
kind = "spid"
"#
    ));
    std::fs::write(&main, text).expect("write");
    let gw = Gateway::serve(dir, port, admin);
    let entity = format!("http://portal.localhost:{}", gw.port);
    rt().block_on(async {
        let c = gw.client();
        let r = c
            .get(gw.url("portal.localhost", "/.well-known/openid-federation"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"],
            "application/entity-statement+jwt"
        );
        let jwt = r.text().await.expect("text");
        let header: serde_json::Value = {
            use base64::Engine as _;
            let h = jwt.split('.').next().expect("header");
            serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(h)
                    .expect("b64"),
            )
            .expect("json")
        };
        assert_eq!(header["typ"], "entity-statement+jwt");
        // Self-signed: its own jwks verify it.
        let payload: serde_json::Value = {
            use base64::Engine as _;
            let p = jwt.split('.').nth(1).expect("payload");
            serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .expect("b64"),
            )
            .expect("json")
        };
        let claims =
            idp_bridge::insecure_test_idp::verify_jws(&jwt, &payload["jwks"]).expect("verifies");
        assert_eq!(claims["iss"], entity.as_str());
        assert_eq!(claims["sub"], entity.as_str());
        assert_eq!(claims["authority_hints"], serde_json::json!([ta]));
        let rp = &claims["metadata"]["openid_relying_party"];
        assert_eq!(rp["client_id"], entity.as_str());
        let uses: Vec<&str> = rp["jwks"]["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter_map(|k| k["use"].as_str())
            .collect();
        assert_eq!(
            uses,
            ["sig", "enc"],
            "the signing key of [[oidc]] and the encryption key"
        );
        assert!(
            rp["jwks"].to_string().find("\"d\"").is_none(),
            "no private part"
        );
        // Only on the portal.
        let r = c
            .get(gw.url("a.test", "/.well-known/openid-federation"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 404);
        // A provider whose chain cannot be resolved: a page, 502, nothing sent anywhere.
        let r = c
            .get(gw.url("portal.localhost", &format!("/.sso/login?idp={}", enc(&op))))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 502);
        assert!(r.headers().get("location").is_none());
        assert!(r
            .text()
            .await
            .expect("text")
            .contains("Servizio di accesso non disponibile"));
    });
    // Without [oidc_federation]: nothing there.
    let plain = Gateway::start(
        "",
        &one_comune(&[Svc::public("pub", "a.test", "/pub/", be)]),
    );
    rt().block_on(async {
        let r = plain
            .client()
            .get(plain.url("portal.localhost", "/.well-known/openid-federation"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 404);
    });
}

#[test]
fn a_new_provider_key_is_fetched_once_and_a_flood_of_unknown_keys_is_not() {
    let mut s = setup();
    rt().block_on(async {
        // The keys are fetched once and cached.
        let first = portal_login(&s, &s.basic_op, &mut Jar::default()).await;
        assert_eq!(session_status(&s, &first).await, 200);
    });
    // The provider rotates its key: the next ID token names a kid varco has not seen, so varco
    // fetches the keys again, and the login goes through.
    s.basic_op.restart();
    rt().block_on(async {
        let second = portal_login(&s, &s.basic_op, &mut Jar::default()).await;
        assert_eq!(session_status(&s, &second).await, 200);
    });
    // Another new key within the minute: varco does not fetch again (a flood of made-up kids
    // costs the provider one request a minute), and the login is refused with a page.
    s.basic_op.restart();
    rt().block_on(async {
        let (to_op, binding) = start(&s, &s.basic_op, &s.gw.url("portal.localhost", "/"), "").await;
        let callback = through_provider(&s.basic_op, &to_op).await;
        let r = get(&s, &callback, &binding).await;
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("location").is_none());
        assert!(r
            .text()
            .await
            .expect("text")
            .contains("Accesso non riuscito"));
    });
}
