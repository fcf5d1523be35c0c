//! The identity JWT (`X-Varco-Assertion`): the same identity as the headers, signed with Ed25519
//! (`alg: EdDSA`, with `kid`), `iss` = the public URL, `aud` = `<ipa_code>/<service id>`, valid 60
//! seconds. Keys come from files (every instance signs with the same key); all configured keys
//! are published at `/.sso/jwks.json`, so a rotation keeps the previous key listed until tokens
//! signed with it have expired.

pub(crate) mod cache;

use base64::Engine as _;
use bytes::Bytes;
use openssl::pkey::{Id, PKey, Private};
use openssl::sign::Signer;
use sha2::Digest as _;

/// Lifetime of a token.
pub(crate) const LIFETIME_SECS: u64 = 60;

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// The signing keys and their published set.
pub struct JwtKeys {
    signer: PKey<Private>,
    kid: String,
    jwks: Bytes,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("kid", &self.kid)
            .field("signer", &"[redacted]")
            .finish()
    }
}

impl JwtKeys {
    /// Loads Ed25519 PEM private keys; the first signs.
    pub fn load(paths: &[std::path::PathBuf]) -> Result<Self, idp_bridge::Error> {
        let refuse = |p: &std::path::Path, reason: String| idp_bridge::Error::SpKey {
            path: p.to_path_buf(),
            reason,
        };
        let mut keys = Vec::new();
        for p in paths {
            let pem = std::fs::read(p).map_err(|e| refuse(p, format!("cannot read the JWT key ({e}); create one with `openssl genpkey -algorithm ed25519 -out {}`", p.display())))?;
            let key = PKey::private_key_from_pem(&pem)
                .map_err(|_| refuse(p, "not a PEM private key".into()))?;
            if key.id() != Id::ED25519 {
                return Err(refuse(p, "the identity JWT key must be Ed25519".into()));
            }
            let public = key.raw_public_key().map_err(|e| refuse(p, e.to_string()))?;
            let kid = b64(&sha2::Sha256::digest(&public)[..12]);
            keys.push((key, kid, public));
        }
        let Some((signer, kid, _)) = keys.first().cloned() else {
            return Err(refuse(
                std::path::Path::new("[session] jwt_keys"),
                "no key".into(),
            ));
        };
        let jwks = serde_json::json!({
            "keys": keys.iter().map(|(_, kid, public)| serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": b64(public), "kid": kid, "use": "sig", "alg": "EdDSA"
            })).collect::<Vec<_>>()
        });
        Ok(Self {
            signer,
            kid,
            jwks: Bytes::from(jwks.to_string()),
        })
    }

    /// The JWK set, as served at `/.sso/jwks.json`.
    pub fn jwks(&self) -> &Bytes {
        &self.jwks
    }

    /// A token for `principal` and the audience `<ipa>/<service>`, carrying only the `released`
    /// attributes (those the service's policy lists, as its headers do).
    pub fn sign(
        &self,
        issuer: &str,
        audience: &str,
        principal: &idp_bridge::Principal,
        released: &[policies::Attribute],
        now: u64,
    ) -> Option<String> {
        let header = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": self.kid });
        let mut attributes = serde_json::Map::new();
        for (a, _) in principal
            .attributes()
            .iter()
            .filter(|(a, _)| released.contains(a))
        {
            if let Some(value) = principal.value_for_back_ends(*a) {
                attributes.insert(a.as_str().into(), serde_json::Value::String(value.into()));
            }
        }
        // An opaque subject for this login and this audience: stable while the session lasts, new
        // at the next login (the NameID is transient), different for every service, so that two
        // back-ends cannot match their users by it; who the citizen is, a service learns from
        // the attributes its policy releases.
        let sub = {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            for part in [principal.idp(), principal.name_id(), audience] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            b64(&h.finalize()[..18])
        };
        let claims = serde_json::json!({
            "iss": issuer,
            "sub": sub,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + LIFETIME_SECS,
            "jti": idp_bridge::random_token(16, true),
            "level": principal.level().as_str(),
            "idp": principal.idp(),
            "protocol": principal.protocol().as_str(),
            "attributes": attributes,
        });
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut signer = Signer::new_without_digest(&self.signer).ok()?;
        let signature = signer.sign_oneshot_to_vec(signing_input.as_bytes()).ok()?;
        Some(format!("{signing_input}.{}", b64(&signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_key(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
        let key = PKey::generate_ed25519().expect("key");
        let path = dir.join(name);
        std::fs::write(&path, key.private_key_to_pem_pkcs8().expect("pem")).expect("write");
        path
    }

    fn citizen() -> idp_bridge::Principal {
        idp_bridge::insecure_test_idp::unverified_principal_for_tests(
            "https://idp.example",
            "_n",
            policies::Level::SpidL2,
            &[(policies::Attribute::FiscalNumber, "TINIT-RSSMRA80A01H501U")],
        )
        .into_principal()
    }

    /// Verifies `token` with the JWK set the way a back-end would: by `kid`.
    fn verifies(token: &str, jwks: &Bytes) -> bool {
        let jwks: serde_json::Value = serde_json::from_slice(jwks).expect("jwks");
        let mut parts = token.rsplitn(2, '.');
        let (Some(sig), Some(input)) = (parts.next(), parts.next()) else {
            return false;
        };
        let header: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(input.split('.').next().unwrap_or(""))
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        let Some(jwk) = jwks["keys"]
            .as_array()
            .and_then(|k| k.iter().find(|k| k["kid"] == header["kid"]))
        else {
            return false;
        };
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk["x"].as_str().unwrap_or(""))
            .unwrap_or_default();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .unwrap_or_default();
        PKey::public_key_from_raw_bytes(&x, Id::ED25519)
            .and_then(|k| {
                openssl::sign::Verifier::new_without_digest(&k)?
                    .verify_oneshot(&sig, input.as_bytes())
            })
            .unwrap_or(false)
    }

    #[test]
    fn a_rotation_keeps_tokens_of_the_previous_key_verifiable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, new) = (
            write_key(dir.path(), "old.pem"),
            write_key(dir.path(), "new.pem"),
        );
        let before = JwtKeys::load(std::slice::from_ref(&old)).expect("keys");
        let in_flight = before
            .sign(
                "https://portal",
                "c_a001/tari",
                &citizen(),
                &[],
                1_700_000_000,
            )
            .expect("token");
        // The new key is put first (it signs) and the old one stays listed.
        let after = JwtKeys::load(&[new, old]).expect("keys");
        let fresh = after
            .sign(
                "https://portal",
                "c_a001/tari",
                &citizen(),
                &[],
                1_700_000_000,
            )
            .expect("token");
        assert!(
            verifies(&in_flight, after.jwks()),
            "an in-flight token still verifies"
        );
        assert!(verifies(&fresh, after.jwks()));
        assert!(
            !verifies(&fresh, before.jwks()),
            "the new key is a different key"
        );
        let mut tampered = fresh.clone();
        tampered.insert(fresh.find('.').expect("dot") + 2, 'x');
        assert!(!verifies(&tampered, after.jwks()));
    }

    #[test]
    fn a_token_carries_only_the_attributes_the_service_lists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = JwtKeys::load(&[write_key(dir.path(), "k.pem")]).expect("keys");
        let citizen = idp_bridge::insecure_test_idp::unverified_principal_for_tests(
            "https://idp.example",
            "_n",
            policies::Level::SpidL2,
            &[
                (policies::Attribute::FiscalNumber, "TINIT-RSSMRA80A01H501U"),
                (policies::Attribute::Email, "m@example.org"),
                (policies::Attribute::MobilePhone, "+39333"),
            ],
        )
        .into_principal();
        let token = keys
            .sign(
                "https://portal",
                "c_a001/tari",
                &citizen,
                &[policies::Attribute::FiscalNumber],
                1,
            )
            .expect("token");
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).expect("claims"))
                .expect("b64"),
        )
        .expect("json");
        assert_eq!(
            claims["attributes"],
            serde_json::json!({"fiscalNumber": "RSSMRA80A01H501U"})
        );
        // An opaque subject: the same for this login and service, another for another service,
        // and nothing of the citizen's identity in it.
        let sub = |aud: &str| {
            let t = keys
                .sign("https://portal", aud, &citizen, &[], 1)
                .expect("token");
            let c: serde_json::Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(t.split('.').nth(1).expect("claims"))
                    .expect("b64"),
            )
            .expect("json");
            c["sub"].as_str().expect("sub").to_string()
        };
        assert_eq!(claims["sub"].as_str(), Some(sub("c_a001/tari").as_str()));
        assert_ne!(sub("c_a001/tari"), sub("c_b002/anagrafe"));
        assert!(!sub("c_a001/tari").contains("RSSMRA") && !sub("c_a001/tari").contains("_n"));
    }

    #[test]
    fn only_ed25519_pem_keys_are_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rsa = dir.path().join("rsa.pem");
        let key = openssl::rsa::Rsa::generate(2048).expect("rsa");
        std::fs::write(&rsa, key.private_key_to_pem().expect("pem")).expect("write");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a key").expect("write");
        for (path, why) in [
            (rsa, "must be Ed25519"),
            (garbage, "not a PEM private key"),
            (dir.path().join("missing.pem"), "openssl genpkey"),
        ] {
            let err = JwtKeys::load(std::slice::from_ref(&path)).expect_err("refused");
            assert!(err.to_string().contains(why), "{err}");
        }
    }
}
