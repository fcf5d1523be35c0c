//! Trust chains against a small federation served on loopback (a trust anchor, an intermediate,
//! a provider, each with its own keys): the good chain, and every way an attacker would forge
//! one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

/// What the test server answers, by path and query.
type Routes = Arc<Mutex<HashMap<String, String>>>;

/// A server for `routes` on a free loopback port; returns its origin.
async fn serve(routes: Routes) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let target = head.split(' ').nth(1).unwrap_or("").to_string();
                let found = routes.lock().expect("routes").get(&target).cloned();
                let (status, body) = match found {
                    Some(b) => ("200 OK", b),
                    None => ("404 Not Found", String::new()),
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/entity-statement+jwt\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    origin
}

fn key(dir: &std::path::Path, name: &str) -> RpKey {
    let path = dir.join(name);
    let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
    std::fs::write(&path, rsa.private_key_to_pem().expect("pem")).expect("write");
    RpKey::load(&path).expect("key")
}

fn jwks(k: &RpKey) -> Value {
    json!({ "keys": [k.public_jwk()] })
}

fn sign(k: &RpKey, claims: Value) -> String {
    let Value::Object(m) = claims else {
        return String::new();
    };
    k.sign(m, Some("entity-statement+jwt")).expect("sign")
}

fn times() -> (i64, i64) {
    let t = now();
    (t - 10, t + 3600)
}

/// The provider's own metadata, as it declares it.
fn op_metadata(op: &str) -> Value {
    json!({
        "issuer": op,
        "authorization_endpoint": format!("{op}/authorization"),
        "token_endpoint": format!("{op}/token"),
        "userinfo_endpoint": format!("{op}/userinfo"),
        "jwks": { "keys": [] },
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "scopes_supported": ["openid", "offline_access"],
        "code_challenge_methods_supported": ["S256"],
    })
}

struct Fed {
    origin: String,
    routes: Routes,
    ta: RpKey,
    mid: RpKey,
    op: RpKey,
    ta_jwks_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Fed {
    fn id(&self, who: &str) -> String {
        format!("{}/{who}", self.origin)
    }

    fn put(&self, path: &str, body: String) {
        self.routes
            .lock()
            .expect("routes")
            .insert(path.to_string(), body);
    }

    fn sub_query(&self, who: &str) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("sub", &self.id(who))
            .finish()
    }

    /// The entity configuration of `who`, signed by `signer`, declaring `declared` keys.
    fn ec(&self, who: &str, signer: &RpKey, declared: &RpKey, extra: Value) -> String {
        let (iat, exp) = times();
        let mut c = json!({
            "iss": self.id(who), "sub": self.id(who), "iat": iat, "exp": exp,
            "jwks": jwks(declared),
        });
        if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
            c.extend(e);
        }
        sign(signer, c)
    }

    /// `superior`'s statement about `who` (vouching for `keys`), signed by `signer`.
    fn about(
        &self,
        superior: &str,
        who: &str,
        signer: &RpKey,
        keys: &RpKey,
        extra: Value,
    ) -> String {
        let (iat, exp) = times();
        let mut c = json!({
            "iss": self.id(superior), "sub": self.id(who), "iat": iat, "exp": exp,
            "jwks": jwks(keys),
        });
        if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
            c.extend(e);
        }
        sign(signer, c)
    }

    fn publish_ta(&self, signer: &RpKey, max_path_length: u64) {
        let ec = self.ec(
            "ta",
            signer,
            signer,
            json!({
                "metadata": { "federation_entity": { "federation_fetch_endpoint": format!("{}/fetch", self.id("ta")) } },
                "constraints": { "max_path_length": max_path_length },
            }),
        );
        self.put("/ta/.well-known/openid-federation", ec);
    }

    /// The provider directly below the trust anchor, with a policy on its metadata.
    fn publish_op_under_ta(&self) {
        let op = self.id("op");
        self.put(
            "/op/.well-known/openid-federation",
            self.ec(
                "op",
                &self.op,
                &self.op,
                json!({ "authority_hints": [self.id("ta")], "metadata": { "openid_provider": op_metadata(&op) } }),
            ),
        );
        self.put(
            &format!("/ta/fetch?{}", self.sub_query("op")),
            self.about(
                "ta",
                "op",
                &self.ta,
                &self.op,
                json!({ "metadata_policy": { "openid_provider": {
                    "token_endpoint_auth_methods_supported": { "subset_of": ["private_key_jwt"] },
                    "scopes_supported": { "superset_of": ["openid"] },
                    "acr_values_supported": { "default": ["https://www.spid.gov.it/SpidL2"] },
                } } }),
            ),
        );
    }

    fn federation(&self) -> Federation {
        let fed_key = self._dir.path().join("varco-fed.pem");
        let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
        std::fs::write(&fed_key, rsa.private_key_to_pem().expect("pem")).expect("write");
        Federation::load(
            &policies::FederationConfig {
                trust_anchors: vec![policies::TrustAnchor {
                    entity_id: self.id("ta"),
                    jwks: self.ta_jwks_file.clone(),
                }],
                authority_hints: vec![self.id("ta")],
                federation_keys: vec![fed_key],
                trust_marks: None,
                encryption_key: None,
            },
            "http://portal.localhost:8080",
        )
        .expect("federation")
    }
}

