//! The ID token checks against hostile tokens: every refusal OpenID Connect Core §3.1.3.7 asks
//! for, signed with real keys (josekit), verified as the callback verifies them.

use std::path::Path;

use base64::Engine as _;
use josekit::jwk::JwkSet;
use policies::{ClientAuth, IdpKind, Level, OidcConfig};
use serde_json::{json, Map, Value};

use super::*;
use crate::oidc::jose::{verify, RpKey, VerifyError};

const ISSUER: &str = "https://op.example";
const CLIENT: &str = "varco";

fn config() -> OidcConfig {
    OidcConfig {
        issuer: ISSUER.into(),
        client_id: CLIENT.into(),
        client_auth: ClientAuth::PrivateKeyJwt,
        key: None,
        display_name: "OP".into(),
        kind: IdpKind::Spid,
        scopes: vec!["openid".into()],
        claims: vec![(
            Attribute::FiscalNumber,
            "https://attributes.eid.gov.it/fiscal_number".into(),
        )],
        acr: Level::ALL
            .into_iter()
            .map(|l| (l, l.class_ref().to_string()))
            .collect(),
        federation: false,
    }
}

/// The OP's signing key: a fresh RSA key, with its public JWK Set and its public key (DER).
fn op_key() -> (RpKey, JwkSet, Vec<u8>) {
    let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
    let pem = rsa.private_key_to_pem().expect("pem");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("op.pem");
    std::fs::write(&path, &pem).expect("write");
    let key = RpKey::load(&path).expect("key");
    let set = JwkSet::from_bytes(json!({ "keys": [key.public_jwk()] }).to_string()).expect("set");
    let public_der = rsa.public_key_to_der().expect("der");
    (key, set, public_der)
}

fn pending(p: &OidcProvider, binding: &BrowserBinding, level: Level) -> PendingLogin {
    PendingLogin::sent(
        "rid".into(),
        Utc::now() - chrono::Duration::seconds(5),
        RelayDigest::of(b"state"),
        AttributeMask::EMPTY,
        LoginStart {
            provider: crate::Provider::Oidc(p),
            level,
            attribute_set: 0,
            wanted: AttributeMask::EMPTY,
            binding,
            return_to: "https://portal.example/".into(),
            replaces: None,
            handoff_binding: None,
            prefer_post: false,
            audience: policies::Audience::Sp,
        },
    )
}

