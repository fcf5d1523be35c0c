use crate::citizen::{enc, idp_key, query_param, saml_param, session_status, xml_attr};
use crate::harness::*;

fn gateway() -> Gateway {
    let be = echo("login");
    let mut spid = Svc::public("tari", "a.test", "/tari/", be);
    spid.level = "SpidL2";
    spid.extra = "attributes = [\"fiscalNumber\", \"name\"]";
    Gateway::start(
        "",
        &[(
            "a.toml",
            policy_toml(
                "c_a001",
                "046001",
                &[Svc::public("pub", "a.test", "/pub/", be), spid],
            ),
        )],
    )
}

#[test]
fn login_starts_with_a_signed_redirect_and_a_binding_cookie() {
    let gw = gateway();
    let c = gw.client();
    let back = gw.url("a.test", "/tari/avviso");
    rt().block_on(async {
        let url = gw.url(
            "portal.localhost",
            &format!(
                "/.sso/login?idp={}&return_to={}",
                enc("https://localhost:8443"),
                enc(&back)
            ),
        );
        let r = c.get(url).send().await.expect("send");
        assert_eq!(r.status(), 302);
        let location = location_of(&r);
        assert!(
            location.starts_with("https://localhost:8443/samlsso?SAMLRequest="),
            "{location}"
        );
        for p in ["&RelayState=", "&SigAlg=", "&Signature="] {
            assert!(location.contains(p), "{location}");
        }
        let cookie = r.headers()["set-cookie"].to_str().expect("ascii");
        assert!(
            cookie.starts_with("varco_login=")
                && cookie.contains("HttpOnly")
                && cookie.contains("Path=/.sso/"),
            "{cookie}"
        );
        assert!(
            !location.contains(&enc(&back)),
            "the return target stays server-side, never in RelayState"
        );

        // With the cookie, the same one again, refreshed: every tab of one browser shares the
        // binding, and a retry after a long stay at the IdP still has it.
        let value = cookie.split(';').next().expect("pair").to_string();
        let url = gw.url(
            "portal.localhost",
            &format!("/.sso/login?idp={}", enc("https://localhost:8443")),
        );
        let r = c
            .get(url)
            .header("cookie", &value)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 302);
        let again = r.headers()["set-cookie"].to_str().expect("ascii");
        assert!(again.starts_with(&format!("{value};")), "{again}");
        assert!(again.contains("Max-Age=900"), "{again}");
    });
}

#[test]
fn the_choice_page_lists_the_idps_and_bad_parameters_are_refused() {
    let gw = gateway();
    let c = gw.client();
    rt().block_on(async {
        let url = gw.url(
            "portal.localhost",
            &format!("/.sso/login?return_to={}", enc(&gw.url("a.test", "/tari/"))),
        );
        let r = c.get(url).send().await.expect("send");
        assert_eq!(r.status(), 200);
        let page = r.text().await.expect("text");
        assert!(
            page.contains("Entra con SPID")
                && page.contains("Servizio tari")
                && page.contains("SPID livello 2"),
            "{page}"
        );
        assert!(
            page.contains(
                "/.sso/login?idp=https%3A%2F%2Flocalhost%3A8443&amp;level=SpidL2&amp;return_to="
            ),
            "{page}"
        );
        for bad in [
            format!("/.sso/login?idp={}", enc("https://unknown.example")),
            format!(
                "/.sso/login?idp={}&return_to={}",
                enc("https://localhost:8443"),
                enc("//evil.example/")
            ),
            format!(
                "/.sso/login?idp={}&return_to={}",
                enc("https://localhost:8443"),
                enc("https://evil.example/")
            ),
            format!(
                "/.sso/login?idp={}&level=SpidL9",
                enc("https://localhost:8443")
            ),
        ] {
            let r = c
                .get(gw.url("portal.localhost", &bad))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 400, "{bad}");
            assert!(r.headers().get("location").is_none());
        }
    });
}

mod full {

    use idp_bridge::insecure_test_idp::ResponseBuilder;

    use super::*;

    /// Starts a login; returns (AuthnRequest ID, binding cookie pair, RelayState).
    pub(super) async fn start(
        gw: &Gateway,
        c: &reqwest::Client,
        return_to: &str,
    ) -> (String, String, String) {
        let url = gw.url(
            "portal.localhost",
            &format!(
                "/.sso/login?idp={}&return_to={}",
                enc("https://localhost:8443"),
                enc(return_to)
            ),
        );
        let r = c.get(url).send().await.expect("send");
        assert_eq!(r.status(), 302);
        let location = location_of(&r);
        let cookie = cookie_pair(&r);
        let id = xml_attr(&saml_param(&location, "SAMLRequest"), "ID").expect("ID");
        (
            id,
            cookie,
            query_param(&location, "RelayState").expect("RelayState"),
        )
    }