async fn fed() -> Fed {
    let dir = tempfile::tempdir().expect("dir");
    let routes: Routes = Arc::default();
    let origin = serve(routes.clone()).await;
    let (ta, mid, op) = (
        key(dir.path(), "ta"),
        key(dir.path(), "mid"),
        key(dir.path(), "op"),
    );
    let ta_jwks_file = dir.path().join("ta.jwks.json");
    std::fs::write(&ta_jwks_file, jwks(&ta).to_string()).expect("write");
    let f = Fed {
        origin,
        routes,
        ta,
        mid,
        op,
        ta_jwks_file,
        _dir: dir,
    };
    f.publish_ta(&f.ta, 1);
    f.publish_op_under_ta();
    f
}

fn http() -> Http {
    Http::new().expect("client")
}

async fn resolve(f: &Fed) -> Result<Arc<Resolved>, OidcError> {
    f.federation().resolve(&http(), &f.id("op")).await
}

fn refused_with(r: Result<Arc<Resolved>, OidcError>, what: &str) {
    match r {
        Err(OidcError::Federation(m)) => assert!(m.contains(what), "{m}"),
        Err(e) => panic!("expected a federation refusal ({what}), got {e}"),
        Ok(r) => panic!("expected a refusal ({what}), got a chain {:?}", r.chain),
    }
}

#[tokio::test]
async fn a_good_chain_gives_the_metadata_with_the_policy_applied() {
    let f = fed().await;
    let r = resolve(&f).await.expect("resolved");
    assert_eq!(r.chain, [f.id("op"), f.id("ta")]);
    assert_eq!(r.metadata.issuer, f.id("op"));
    assert_eq!(r.metadata.token_endpoint, format!("{}/token", f.id("op")));
    assert_eq!(
        r.metadata.jwks,
        Some(json!({ "keys": [] })),
        "the keys come from the chain"
    );
    assert!(r.expires > now());
}