fn good_claims() -> Map<String, Value> {
    let now = now_secs();
    let v = json!({
        "iss": ISSUER, "aud": CLIENT, "sub": "pairwise-1", "iat": now, "exp": now + 300,
        "nonce": "the-nonce", "acr": "https://www.spid.gov.it/SpidL2",
        "at_hash": half_hash("RS256", "the-access-token"),
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// Signs and verifies `claims`, then runs the ID token checks on them.
fn check(claims: Map<String, Value>, level: Level) -> Result<CheckedIdToken, OidcError> {
    let (key, set, _) = op_key();
    let p = OidcProvider::for_tests(config(), None);
    let binding = BrowserBinding::new();
    let token = key.sign(claims, None).expect("sign");
    let (verified, alg) = verify(&token, &set).map_err(|e| OidcError::IdToken(format!("{e:?}")))?;
    check_id_token(
        &p,
        &pending(&p, &binding, level),
        &RelayDigest::of(b"the-nonce"),
        &verified,
        alg,
        Some("the-access-token"),
        now_secs(),
    )
}

type Edit = Box<dyn Fn(&mut Map<String, Value>)>;

fn set(key: &'static str, value: Value) -> Edit {
    Box::new(move |c| {
        c.insert(key.into(), value.clone());
    })
}

fn remove(key: &'static str) -> Edit {
    Box::new(move |c| {
        c.remove(key);
    })
}

#[test]
fn a_good_id_token_gives_the_level_and_subject() {
    let t = check(good_claims(), Level::SpidL2).expect("accepted");
    assert_eq!((t.sub.as_str(), t.level), ("pairwise-1", Level::SpidL2));
    let mut higher = good_claims();
    higher.insert("acr".into(), "https://www.spid.gov.it/SpidL3".into());
    assert_eq!(
        check(higher, Level::SpidL2).expect("L3 serves L2").level,
        Level::SpidL3
    );
}

#[test]
fn every_wrong_claim_is_refused() {
    let now = now_secs();
    let cases: Vec<(&str, Edit)> = vec![
        ("wrong issuer", set("iss", "https://evil.example".into())),
        ("wrong audience", set("aud", "another-client".into())),
        (
            "several audiences, no azp",
            set("aud", json!([CLIENT, "another-client"])),
        ),
        ("azp of another client", set("azp", "another-client".into())),
        (
            "wrong nonce",
            set("nonce", "a-nonce-from-another-login".into()),
        ),
        ("no nonce", remove("nonce")),
        ("expired", set("exp", (now - 3600).into())),
        ("no exp", remove("exp")),
        ("issued in the future", set("iat", (now + 3600).into())),
        ("issued before the login", set("iat", (now - 3600).into())),
        (
            "at_hash of another token",
            set("at_hash", half_hash("RS256", "another-token").into()),
        ),
        ("no acr", remove("acr")),
        ("no sub", remove("sub")),
        ("empty sub", set("sub", "".into())),
    ];
    for (what, edit) in cases {
        let mut c = good_claims();
        edit(&mut c);
        assert!(check(c, Level::SpidL2).is_err(), "{what} was accepted");
    }
    // The wrong issuer is a mix-up, by its name.
    let mut c = good_claims();
    c.insert("iss".into(), "https://evil.example".into());
    assert!(matches!(check(c, Level::SpidL2), Err(OidcError::MixUp(_))));
}

#[test]
fn an_acr_below_the_level_asked_is_refused() {
    let mut c = good_claims();
    c.insert("acr".into(), "https://www.spid.gov.it/SpidL1".into());
    assert!(matches!(
        check(c.clone(), Level::SpidL2),
        Err(OidcError::LevelTooLow {
            asked: Level::SpidL2,
            ..
        })
    ));
    c.insert("acr".into(), "urn:made-up".into());
    assert!(matches!(
        check(c, Level::SpidL1),
        Err(OidcError::LevelTooLow { .. })
    ));
}

#[test]
fn unsigned_hmac_and_foreign_tokens_do_not_verify() {
    let (key, set, public_der) = op_key();
    let kid = key.public_jwk()["kid"].clone();
    let header = |h: Value| b64(h.to_string().as_bytes());
    let payload = b64(Value::Object(good_claims()).to_string().as_bytes());
    // alg=none, with and without a signature part.
    for t in [
        format!("{}.{payload}.", header(json!({"alg": "none"}))),
        format!(
            "{}.{payload}.e30",
            header(json!({"alg": "none", "kid": kid}))
        ),
    ] {
        assert!(
            matches!(verify(&t, &set), Err(VerifyError::Refused(_))),
            "{t}"
        );
    }
    // HS256 keyed with the OP's public key (the classic confusion): HMAC is never allowed.
    for secret in [
        public_der.clone(),
        key.public_jwk().to_string().into_bytes(),
    ] {
        let input = format!("{}.{payload}", header(json!({"alg": "HS256", "kid": kid})));
        let pkey = openssl::pkey::PKey::hmac(&secret).expect("hmac key");
        let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &pkey)
            .expect("signer");
        let sig = signer.sign_oneshot_to_vec(input.as_bytes()).expect("sign");
        let t = format!("{input}.{}", b64(&sig));
        assert!(
            matches!(verify(&t, &set), Err(VerifyError::Refused(m)) if m.contains("not allowed"))
        );
    }
    // Signed by another key under the OP's kid: refused. Under a kid the OP does not have:
    // worth a refresh of its keys (and then refused).
    let (other, _, _) = op_key();
    let forged = other.sign(good_claims(), None).expect("sign");
    let forged_with_op_kid = {
        let parts: Vec<&str> = forged.split('.').collect();
        let mut h: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[0])
                .expect("b64"),
        )
        .expect("json");
        h["kid"] = kid.clone();
        format!("{}.{}.{}", header(h), parts[1], parts[2])
    };
    assert!(matches!(
        verify(&forged_with_op_kid, &set),
        Err(VerifyError::Refused(_))
    ));
    assert!(matches!(
        verify(&forged, &set),
        Err(VerifyError::UnknownKey(_))
    ));
    // A tampered payload under a good signature.
    let good = key.sign(good_claims(), None).expect("sign");
    let mut parts: Vec<String> = good.split('.').map(String::from).collect();
    let mut c = good_claims();
    c.insert("acr".into(), "https://www.spid.gov.it/SpidL3".into());
    parts[1] = b64(Value::Object(c).to_string().as_bytes());
    assert!(verify(&parts.join("."), &set).is_err());
    assert!(verify(&good, &set).is_ok());
    // Garbage.
    let long = "x".repeat(300_000);
    for junk in ["", "a.b", "a.b.c", "....", long.as_str()] {
        assert!(verify(junk, &set).is_err());
    }
}

