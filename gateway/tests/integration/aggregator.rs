//! The Region as SPID aggregator (`sp.mode = "aggregator"`): each comune is an SP entity of its
//! own, with its metadata, ACS and SLO; a login is made for the comune of the service that asked
//! for it, and its session serves that comune's services only.

use idp_bridge::insecure_test_idp::{idp_redirect, ResponseBuilder};

use crate::citizen::{enc, idp_key, saml_param, Browser};
use crate::harness::*;
use crate::login::full;

const IDP: &str = "https://localhost:8443";

const AGGREGATOR: &str = "\n[sp.aggregator]\nipa_code = \"r_toscan\"\ncompany = \"Regione Toscana\"\nemail = \"spid@regione.toscana.example\"\nphone = \"+390554381111\"\n";

/// Two comuni: c_a001 on a.test (TARI at level 2), c_b002 on b.test (a level 1 service).
fn gateway() -> Gateway {
    aggregator_gateway("", false)
}

/// As [`gateway`]; `shared`: each comune also has a service on the shared host c.test.
fn aggregator_gateway(server_extra: &str, shared: bool) -> Gateway {
    let be = echo("aggregator");
    let fiscal = "attributes = [\"fiscalNumber\"]";
    let mut a = vec![Svc::at_level(
        "tari", "a.test", "/tari/", be, "SpidL2", fiscal,
    )];
    let mut b = vec![Svc::at_level(
        "albo", "b.test", "/albo/", be, "SpidL1", fiscal,
    )];
    if shared {
        a.push(Svc::at_level("sa", "c.test", "/a/", be, "SpidL1", fiscal));
        b.push(Svc::at_level("sb", "c.test", "/b/", be, "SpidL1", fiscal));
    }
    let policies = vec![
        ("a.toml", policy_toml("c_a001", "046001", &a)),
        ("b.toml", policy_toml("c_b002", "046002", &b)),
    ];
    Gateway::start_edited(server_extra, &policies, |main, _| {
        format!(
            "{}{AGGREGATOR}",
            main.replace(
                "audit_key = \"audit.key\"\n",
                "audit_key = \"audit.key\"\nmode = \"aggregator\"\n"
            )
        )
    })
}

fn entity(gw: &Gateway, ipa: &str) -> String {
    gw.url("portal.localhost", &format!("/pub-ag-full/{ipa}"))
}

/// A browser whose IdP knows both comuni's entities, with the ACS their metadata gives.
fn browser(gw: &Gateway) -> Browser {
    let mut b = Browser::new(gw);
    for ipa in ["c_a001", "c_b002"] {
        b.sp_entities.push((
            entity(gw, ipa),
            gw.url("portal.localhost", &format!("/.sso/acs/{ipa}")),
        ));
    }
    b
}

