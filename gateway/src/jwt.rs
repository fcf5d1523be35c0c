//! The identity JWT (`X-Varco-Assertion`): the same identity as the headers, signed with Ed25519
//! (`alg: EdDSA`, with `kid`), `iss` = the public URL, `aud` = `<ipa_code>/<service id>`, valid 60
//! seconds. Keys come from files (every instance signs with the same key); all configured keys
//! are published at `/.sso/jwks.json`, so a rotation keeps the previous key listed until tokens
//! signed with it have expired.

use base64::Engine as _;
use bytes::Bytes;
use openssl::pkey::{Id, PKey, Private};
use openssl::sign::Signer;
use sha2::Digest as _;

/// Lifetime of a token.
pub const LIFETIME_SECS: u64 = 60;

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

    /// A token for `principal` and the audience `<ipa>/<service>`.
    pub fn sign(
        &self,
        issuer: &str,
        audience: &str,
        principal: &crate::session::Citizen,
        now: u64,
    ) -> Option<String> {
        let header = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": self.kid });
        let mut attributes = serde_json::Map::new();
        for (name, value) in principal.attributes() {
            let value = if name == "fiscalNumber" {
                crate::identity::fiscal_number(value)
            } else {
                value.clone()
            };
            attributes.insert(name.clone(), serde_json::Value::String(value));
        }
        let claims = serde_json::json!({
            "iss": issuer,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + LIFETIME_SECS,
            "jti": idp_bridge::random_token(16, true),
            "level": principal.level().as_str(),
            "idp": principal.idp(),
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
