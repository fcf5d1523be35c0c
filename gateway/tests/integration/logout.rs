//! Logout: varco ends the session and asks the IdP to end its own; the IdP asks varco to end one.

use idp_bridge::insecure_test_idp::{idp_redirect, ResponseBuilder};

use crate::citizen::{idp_key, saml_param, session_status, xml_attr};
use crate::harness::*;
use crate::login::{full, gateway};

const IDP: &str = "https://localhost:8443";

fn key_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../idp-bridge/test_vectors/spid-sp-test-idp")
}

/// Logs in; returns the session cookie pair and the NameID.
async fn login(gw: &Gateway, c: &reqwest::Client) -> (String, String) {
    let (id, binding, relay) = full::start(gw, c, &gw.url("portal.localhost", "/")).await;
    let b = ResponseBuilder::new(
        IDP,
        "http://portal.localhost/.sso/metadata",
        &gw.url("portal.localhost", "/.sso/acs"),
        &id,
    );
    let answer = b.to_base64(&idp_key()).expect("sign");
    let r = full::post_acs(gw, c, &binding, &answer, &relay).await;
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