#[tokio::test]
async fn the_policy_is_applied_and_a_breach_refuses_the_chain() {
    let mut md: Map<String, Value> = serde_json::from_value(op_metadata("x")).expect("map");
    let policy: Map<String, Value> = serde_json::from_value(json!({
        "token_endpoint_auth_methods_supported": { "subset_of": ["private_key_jwt"] },
        "acr_values_supported": { "default": ["a"] },
        "grant_types_supported": { "value": ["authorization_code"] },
        "scopes_supported": { "add": ["profile"] },
    }))
    .expect("map");
    apply_policy(&mut md, &policy).expect("applies");
    assert_eq!(
        md["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    assert_eq!(md["acr_values_supported"], json!(["a"]));
    assert_eq!(md["grant_types_supported"], json!(["authorization_code"]));
    assert_eq!(
        md["scopes_supported"],
        json!(["openid", "offline_access", "profile"])
    );
    for breach in [
        json!({ "issuer": { "one_of": ["https://another.example"] } }),
        json!({ "scopes_supported": { "superset_of": ["email"] } }),
        json!({ "userinfo_encryption_alg_values_supported": { "essential": true } }),
    ] {
        let p: Map<String, Value> = serde_json::from_value(breach.clone()).expect("map");
        assert!(apply_policy(&mut md.clone(), &p).is_err(), "{breach}");
    }
    // Through the chain: the anchor says the provider must offer `email`; it does not.
    let f = fed().await;
    f.put(
        &format!("/ta/fetch?{}", f.sub_query("op")),
        f.about(
            "ta",
            "op",
            &f.ta,
            &f.op,
            json!({ "metadata_policy": { "openid_provider": { "scopes_supported": { "superset_of": ["email"] } } } }),
        ),
    );
    refused_with(resolve(&f).await, "breaks a policy");
}

#[tokio::test]
async fn a_provider_statement_signed_by_another_key_is_refused() {
    let f = fed().await;
    // The attacker serves the provider's configuration signed with its own key, declaring it:
    // the anchor vouches for another.
    let attacker = key(f._dir.path(), "attacker");
    f.put(
        "/op/.well-known/openid-federation",
        f.ec(
            "op",
            &attacker,
            &attacker,
            json!({ "authority_hints": [f.id("ta")], "metadata": { "openid_provider": op_metadata(&f.id("op")) } }),
        ),
    );
    refused_with(resolve(&f).await, "does not verify");
}

#[tokio::test]
async fn a_fake_trust_anchor_under_the_real_ones_name_is_refused() {
    let f = fed().await;
    // The whole upper chain re-signed by an attacker who took the anchor's name: the
    // configuration's keys for that anchor do not verify it.
    let attacker = key(f._dir.path(), "attacker");
    f.publish_ta(&attacker, 1);
    f.put(
        &format!("/ta/fetch?{}", f.sub_query("op")),
        f.about("ta", "op", &attacker, &f.op, json!({})),
    );
    refused_with(resolve(&f).await, "does not verify");
    // Only the subordinate statement forged: refused as well.
    let f = fed().await;
    f.put(
        &format!("/ta/fetch?{}", f.sub_query("op")),
        f.about("ta", "op", &attacker, &f.op, json!({})),
    );
    refused_with(resolve(&f).await, "does not verify");
}

#[tokio::test]
async fn a_chain_to_an_unknown_anchor_is_refused() {
    let f = fed().await;
    // The provider names a superior that is nobody varco trusts, and that has no superior.
    let stranger = key(f._dir.path(), "stranger");
    f.put(
        "/stranger/.well-known/openid-federation",
        f.ec(
            "stranger",
            &stranger,
            &stranger,
            json!({ "metadata": { "federation_entity": { "federation_fetch_endpoint": format!("{}/fetch", f.id("stranger")) } } }),
        ),
    );
    f.put(
        &format!("/stranger/fetch?{}", f.sub_query("op")),
        f.about("stranger", "op", &stranger, &f.op, json!({})),
    );
    f.put(
        "/op/.well-known/openid-federation",
        f.ec(
            "op",
            &f.op,
            &f.op,
            json!({ "authority_hints": [f.id("stranger")], "metadata": { "openid_provider": op_metadata(&f.id("op")) } }),
        ),
    );
    refused_with(resolve(&f).await, "names no superior");
}

#[tokio::test]
async fn expired_and_untyped_statements_are_refused() {
    let f = fed().await;
    let t = now();
    let expired = sign(
        &f.ta,
        json!({ "iss": f.id("ta"), "sub": f.id("op"), "iat": t - 7200, "exp": t - 3600, "jwks": jwks(&f.op) }),
    );
    f.put(&format!("/ta/fetch?{}", f.sub_query("op")), expired);
    refused_with(resolve(&f).await, "expired");

    let f = fed().await;
    let Value::Object(claims) = json!({ "iss": f.id("ta"), "sub": f.id("op"), "iat": t, "exp": t + 600, "jwks": jwks(&f.op) })
    else {
        return;
    };
    let untyped = f.ta.sign(claims, None).expect("sign");
    f.put(&format!("/ta/fetch?{}", f.sub_query("op")), untyped);
    refused_with(resolve(&f).await, "not typed");

    // A statement about another subject, served for this one.
    let f = fed().await;
    f.put(
        &format!("/ta/fetch?{}", f.sub_query("op")),
        f.about("ta", "mid", &f.ta, &f.op, json!({})),
    );
    refused_with(resolve(&f).await, "not of");
}

#[tokio::test]
async fn an_intermediate_counts_against_the_anchors_max_path_length() {
    let f = fed().await;
    // op → mid → ta.
    f.put(
        "/op/.well-known/openid-federation",
        f.ec(
            "op",
            &f.op,
            &f.op,
            json!({ "authority_hints": [f.id("mid")], "metadata": { "openid_provider": op_metadata(&f.id("op")) } }),
        ),
    );
    f.put(
        "/mid/.well-known/openid-federation",
        f.ec(
            "mid",
            &f.mid,
            &f.mid,
            json!({ "authority_hints": [f.id("ta")], "metadata": { "federation_entity": { "federation_fetch_endpoint": format!("{}/fetch", f.id("mid")) } } }),
        ),
    );
    f.put(
        &format!("/mid/fetch?{}", f.sub_query("op")),
        f.about("mid", "op", &f.mid, &f.op, json!({})),
    );
    f.put(
        &format!("/ta/fetch?{}", f.sub_query("mid")),
        f.about("ta", "mid", &f.ta, &f.mid, json!({})),
    );
    let r = resolve(&f).await.expect("three statements");
    assert_eq!(r.chain, [f.id("op"), f.id("mid"), f.id("ta")]);
    f.publish_ta(&f.ta, 0);
    refused_with(resolve(&f).await, "intermediates below");
}

#[tokio::test]
async fn varcos_entity_configuration_is_self_signed_and_says_what_it_is() {
    let f = fed().await;
    let fed = f.federation();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/varco.toml");
    let mut config = policies::load(&path).expect("example").config;
    config.portal.privacy_url = Some("https://prova.example/privacy".into());
    let ec = fed
        .entity_configuration(&config, &json!({ "keys": [f.op.public_jwk()] }))
        .expect("signed");
    let claims = self_signed(&ec, "http://portal.localhost:8080").expect("verifies with its jwks");
    assert_eq!(claims["authority_hints"], json!([f.id("ta")]));
    let rp = &claims["metadata"]["openid_relying_party"];
    assert_eq!(rp["client_id"], "http://portal.localhost:8080");
    assert_eq!(
        rp["redirect_uris"],
        json!(["http://portal.localhost:8080/.sso/oidc/callback"])
    );
    assert_eq!(rp["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(rp["jwks"]["keys"][0]["kid"], f.op.public_jwk()["kid"]);
    assert_ne!(
        claims["jwks"]["keys"][0]["kid"], rp["jwks"]["keys"][0]["kid"],
        "the federation keys are not the OpenID Connect keys"
    );
    assert_eq!(
        claims["metadata"]["federation_entity"]["policy_uri"],
        "https://prova.example/privacy"
    );
    assert!(claims["exp"].as_i64() > claims["iat"].as_i64());
}