    pub(super) async fn post_acs(
        gw: &Gateway,
        c: &reqwest::Client,
        cookie: &str,
        response: &str,
        relay: &str,
    ) -> reqwest::Response {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("SAMLResponse", response)
            .append_pair("RelayState", relay)
            .finish();
        c.post(gw.url("portal.localhost", "/.sso/acs"))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("send")
    }

    #[test]
    fn a_signed_answer_creates_a_session_once() {
        let gw = gateway();
        let c = gw.client();
        let key = idp_key();
        let acs = gw.url("portal.localhost", "/.sso/acs");
        rt().block_on(async {
            let back = gw.url("a.test", "/tari/avviso");
            let (id, cookie, relay) = start(&gw, &c, &back).await;
            let response = ResponseBuilder::new(
                "https://localhost:8443",
                "http://portal.localhost/.sso/metadata",
                &acs,
                &id,
            )
            .to_base64(&key)
            .expect("sign");
            let r = post_acs(&gw, &c, &cookie, &response, &relay).await;
            // A page that goes on (browsers check redirects after a POST against the IdP
            // page's form-action). Started at the portal (not sent by a.test with its
            // binding): straight to the target, which sends the browser back for a handoff
            // bound to it.
            assert_eq!(r.status(), 200);
            assert_eq!(onward_of(&r).as_deref(), Some(back.as_str()));
            let session = r.headers()["set-cookie"]
                .to_str()
                .expect("ascii")
                .to_string();
            assert!(
                session.starts_with("varco_session=")
                    && session.contains("HttpOnly")
                    && session.contains("SameSite=Lax"),
                "{session}"
            );
            let session_pair = session.split(';').next().expect("pair").to_string();

            let r = c
                .get(gw.url("a.test", "/.sso/session"))
                .header("cookie", &session_pair)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200);
            let j: serde_json::Value = r.json().await.expect("json");
            assert_eq!(j["level"], "SpidL2");
            assert_eq!(j["idp"], "https://localhost:8443");
            assert_eq!(j["attributes"]["fiscalNumber"], "TINIT-RSSMRA80A01H501U");
            assert!(
                !j.to_string()
                    .contains(session_pair.split('=').nth(1).expect("id")),
                "the session ID is never echoed"
            );

            // The same response again: refused, with a page, never a 404 or a 200.
            let r = post_acs(&gw, &c, &cookie, &response, &relay).await;
            assert_eq!(r.status(), 403);
            assert!(r
                .text()
                .await
                .expect("text")
                .contains("Accesso non completato"));

            let r = c
                .get(gw.url("portal.localhost", "/.sso/session"))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 401);
            let r = c
                .get(gw.url("portal.localhost", "/.sso/session"))
                .header("cookie", "varco_session=forged")
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 401);
        });
    }

    #[test]
    fn spid_error_codes_get_their_page() {
        let gw = gateway();
        let c = gw.client();
        let key = idp_key();
        let acs = gw.url("portal.localhost", "/.sso/acs");
        rt().block_on(async {
            for (code, text) in [
                (19, "Troppi tentativi"),
                (20, "Credenziali non adatte"),
                (21, "Tempo scaduto"),
                (22, "Consenso negato"),
                (23, "sospesa o revocata"),
                (25, "Accesso annullato"),
                (30, "Tipo di identità non ammesso"),
            ] {
                let (id, cookie, relay) = start(&gw, &c, &gw.url("portal.localhost", "/")).await;
                let mut b = ResponseBuilder::new(
                    "https://localhost:8443",
                    "http://portal.localhost/.sso/metadata",
                    &acs,
                    &id,
                );
                b.error_code = Some(code);
                let r = post_acs(&gw, &c, &cookie, &b.to_base64(&key).expect("sign"), &relay).await;
                assert_eq!(r.status(), 403, "nr{code}");
                let page = r.text().await.expect("text");
                assert!(
                    page.contains(text) && page.contains(&format!("nr{code}")),
                    "nr{code}: {page}"
                );
            }
            // No cookie, garbage, wrong method.
            let r = post_acs(&gw, &c, "", "PGZvbz4=", "").await;
            assert_eq!(r.status(), 400);
            let r = c
                .get(gw.url("portal.localhost", "/.sso/acs"))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 405);
        });
    }
}