#[test]
fn each_comune_publishes_the_metadata_of_its_own_entity() {
    let gw = gateway();
    let c = gw.client();
    rt().block_on(async {
        let get = |path: &str| c.get(gw.url("portal.localhost", path)).send();
        let r = get("/.sso/metadata/c_a001").await.expect("send");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/samlmetadata+xml");
        let xml = r.text().await.expect("body");
        for needle in [
            format!("entityID=\"{}\"", entity(&gw, "c_a001")),
            format!(
                "Location=\"{}\"",
                gw.url("portal.localhost", "/.sso/acs/c_a001")
            ),
            format!(
                "Location=\"{}\"",
                gw.url("portal.localhost", "/.sso/slo/c_a001")
            ),
            "<spid:IPACode>c_a001</spid:IPACode><spid:Public/>".to_string(),
            "<md:Company>Comune di Prova c_a001</md:Company>".to_string(),
            "<spid:PublicServicesFullAggregator/>".to_string(),
            format!(
                "<md:OrganizationURL xml:lang=\"it\">http://a.test:{}/</md:OrganizationURL>",
                gw.port
            ),
        ] {
            assert!(xml.contains(&needle), "missing {needle}\n{xml}");
        }
        let cie = get("/.sso/metadata/cie/c_b002").await.expect("send");
        assert_eq!(cie.status(), 200);
        let cie = cie.text().await.expect("body");
        assert!(cie.contains(&format!("entityID=\"{}\"", entity(&gw, "c_b002"))));
        assert!(cie.contains("<cie:Municipality>046002</cie:Municipality>"));
        // The aggregator's own SP keeps its metadata; an unknown comune has none.
        let own = get("/.sso/metadata")
            .await
            .expect("send")
            .text()
            .await
            .expect("body");
        assert!(own.contains("entityID=\"http://portal.localhost/.sso/metadata\""));
        assert!(!own.contains("spid:entityType"));
        for path in [
            "/.sso/metadata/c_zzzz",
            "/.sso/acs/c_zzzz",
            "/.sso/slo/c_zzzz",
        ] {
            assert_eq!(get(path).await.expect("send").status(), 404, "{path}");
        }
        let post = c
            .post(gw.url("portal.localhost", "/.sso/metadata/c_a001"))
            .send()
            .await
            .expect("send");
        assert_eq!(post.status(), 405);
        let acs = get("/.sso/acs/c_a001").await.expect("send");
        assert_eq!(acs.status(), 405);
        // The choice page says whose services the login is for.
        let choice = get(&format!(
            "/.sso/login?return_to={}",
            enc(&gw.url("a.test", "/tari/"))
        ))
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
        assert!(
            choice.contains(
                "L'accesso vale per i servizi di <strong>Comune di Prova c_a001</strong>"
            ),
            "{choice}"
        );
    });
}

#[test]
fn a_login_serves_the_comune_it_was_made_for_and_no_other() {
    let gw = gateway();
    let mut b = browser(&gw);
    rt().block_on(async {
        // Comune A's service: the AuthnRequest comes from A's entity.
        let landing = b.visit(&gw.url("a.test", "/tari/avviso")).await;
        assert_eq!(landing.status, 200, "{}", landing.body);
        assert_eq!(b.seen.len(), 1);
        assert_eq!(b.seen[0].issuer(), Some(entity(&gw, "c_a001")));
        let again = b.visit(&gw.url("a.test", "/tari/altro")).await;
        assert_eq!(again.status, 200);
        assert_eq!(b.seen.len(), 1, "one login for the comune's services");

        // Comune B's service: the portal's session (A's) does not serve it; the IdP is asked
        // again, by B's entity.
        let landing = b.visit(&gw.url("b.test", "/albo/")).await;
        assert_eq!(landing.status, 200, "{}", landing.body);
        assert_eq!(b.seen.len(), 2, "a login of another comune's is not enough");
        assert_eq!(b.seen[1].issuer(), Some(entity(&gw, "c_b002")));
        let request = &b.seen[1];
        assert_eq!(
            request.attr("NameQualifier"),
            Some(entity(&gw, "c_b002")),
            "{}",
            request.xml
        );

        // The portal's catalog tells which services the session opens, and which need a login of
        // their own comune's.
        let html = b
            .get(&gw.url("portal.localhost", "/catalog"))
            .await
            .text()
            .await
            .expect("text");
        let item = |path: &str| {
            let from = html.find(path).unwrap_or_else(|| panic!("{path} listed"));
            html[from..html[from..].find("</li>").map_or(html.len(), |e| from + e)].to_string()
        };
        assert!(
            item("/albo/").contains("Si apre subito"),
            "{}",
            item("/albo/")
        );
        assert!(
            item("/tari/").contains("Ti chiederà un accesso separato per Comune di Prova c_a001"),
            "{}",
            item("/tari/")
        );

        // The portal knows the citizen at B's entity now: its session page says so.
        let session = b.get(&gw.url("portal.localhost", "/.sso/session")).await;
        assert_eq!(session.status(), 200);
        let info: serde_json::Value = session.json().await.expect("json");
        assert_eq!(info["entity_id"], entity(&gw, "c_b002"), "{info}");
    });
}