#[test]
fn a_callback_query_is_read_bounded_and_strict() {
    let c = OidcCallback::parse("code=abc&state=s&iss=https%3A%2F%2Fop.example");
    assert!(c.malformed.is_none());
    assert_eq!(c.answers(), Some(RelayDigest::of(b"s").to_param()));
    let long = format!("code={}&state=s", "x".repeat(5000));
    for bad in [
        "code=abc",
        "state=s",
        "code=a&code=b&state=s",
        long.as_str(),
    ] {
        let c = OidcCallback::parse(bad);
        assert!(c.malformed.is_some(), "{bad}");
        assert_eq!(c.answers(), None, "{bad}");
    }
    let e = OidcCallback::parse("error=access_denied&state=s");
    assert!(e.malformed.is_none() && e.error.as_deref() == Some("access_denied"));
    // The code never prints.
    assert!(
        !format!("{:?}", OidcCallback::parse("code=SECRETCODE&state=s")).contains("SECRETCODE")
    );
}

#[test]
fn provider_errors_get_their_page() {
    let e = |code: &str| OidcError::Provider {
        error: code.into(),
        description: String::new(),
    };
    assert_eq!(e("access_denied").failure(), policies::LoginFailure::Denied);
    for c in ["login_required", "consent_required", "interaction_required"] {
        assert_eq!(e(c).failure(), policies::LoginFailure::InteractionRequired);
    }
    assert_eq!(
        e("server_error").failure(),
        policies::LoginFailure::ProviderFailed
    );
    assert_eq!(
        OidcError::WrongBrowser.failure(),
        policies::LoginFailure::Expired
    );
    for err in [
        e("access_denied"),
        OidcError::NoPendingLogin,
        OidcError::Malformed("x"),
    ] {
        assert!((400..500).contains(&err.status()));
    }
}

#[test]
fn the_request_asks_for_the_level_and_a_new_login_where_needed() {
    let p = OidcProvider::for_tests(config(), None);
    assert_eq!(
        acr_values(&p, Level::SpidL2),
        [
            "https://www.spid.gov.it/SpidL2",
            "https://www.spid.gov.it/SpidL3"
        ]
    );
    assert_eq!(prompt(IdpKind::Spid, Level::SpidL1), Some("consent"));
    assert_eq!(prompt(IdpKind::Spid, Level::SpidL2), Some("consent login"));
    assert_eq!(prompt(IdpKind::Cie, Level::SpidL1), Some("consent login"));
    assert_eq!(prompt(IdpKind::Other, Level::SpidL1), None);
    assert_eq!(prompt(IdpKind::Other, Level::SpidL3), Some("login"));
    let wanted: AttributeMask = [Attribute::FiscalNumber, Attribute::Email]
        .into_iter()
        .collect();
    assert_eq!(
        Value::Object(claims_request(&p, wanted)),
        json!({"userinfo": {"https://attributes.eid.gov.it/fiscal_number": null}}),
        "only what the provider maps is asked for"
    );
}

#[test]
fn the_rp_key_publishes_its_thumbprint() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("ec.pem");
    let group =
        openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).expect("group");
    let ec = openssl::ec::EcKey::generate(&group).expect("ec");
    std::fs::write(&path, ec.private_key_to_pem().expect("pem")).expect("write");
    let k = RpKey::load(&path).expect("EC key");
    assert_eq!(k.public_jwk()["alg"], "ES256");
    assert_eq!(k.public_jwk()["kty"], "EC");
    assert!(k.public_jwk().get("d").is_none(), "no private part");
    assert_eq!(k.public_jwk()["kid"].as_str().map(str::len), Some(43));
    assert!(!format!("{k:?}").contains("BEGIN"));
    let weak = dir.path().join("weak.pem");
    let rsa = openssl::rsa::Rsa::generate(1024).expect("rsa");
    std::fs::write(&weak, rsa.private_key_to_pem().expect("pem")).expect("write");
    assert!(RpKey::load(&weak).is_err());
    assert!(RpKey::load(Path::new("/nonexistent")).is_err());
}

#[test]
fn what_a_provider_says_reaches_the_log_bounded_and_on_one_line() {
    assert_eq!(
        for_log("access_denied\r\nFAKE LOG LINE", 64),
        "access_deniedFAKE LOG LINE"
    );
    assert_eq!(for_log(&"x".repeat(1000), 256).len(), 256);
}
