//! One login for every service: the session reaches each service host, with trusted headers and
//! a JWT that verifies with the published keys.

use base64::Engine as _;
use idp_bridge::insecure_test_idp::{ResponseBuilder, TestIdpKey};

use crate::citizen::{enc, saml_param, xml_attr};
use crate::harness::*;

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
        let lifetime = claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat");
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

/// Verifies an EdDSA JWT against a JWK set; returns its claims.
pub(crate) fn verify_jwt(token: &str, jwks: &serde_json::Value) -> Option<serde_json::Value> {
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