#[test]
fn on_a_host_that_comuni_share_each_comunes_service_needs_its_own_login() {
    let gw = aggregator_gateway("shared_hosts = [\"c.test\"]", true);
    let mut b = browser(&gw);
    rt().block_on(async {
        assert_eq!(b.visit(&gw.url("c.test", "/a/")).await.status, 200);
        assert_eq!(b.seen.len(), 1);
        // The host's session cookie holds A's session: B's service does not take it.
        let landing = b.visit(&gw.url("c.test", "/b/")).await;
        assert_eq!(landing.status, 200);
        assert_eq!(b.seen.len(), 2);
        assert_eq!(b.seen[1].issuer(), Some(entity(&gw, "c_b002")));
        let j: serde_json::Value = serde_json::from_str(&landing.body).expect("echo json");
        let comune = received_headers(&j)
            .into_iter()
            .find(|(k, _)| k == "x-varco-comune")
            .map(|(_, v)| v);
        assert_eq!(comune.as_deref(), Some("c_b002"));
        // One session per browser: back at A, the IdP is asked in A's name again.
        assert_eq!(b.visit(&gw.url("c.test", "/a/")).await.status, 200);
        assert_eq!(b.seen.len(), 3);
        assert_eq!(b.seen[2].issuer(), Some(entity(&gw, "c_a001")));
    });
}

#[test]
fn an_answer_for_one_comune_is_refused_at_another_comunes_acs() {
    let gw = gateway();
    let c = gw.client();
    rt().block_on(async {
        let (id, binding, relay) = full::start(&gw, &c, &gw.url("a.test", "/tari/")).await;
        // A correct answer for A's entity, posted to B's ACS (and one naming B's entity, to
        // B's ACS): neither makes a session.
        for (audience, acs) in [("c_a001", "c_b002"), ("c_b002", "c_b002")] {
            let acs_path = format!("/.sso/acs/{acs}");
            let answer = ResponseBuilder::new(
                IDP,
                &entity(&gw, audience),
                &gw.url("portal.localhost", &acs_path),
                &id,
            )
            .to_base64(&idp_key())
            .expect("sign");
            let r = full::post_acs_at(&gw, &c, &acs_path, &binding, &answer, &relay).await;
            assert!(
                r.status() == 400 || r.status() == 403,
                "{audience} at {acs}: {}",
                r.status()
            );
            assert!(r
                .headers()
                .get("set-cookie")
                .is_none_or(|v| !v.to_str().unwrap_or("").contains("varco_session=")));
        }
    });
}

#[test]
fn logout_and_single_logout_speak_for_the_comunes_entity() {
    let gw = gateway();
    let mut b = browser(&gw);
    rt().block_on(async {
        // The IdP asks A's entity to end a session, at A's SLO: the answer comes from A.
        let landing = b.visit(&gw.url("a.test", "/tari/")).await;
        assert_eq!(landing.status, 200);
        let name_id = b.idp.name_id.clone();
        let slo = gw.url("portal.localhost", "/.sso/slo/c_a001");
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let request = format!(
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_idpA\" Version=\"2.0\" IssueInstant=\"{now}\" Destination=\"{slo}\"><saml:Issuer>{IDP}</saml:Issuer><saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:transient\" NameQualifier=\"{IDP}\">{name_id}</saml:NameID></samlp:LogoutRequest>"
        );
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../idp-bridge/test_vectors/spid-sp-test-idp");
        let sign = |to: &str, xml: &str| {
            idp_redirect(&dir.join("private.key"), &dir.join("public.cert"), to, "SAMLRequest", xml)
                .expect("sign")
        };
        // The same signed request at B's SLO: its Destination (A's) is not where it came.
        let signed = sign(&slo, &request);
        let at_b = signed.replacen("/.sso/slo/c_a001", "/.sso/slo/c_b002", 1);
        let r = b.get(&at_b).await;
        assert!(
            r.status() == 400 || r.status() == 403,
            "a LogoutRequest for A's entity, at B's endpoint: {}",
            r.status()
        );
        let r = b.get(&signed).await;
        assert_eq!(r.status(), 302);
        let answer = saml_param(&location_of(&r), "SAMLResponse");
        assert!(answer.contains("InResponseTo=\"_idpA\""), "{answer}");
        assert!(answer.contains(&format!(">{}</saml:Issuer>", entity(&gw, "c_a001"))), "{answer}");

        // Logged in again for B: varco's own logout asks the IdP in B's name.
        let landing = b.visit(&gw.url("b.test", "/albo/")).await;
        assert_eq!(landing.status, 200);
        let session = b
            .cookie("portal.localhost", "varco_session")
            .expect("a portal session");
        let r = gw
            .client()
            .get(gw.url("portal.localhost", "/.sso/logout"))
            .header("cookie", format!("varco_session={session}"))
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 302);
        let location = location_of(&r);
        let logout = saml_param(&location, "SAMLRequest");
        assert!(logout.contains(&format!(">{}</saml:Issuer>", entity(&gw, "c_b002"))), "{logout}");
    });
}

