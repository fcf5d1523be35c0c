//! OpenID Connect callbacks per second on one core: varco's side of a login's end, through the
//! login door the gateway's `/.sso/oidc/callback` uses (`idp_bridge::login::finish`): the query
//! read, the code redeemed at the token endpoint over loopback HTTP (with a `private_key_jwt`
//! client assertion signed for it, or HTTP Basic), the ID token's signature (RS256) and every
//! claim checked, the principal built, the audit record's content built.
//!
//! The provider is a minimal one on its own thread: it answers the token request with an ID
//! token it signed before the measured part, so what is timed is varco's work (and one loopback
//! round trip), not the provider's.
//!
//! `cargo bench -p benches --bench oidc`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)] // criterion's macros

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use idp_bridge::insecure_test_idp::{DiscardAudit, TestOpKey};
use idp_bridge::{BrowserBinding, Callback, LoginStart, OidcRegistry, Outgoing, Provider, Sp};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

type Answers = Arc<Mutex<HashMap<String, String>>>;

/// The provider: discovery, keys, and a token endpoint that hands out what `answers` holds for
/// a code (once).
fn start_provider(jwks: Value, answers: Answers) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let iss = issuer.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let (jwks, answers, iss) = (jwks.clone(), answers.clone(), iss.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        // One request: the head, then its Content-Length body.
                        let head_end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            let mut chunk = [0u8; 8192];
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        while buf.len() < head_end + len {
                            let mut chunk = [0u8; 8192];
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
                        buf.drain(..head_end + len);
                        let path = head.split(' ').nth(1).unwrap_or("").to_string();
                        let answer = match path.as_str() {
                            "/.well-known/openid-configuration" => json!({
                                "issuer": iss,
                                "authorization_endpoint": format!("{iss}/auth"),
                                "token_endpoint": format!("{iss}/token"),
                                "jwks_uri": format!("{iss}/jwks"),
                                "code_challenge_methods_supported": ["S256"],
                            })
                            .to_string(),
                            "/jwks" => jwks.to_string(),
                            "/token" => {
                                let code = url::form_urlencoded::parse(body.as_bytes())
                                    .find(|(k, _)| k == "code")
                                    .map(|(_, v)| v.into_owned())
                                    .unwrap_or_default();
                                answers.lock().unwrap().remove(&code).unwrap_or_default()
                            }
                            _ => String::new(),
                        };
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                        if s.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    });
    issuer
}

fn oidc(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut config = policies::load(&root.join("examples/varco.toml"))
        .unwrap()
        .config;
    let dir = tempfile::tempdir().unwrap();
    let pem = |name: &str| {
        let path = dir.path().join(name);
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        std::fs::write(&path, rsa.private_key_to_pem().unwrap()).unwrap();
        path
    };
    let (op_pem, rp_pem) = (pem("op.pem"), pem("rp.pem"));
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let op_key = TestOpKey::load(&op_pem).unwrap();
    let answers: Answers = Arc::default();
    let issuer = start_provider(op_key.public_jwks(), answers.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    for (name, client_auth, key) in [
        (
            "OIDC callback: private_key_jwt (RS256), ID token RS256",
            policies::ClientAuth::PrivateKeyJwt,
            Some(rp_pem.clone()),
        ),
        (
            "OIDC callback: client_secret_basic, ID token RS256",
            policies::ClientAuth::ClientSecretBasic {
                secret_file: secret.clone(),
            },
            None,
        ),
    ] {
        let provider_config = policies::OidcConfig {
            issuer: issuer.clone(),
            client_id: "varco".into(),
            client_auth,
            key,
            display_name: "Bench".into(),
            kind: policies::IdpKind::Spid,
            scopes: vec!["openid".into()],
            claims: policies::DEFAULT_CLAIMS
                .iter()
                .map(|(a, c)| (*a, (*c).to_string()))
                .collect(),
            acr: policies::Level::ALL
                .into_iter()
                .map(|l| (l, l.class_ref().to_string()))
                .collect(),
            federation: false,
        };
        config.oidc = vec![provider_config];
        let oidc = OidcRegistry::load(&config, None).unwrap();
        let idps = idp_bridge::IdpRegistry::default();
        let keys = idp_bridge::SpKeys::load(&config.sp.key, &config.sp.cert).unwrap();
        let sp = Sp {
            config: &config,
            keys: &keys,
            idps: &idps,
            oidc: &oidc,
            cns: None,
        };
        let provider = oidc.get(&issuer).unwrap();
        let binding = BrowserBinding::new();
        let wanted: policies::AttributeMask = [
            policies::Attribute::FiscalNumber,
            policies::Attribute::Name,
            policies::Attribute::FamilyName,
        ]
        .into_iter()
        .collect();
        c.bench_function(name, |b| {
            b.iter_batched(
                // Not timed: the start of the login, and the provider's work (its ID token).
                || {
                    let started = rt
                        .block_on(idp_bridge::login::start(
                            sp,
                            LoginStart {
                                provider: Provider::Oidc(provider),
                                level: policies::Level::SpidL2,
                                attribute_set: 0,
                                wanted,
                                binding: &binding,
                                return_to: "http://127.0.0.1:8080/".into(),
                                replaces: None,
                                handoff_binding: None,
                                prefer_post: false,
                                audience: policies::Audience::Sp,
                            },
                            &DiscardAudit,
                        ))
                        .unwrap();
                    let Outgoing::Redirect(url) = &started.outgoing else {
                        panic!("a redirect")
                    };
                    let q: HashMap<String, String> = url::Url::parse(url)
                        .unwrap()
                        .query_pairs()
                        .into_owned()
                        .collect();
                    let code = idp_bridge::random_token(32, true);
                    let access_token = idp_bridge::random_token(32, true);
                    let now = chrono::Utc::now().timestamp();
                    let mut claims = Map::new();
                    for (k, v) in [
                        ("iss", json!(issuer)),
                        ("sub", json!("pairwise-subject")),
                        ("aud", json!("varco")),
                        ("iat", json!(now)),
                        ("exp", json!(now + 300)),
                        ("nonce", json!(q["nonce"])),
                        ("acr", json!("https://www.spid.gov.it/SpidL2")),
                        ("at_hash", json!(op_key.at_hash(&access_token))),
                        (
                            "https://attributes.eid.gov.it/fiscal_number",
                            json!("TINIT-RSSMRA80A01H501U"),
                        ),
                        ("given_name", json!("Mario")),
                        ("family_name", json!("Rossi")),
                    ] {
                        claims.insert(k.into(), v);
                    }
                    let answer = json!({
                        "access_token": access_token,
                        "token_type": "Bearer",
                        "id_token": op_key.sign(claims).unwrap(),
                    });
                    answers
                        .lock()
                        .unwrap()
                        .insert(code.clone(), answer.to_string());
                    let query = url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("code", &code)
                        .append_pair("state", &q["state"])
                        .append_pair("iss", &issuer)
                        .finish();
                    (query, started.pending)
                },
                |(query, pending)| {
                    let callback = Callback::oidc_redirect(&query);
                    let login = rt
                        .block_on(idp_bridge::login::finish(
                            sp,
                            callback,
                            Some(pending),
                            Some(&binding),
                            &DiscardAudit,
                        ))
                        .unwrap();
                    assert_eq!(login.principal.level(), policies::Level::SpidL2);
                    login
                },
                BatchSize::PerIteration,
            )
        });
    }
}

criterion_group!(benches, oidc);
criterion_main!(benches);