mod logout {

    use idp_bridge::insecure_test_idp::{idp_redirect, ResponseBuilder};

    use super::*;

    const IDP: &str = "https://localhost:8443";

    fn key_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../idp-bridge/test_vectors/spid-sp-test-idp")
    }

    /// Logs in; returns the session cookie pair and the NameID.
    async fn login(gw: &Gateway, c: &reqwest::Client) -> (String, String) {
        let (id, binding, relay) =
            super::full::start(gw, c, &gw.url("portal.localhost", "/")).await;
        let b = ResponseBuilder::new(
            IDP,
            "http://portal.localhost/.sso/metadata",
            &gw.url("portal.localhost", "/.sso/acs"),
            &id,
        );
        let answer = b.to_base64(&idp_key()).expect("sign");
        let r = super::full::post_acs(gw, c, &binding, &answer, &relay).await;
        assert_eq!(r.status(), 200);
        assert!(onward_of(&r).is_some());
        let session = cookie_pair(&r);
        (session, b.name_id)
    }

    #[test]
    fn logout_ends_the_session_here_and_at_the_idp() {
        let gw = gateway();
        let c = gw.client();
        rt().block_on(async {
            let (session, name_id) = login(&gw, &c).await;
            assert_eq!(session_status(&gw, gw.port, "portal.localhost", &session).await, 200);
            let r = c.get(gw.url("portal.localhost", "/.sso/logout")).header("cookie", &session).header("sec-fetch-site", "same-origin").send().await.expect("send");
            assert_eq!(r.status(), 302);
            assert!(r.headers()["set-cookie"].to_str().expect("ascii").contains("Max-Age=0"));
            let location = location_of(&r);
            assert!(location.starts_with("https://localhost:8443/") && location.contains("Signature="), "{location}");
            let request = saml_param(&location, "SAMLRequest");
            assert!(request.contains(&format!(">{name_id}</saml:NameID>")), "{request}");
            assert_eq!(session_status(&gw, gw.port, "portal.localhost", &session).await, 401, "the session ends before the IdP answers");

            // The IdP's signed LogoutResponse comes back to /.sso/slo.
            let slo = gw.url("portal.localhost", "/.sso/slo");
            let response = format!(
                "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_lo\" Version=\"2.0\" IssueInstant=\"2026-11-26T08:00:00.000Z\" Destination=\"{slo}\" InResponseTo=\"{}\"><saml:Issuer>{IDP}</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status></samlp:LogoutResponse>",
                xml_attr(&request, "ID").expect("ID")
            );
            let url = idp_redirect(&key_dir().join("private.key"), &key_dir().join("public.cert"), &slo, "SAMLResponse", &response).expect("sign");
            let r = c.get(&url).send().await.expect("send");
            assert_eq!(r.status(), 200);
            assert!(r.text().await.expect("text").contains("Sei uscito"));
            assert_eq!(c.get(&url).send().await.expect("send").status(), 403, "an answer is accepted once");
            // Unsigned: refused.
            let unsigned = url.split("&SigAlg=").next().expect("message").to_string();
            assert_eq!(c.get(&unsigned).send().await.expect("send").status(), 403);
        });
    }

    #[test]
    fn an_idp_initiated_logout_ends_the_session_and_is_answered() {
        let gw = gateway();
        let c = gw.client();
        rt().block_on(async {
            let (session, name_id) = login(&gw, &c).await;
            let (other, _) = login(&gw, &c).await;
            let slo = gw.url("portal.localhost", "/.sso/slo");
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let request = format!(
                "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_idp1\" Version=\"2.0\" IssueInstant=\"{now}\" Destination=\"{slo}\"><saml:Issuer>{IDP}</saml:Issuer><saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:transient\" NameQualifier=\"{IDP}\">{name_id}</saml:NameID></samlp:LogoutRequest>"
            );
            let url = idp_redirect(&key_dir().join("private.key"), &key_dir().join("public.cert"), &slo, "SAMLRequest", &request).expect("sign");
            let r = c.get(&url).send().await.expect("send");
            assert_eq!(r.status(), 302);
            let location = location_of(&r);
            let answer = saml_param(&location, "SAMLResponse");
            assert!(answer.contains("InResponseTo=\"_idp1\"") && answer.contains("status:Success"), "{answer}");
            assert_eq!(session_status(&gw, gw.port, "portal.localhost", &session).await, 401);
            assert_eq!(session_status(&gw, gw.port, "portal.localhost", &other).await, 200, "only that subject's sessions end");
            assert_eq!(c.get(&url).send().await.expect("send").status(), 403, "a LogoutRequest works once");
        });
    }
}