#[test]
fn the_export_for_agid_holds_every_entity_signed_and_the_services() {
    let gw = gateway();
    let config = gw.config_path();
    let config = config.to_str().expect("utf8");
    let (code, out, err) = varco(&["metadata", "--config", config, "--comune", "c_b002"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("entityID=\"{}\"", entity(&gw, "c_b002"))));
    let (code, _, err) = varco(&["metadata", "--config", config, "--comune", "c_zzzz"]);
    assert_eq!(code, 1);
    assert!(err.contains("no comune with IPA code \"c_zzzz\""), "{err}");

    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("agid");
    let (code, out, err) = varco(&[
        "metadata",
        "--config",
        config,
        "--export",
        out_dir.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("10 files in "), "{out}");
    for f in [
        "spid/sp.xml",
        "cie/sp.xml",
        "spid/c_a001.xml",
        "cie/c_a001.xml",
        "spid/c_b002.xml",
        "cie/c_b002.xml",
    ] {
        let xml = std::fs::read_to_string(out_dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(xml.contains("<ds:SignatureValue>"), "{f} is signed");
    }
    assert!(std::fs::read_to_string(out_dir.join("spid/c_a001.xml"))
        .expect("read")
        .contains(&format!("entityID=\"{}\"", entity(&gw, "c_a001"))));
    let csv = std::fs::read_to_string(out_dir.join("services.csv")).expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "comune,ipa_code,entity_id,service,service_name,url,level,attribute_set,attributes"
    );
    assert_eq!(
        lines[1],
        format!(
            "Comune di Prova c_a001,c_a001,{},tari,Servizio tari,http://a.test:{}/tari/,SpidL2,0,fiscalNumber",
            entity(&gw, "c_a001"),
            gw.port
        )
    );
    assert_eq!(lines.len(), 3, "{csv}");

    // Every file is in the manifest with its digest, and the manifest's signature verifies
    // with the SP certificate.
    let manifest = std::fs::read_to_string(out_dir.join("SHA256SUMS")).expect("manifest");
    assert_eq!(manifest.lines().count(), 7, "{manifest}");
    for line in manifest.lines() {
        let (digest, name) = line.split_once("  ").expect("digest  name");
        let bytes = std::fs::read(out_dir.join(name)).expect("listed file");
        let actual = idp_bridge::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        assert_eq!(digest, actual, "{name}");
    }
    let cert = openssl::x509::X509::from_pem(&std::fs::read(out_dir.join("sp.crt")).expect("crt"))
        .expect("pem");
    let key = cert.public_key().expect("key");
    let signature = std::fs::read(out_dir.join("SHA256SUMS.sig")).expect("sig");
    let verify = |data: &[u8]| {
        let mut v = openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key)
            .expect("verifier");
        v.update(data).expect("update");
        v.verify(&signature).expect("verify")
    };
    assert!(verify(manifest.as_bytes()));
    assert!(!verify(manifest.replace("c_a001", "c_a002").as_bytes()));
}