#[test]
fn the_post_binding_sends_a_signed_request_with_an_auto_submitting_form() {
    let gw = gateway();
    let c = gw.client();
    rt().block_on(async {
        let url = gw.url(
            "portal.localhost",
            &format!(
                "/.sso/login?idp={}&binding=post",
                enc("https://localhost:8443")
            ),
        );
        let r = c.get(url).send().await.expect("send");
        assert_eq!(r.status(), 200);
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(
            csp.contains("script-src 'sha256-")
                && csp.contains("form-action https://localhost:8443"),
            "{csp}"
        );
        assert!(r.headers()["set-cookie"]
            .to_str()
            .expect("ascii")
            .starts_with("varco_login="));
        let page = r.text().await.expect("text");
        assert!(
            page.contains("action=\"https://localhost:8443/samlsso\"")
                && page.contains("name=\"RelayState\""),
            "{page}"
        );
        let value = page
            .split("name=\"SAMLRequest\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("SAMLRequest");
        let xml = String::from_utf8(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, value).expect("b64"),
        )
        .expect("utf8");
        assert!(
            xml.contains("<ds:SignatureValue>")
                && xml.contains("Destination=\"https://localhost:8443/samlsso\""),
            "{xml}"
        );
    });
}

/// Verifies an EdDSA JWT against a JWK set; returns its claims.
fn verify_jwt(token: &str, jwks: &serde_json::Value) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (h, p, sig) = (parts.next()?, parts.next()?, parts.next()?);
    let header: serde_json::Value = serde_json::from_slice(&b64.decode(h).ok()?).ok()?;
    if header["alg"] != "EdDSA" {
        return None;
    }
    let jwk = jwks["keys"]
        .as_array()?
        .iter()
        .find(|k| k["kid"] == header["kid"])?;
    let public = openssl::pkey::PKey::public_key_from_raw_bytes(
        &b64.decode(jwk["x"].as_str()?).ok()?,
        openssl::pkey::Id::ED25519,
    )
    .ok()?;
    let mut v = openssl::sign::Verifier::new_without_digest(&public).ok()?;
    v.verify_oneshot(&b64.decode(sig).ok()?, format!("{h}.{p}").as_bytes())
        .ok()?
        .then_some(())?;
    serde_json::from_slice(&b64.decode(p).ok()?).ok()
}

mod one_login {

    use base64::Engine as _;
    use idp_bridge::insecure_test_idp::{ResponseBuilder, TestIdpKey};

    use super::*;

    const IDP: &str = "https://localhost:8443";

    fn gateway() -> Gateway {
        let be = echo("one-login");
        let mut tari = Svc::public("tari", "a.test", "/tari/", be);
        tari.level = "SpidL2";
        tari.extra = "attributes = [\"fiscalNumber\", \"name\", \"familyName\"]\nheaders = { \"X-CF\" = \"fiscalNumber\" }";
        let mut other = Svc::public("altro", "b.test", "/", be);
        other.level = "SpidL1";
        other.extra = "attributes = [\"fiscalNumber\"]";
        let mut strong = Svc::public("forte", "a.test", "/forte/", be);
        strong.level = "SpidL3";
        Gateway::start(
            "",
            &[(
                "a.toml",
                policy_toml("c_a001", "046001", &[tari, other, strong]),
            )],
        )
    }

    #[test]
    fn one_login_reaches_every_service_with_trusted_headers() {
        let gw = gateway();
        let c = gw.client();
        let key_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../idp-bridge/test_vectors/spid-sp-test-idp");
        let key = TestIdpKey::from_pem(
            &std::fs::read(key_dir.join("private.key")).expect("key"),
            &std::fs::read(key_dir.join("public.cert")).expect("cert"),
        )
        .expect("key");
        rt().block_on(async {
            // 1. The service sends the citizen to the portal's login.
            let r = c
                .get(gw.url("a.test", "/tari/avviso"))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 302);
            let login = location_of(&r);
            let handoff_binding = cookie_pair(&r);
            // 2. The citizen picks the IdP.
            let r = c
                .get(format!("{login}&idp={}", enc(IDP)))
                .send()
                .await
                .expect("send");
            let binding = cookie_pair(&r);
            let to_idp = location_of(&r);
            let id = xml_attr(&saml_param(&to_idp, "SAMLRequest"), "ID").expect("ID");
            // 3. The IdP answers; the portal hands the session over to a.test.
            let answer = ResponseBuilder::new(
                IDP,
                "http://portal.localhost/.sso/metadata",
                &gw.url("portal.localhost", "/.sso/acs"),
                &id,
            )
            .to_base64(&key)
            .expect("sign");
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("SAMLResponse", &answer)
                .finish();
            let r = c
                .post(gw.url("portal.localhost", "/.sso/acs"))
                .header("cookie", &binding)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("send");
            assert_eq!(
                r.status(),
                200,
                "a page that goes on, not a redirect after the POST"
            );
            let portal_session = cookie_pair(&r);
            let handoff = onward_of(&r).expect("onward");
            assert!(
                handoff.starts_with(&gw.url("a.test", "/.sso/handoff?code=")),
                "{handoff}"
            );
            // 4. The handoff sets a.test's cookie and returns to the service, for the browser
            // a.test sent to log in only.
            let r = c.get(&handoff).send().await.expect("send");
            assert_eq!(r.status(), 403, "without a.test's binding cookie");
            let r = c
                .get(&handoff)
                .header("cookie", &handoff_binding)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 302);
            assert_eq!(location_of(&r), gw.url("a.test", "/tari/avviso"));
            let a_session = cookie_pair(&r);
            assert_eq!(
                c.get(&handoff)
                    .header("cookie", &handoff_binding)
                    .send()
                    .await
                    .expect("send")
                    .status(),
                403,
                "a handoff code works once"
            );
            // 5. The back-end gets the identity, and nothing the client claimed.
            let r = c
                .get(gw.url("a.test", "/tari/avviso"))
                .header("cookie", format!("{a_session}; tema=scuro"))
                .header("X-Varco-Fiscal-Number", "VRDGPP80A01H501X")
                .header("x_cf", "VRDGPP80A01H501X")
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200);
            let j: serde_json::Value = r.json().await.expect("json");
            let h = received_headers(&j);
            let get = |n: &str| {
                h.iter()
                    .filter(|(k, _)| k == n)
                    .map(|(_, v)| v.as_str())
                    .collect::<Vec<_>>()
            };
            assert_eq!(get("x-varco-fiscal-number"), ["RSSMRA80A01H501U"]);
            assert_eq!(get("x-cf"), ["RSSMRA80A01H501U"]);
            assert_eq!(get("x-varco-name"), ["Mario"]);
            assert_eq!(get("x-varco-family-name"), ["Rossi"]);
            assert_eq!(get("x-varco-level"), ["SpidL2"]);
            assert_eq!(get("x-varco-comune"), ["c_a001"]);
            assert_eq!(get("x-varco-idp"), [IDP]);
            assert_eq!(
                get("cookie"),
                ["tema=scuro"],
                "varco's cookies never reach a back-end"
            );
            assert!(get("x_cf").is_empty());
            // The signed JWT verifies with the published keys, for this service only.
            let token = get("x-varco-assertion")
                .first()
                .expect("X-Varco-Assertion")
                .to_string();
            let jwks: serde_json::Value = c
                .get(gw.url("portal.localhost", "/.sso/jwks.json"))
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("json");
            let claims = verify_jwt(&token, &jwks).expect("the JWT verifies with the JWKS");
            assert_eq!(claims["aud"], "c_a001/tari");
            assert_ne!(
                claims["aud"], "c_a001/altro",
                "a token for one service is no good for another"
            );
            assert_eq!(
                claims["iss"],
                format!("http://portal.localhost:{}", gw.port)
            );
            assert_eq!(claims["level"], "SpidL2");
            assert_eq!(claims["attributes"]["fiscalNumber"], "RSSMRA80A01H501U");
            let lifetime =
                claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat");
            assert!(lifetime <= 60);
            let mut forged: Vec<&str> = token.split('.').collect();
            let other_claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::json!({"aud": "c_a001/tari", "level": "SpidL3"}).to_string());
            forged[1] = &other_claims;
            assert!(
                verify_jwt(&forged.join("."), &jwks).is_none(),
                "a changed token does not verify"
            );
            // 6. Another host of another service: no second IdP login, a handoff straight away.
            let r = c
                .get(gw.url("b.test", "/pratiche"))
                .send()
                .await
                .expect("send");
            let login_b = location_of(&r);
            let r = c
                .get(&login_b)
                .header("cookie", &portal_session)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 302);
            assert!(
                location_of(&r).starts_with(&gw.url("b.test", "/.sso/handoff?code=")),
                "one login, no IdP: {}",
                location_of(&r)
            );
            // A code made for b.test is refused on a.test.
            let stolen = location_of(&r).replace("b.test", "a.test");
            assert_eq!(c.get(&stolen).send().await.expect("send").status(), 403);
            // 7. A stronger service asks for a new login at its level (the L2 session is not enough).
            let r = c
                .get(gw.url("a.test", "/forte/"))
                .header("cookie", &a_session)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 302);
            let login_strong = location_of(&r);
            assert!(login_strong.contains("&level=SpidL3&hb="), "{login_strong}");
            let r = c
                .get(&login_strong)
                .header("cookie", &portal_session)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200, "the choice page, for a login at SpidL3");
        });
    }
}

/// A logo host: answers `/logo.png` with a PNG and anything else with an HTML page, counting
/// requests.
fn logo_host() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let listener = rt()
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let h = hits.clone();
    rt().spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let (ctype, body): (&str, &[u8]) = if head.starts_with("GET /logo.png ") {
                    ("image/png", catalog::FAVICON)
                } else {
                    ("text/html", b"<script>alert(1)</script>")
                };
                let _ = conn
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                let _ = conn.write_all(body).await;
            });
        }
    });
    (port, hits)
}

#[test]
fn idp_logos_are_served_by_varco_and_never_hot_linked() {
    use std::sync::atomic::Ordering;
    let (port, hits) = logo_host();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../idp-bridge/test_vectors/spid-sp-test-idp.xml");
    let xml = std::fs::read_to_string(&fixture).expect("fixture");
    let logo_url = format!("http://127.0.0.1:{port}/logo.png");
    let with_logo = xml.replacen(
        "<ns0:KeyDescriptor",
        &format!("<ns0:Extensions><mdui:UIInfo xmlns:mdui=\"urn:oasis:names:tc:SAML:metadata:ui\"><mdui:Logo height=\"32\" width=\"32\">{logo_url}</mdui:Logo></mdui:UIInfo></ns0:Extensions><ns0:KeyDescriptor"),
        1,
    );
    assert_ne!(with_logo, xml);
    let dir = tempfile::tempdir().expect("tempdir");
    let metadata = dir.path().join("idp-with-logo.xml");
    std::fs::write(&metadata, &with_logo).expect("write");
    let gw = Gateway::start_edited("", &pub_and_tari_policies(echo("logos")), |text, _| {
        text.replace(
            &fixture.display().to_string(),
            &metadata.display().to_string(),
        )
    });
    let c = gw.client();
    let choice = || {
        rt().block_on(async {
            c.get(gw.url("portal.localhost", "/.sso/login?level=SpidL2"))
                .send()
                .await
                .expect("send")
                .text()
                .await
                .expect("body")
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let page = loop {
        let page = choice();
        if page.contains("/.sso/logos/") {
            break page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the logo never reached the cache: {page}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        !page.contains(&format!("127.0.0.1:{port}")),
        "the page hot-links the IdP's host"
    );
    let local = page
        .split("src=\"/.sso/logos/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("logo src")
        .to_string();
    rt().block_on(async {
        let r = c
            .get(gw.url("a.test", &format!("/.sso/logos/{local}")))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/png");
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("sandbox"));
        assert_eq!(&r.bytes().await.expect("body")[..], catalog::FAVICON);
        let unknown = c
            .get(gw.url("portal.localhost", "/.sso/logos/0000"))
            .send()
            .await
            .expect("send");
        assert_eq!(unknown.status(), 404);
    });
    // A reload does not fetch it again; a logo that is not an image is left out.
    assert_eq!(hits.load(Ordering::Relaxed), 1);
    std::fs::write(&metadata, with_logo.replace("/logo.png", "/page.html")).expect("write");
    let main = gw.config_path();
    std::fs::write(&main, std::fs::read_to_string(&main).expect("read") + "\n").expect("touch");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while hits.load(Ordering::Relaxed) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the new logo was never fetched"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let page = choice();
    assert!(
        !page.contains("<img src=\"/.sso/logos/") && !page.contains("page.html"),
        "{page}"
    );
    assert!(page.contains("Entra con SPID"));
}
