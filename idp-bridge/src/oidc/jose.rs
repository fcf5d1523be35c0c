//! The JOSE varco needs as a relying party, on josekit (over the OpenSSL varco links anyway):
//! its own signing key (client assertions, request objects), and the verification of what a
//! provider signs, with an allow-list of algorithms: asymmetric only, so never `none` and never an
//! HMAC keyed with a public key.

use std::path::Path;

use base64::Engine as _;
use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::{JwsHeader, JwsSigner, JwsVerifier};
use serde_json::{Map, Value};
use sha2::Digest as _;

use super::error::OidcError;

/// The signature algorithms varco accepts from a provider.
pub(crate) const ALLOWED_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
];

/// varco's private key for one provider: RSA (RS256) or EC P-256 (ES256).
pub(crate) struct RpKey {
    signer: Box<dyn JwsSigner>,
    alg: &'static str,
    kid: String,
    public: Value,
}

impl std::fmt::Debug for RpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl RpKey {
    /// Reads a PEM private key (PKCS#1, SEC 1 or PKCS#8).
    pub(crate) fn load(path: &Path) -> Result<Self, crate::Error> {
        let refuse = |reason: String| crate::Error::SpKey {
            path: path.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| refuse(format!("cannot read: {e}")))?;
        let key = openssl::pkey::PKey::private_key_from_pem(&pem)
            .map_err(|_| refuse("not a PEM private key".into()))?;
        let (signer, alg, public): (Box<dyn JwsSigner>, &'static str, Jwk) = match key.id() {
            openssl::pkey::Id::RSA => {
                if key.bits() < 2048 {
                    return Err(refuse(format!(
                        "an RSA key of {} bits: 2048 at least",
                        key.bits()
                    )));
                }
                let pair = josekit::jwk::alg::rsa::RsaKeyPair::from_pem(&pem)
                    .map_err(|e| refuse(format!("unusable RSA key: {e}")))?;
                let signer = josekit::jws::RS256
                    .signer_from_pem(&pem)
                    .map_err(|e| refuse(format!("unusable RSA key: {e}")))?;
                (Box::new(signer), "RS256", pair.to_jwk_public_key())
            }
            openssl::pkey::Id::EC => {
                let pair = josekit::jwk::alg::ec::EcKeyPair::from_pem(
                    &pem,
                    Some(josekit::jwk::alg::ec::EcCurve::P256),
                )
                .map_err(|_| refuse("an EC key that is not on P-256".into()))?;
                let signer = josekit::jws::ES256
                    .signer_from_pem(&pem)
                    .map_err(|e| refuse(format!("unusable EC key: {e}")))?;
                (Box::new(signer), "ES256", pair.to_jwk_public_key())
            }
            _ => return Err(refuse("not an RSA or EC P-256 key".into())),
        };
        let public = published(&public, "sig", alg);
        let kid = public["kid"].as_str().unwrap_or_default().to_string();
        Ok(Self {
            // The signer has no key ID of its own, so josekit keeps the header's `kid`.
            signer,
            alg,
            kid,
            public,
        })
    }

    /// The public key as a JWK (with `kid`, `use` and `alg`), for the provider's registration.
    pub(crate) fn public_jwk(&self) -> &Value {
        &self.public
    }

    /// Signs `claims` as a compact JWS, with `typ` when given.
    pub(crate) fn sign(
        &self,
        claims: Map<String, Value>,
        typ: Option<&str>,
    ) -> Result<String, OidcError> {
        let mut header = JwsHeader::new();
        header.set_key_id(&self.kid);
        if let Some(t) = typ {
            header.set_token_type(t);
        }
        let payload = josekit::jwt::JwtPayload::from_map(claims)
            .map_err(|e| OidcError::Unavailable(format!("cannot build a JWT: {e}")))?;
        josekit::jwt::encode_with_signer(&payload, &header, self.signer.as_ref())
            .map_err(|e| OidcError::Unavailable(format!("cannot sign a JWT: {e}")))
    }
}

/// The RFC 7638 thumbprint of a public JWK: SHA-256 of its required members in lexicographic
/// order, base64url.
pub(crate) fn thumbprint(jwk: &Jwk) -> String {
    let members: &[&str] = match jwk.key_type() {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        _ => &["kty"],
    };
    let mut canonical = Map::new();
    for m in members {
        let v = if *m == "kty" {
            Some(Value::String(jwk.key_type().to_string()))
        } else {
            jwk.parameter(m).cloned()
        };
        if let Some(v) = v {
            canonical.insert((*m).to_string(), v);
        }
    }
    // Inserted in lexicographic order, as RFC 7638 needs: serde_json's Map keeps that order
    // whether it sorts keys or keeps insertion order (josekit turns `preserve_order` on).
    let text = Value::Object(canonical).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The JSON of one dot-separated part of a compact JWS or JWE (0: the header, 1: a JWS's payload),
/// not verified in any way: to pick a key or a decrypter, never to believe.
pub(crate) fn unverified_part(token: &str, index: usize) -> Option<Value> {
    let part = token.split('.').nth(index)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `jwk` as varco publishes it: with its RFC 7638 thumbprint as `kid`, its `use` and `alg`.
fn published(jwk: &Jwk, key_use: &str, alg: &str) -> Value {
    let mut m = jwk.as_ref().clone();
    m.insert("kid".into(), thumbprint(jwk).into());
    m.insert("use".into(), key_use.into());
    m.insert("alg".into(), alg.into());
    Value::Object(m)
}

/// Why [`verify`] refused a token: a key it does not know yet (worth a refresh of the provider's
/// keys) or anything else.
#[derive(Debug)]
pub(crate) enum VerifyError {
    /// No key in the set has this `kid`.
    UnknownKey(String),
    /// Refused for good.
    Refused(String),
}

/// Verifies a compact JWS `token` with a key from `keys`, picked by `kid` (or the only signing
/// key of the right type when the header has none), with an algorithm of [`ALLOWED_ALGS`].
/// Returns the claims and the algorithm.
pub(crate) fn verify(
    token: &str,
    keys: &JwkSet,
) -> Result<(Map<String, Value>, &'static str), VerifyError> {
    let refused = |m: String| VerifyError::Refused(m);
    if token.len() > super::http::MAX_BODY || token.split('.').count() != 3 {
        return Err(refused("not a compact JWS".into()));
    }
    let header =
        josekit::jwt::decode_header(token).map_err(|e| refused(format!("bad header: {e}")))?;
    let alg_name = match header.claim("alg") {
        Some(Value::String(a)) => a.as_str(),
        _ => return Err(refused("no alg".into())),
    };
    let Some(alg) = ALLOWED_ALGS.iter().copied().find(|a| *a == alg_name) else {
        return Err(refused(format!("algorithm {alg_name:?} is not allowed")));
    };
    if header.claim("crit").is_some() {
        return Err(refused(
            "critical header parameters are not supported".into(),
        ));
    }
    let kty = if alg.starts_with("ES") { "EC" } else { "RSA" };
    let candidates: Vec<Jwk> = match header.claim("kid") {
        Some(Value::String(kid)) => {
            let found = keys.get(kid);
            if found.is_empty() {
                return Err(VerifyError::UnknownKey(kid.clone()));
            }
            found.into_iter().cloned().collect()
        }
        Some(_) => return Err(refused("kid is not a string".into())),
        None => {
            let signing: Vec<&Jwk> = keys
                .keys()
                .into_iter()
                .filter(|k| k.key_type() == kty && k.key_use().is_none_or(|u| u == "sig"))
                .collect();
            if signing.len() != 1 {
                return Err(refused(
                    "no kid, and the provider has more than one signing key".into(),
                ));
            }
            // josekit asks the header for the key's `kid` when the key has one: the only key
            // is used without it.
            let mut map = signing[0].as_ref().clone();
            map.remove("kid");
            vec![Jwk::from_map(map).map_err(|e| refused(format!("bad key: {e}")))?]
        }
    };
    let mut last = String::from("no key of the right type");
    for jwk in &candidates {
        if jwk.key_type() != kty {
            continue;
        }
        let verifier = match verifier_for(alg, jwk) {
            Ok(v) => v,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        match josekit::jwt::decode_with_verifier(token, verifier.as_ref()) {
            Ok((payload, _)) => return Ok((payload.claims_set().clone(), alg)),
            Err(e) => last = e.to_string(),
        }
    }
    Err(refused(format!("signature does not verify: {last}")))
}

fn verifier_for(alg: &str, jwk: &Jwk) -> Result<Box<dyn JwsVerifier>, josekit::JoseError> {
    use josekit::jws::{ES256, ES384, ES512, PS256, PS384, PS512, RS256, RS384, RS512};
    Ok(match alg {
        "RS256" => Box::new(RS256.verifier_from_jwk(jwk)?),
        "RS384" => Box::new(RS384.verifier_from_jwk(jwk)?),
        "RS512" => Box::new(RS512.verifier_from_jwk(jwk)?),
        "PS256" => Box::new(PS256.verifier_from_jwk(jwk)?),
        "PS384" => Box::new(PS384.verifier_from_jwk(jwk)?),
        "PS512" => Box::new(PS512.verifier_from_jwk(jwk)?),
        "ES256" => Box::new(ES256.verifier_from_jwk(jwk)?),
        "ES384" => Box::new(ES384.verifier_from_jwk(jwk)?),
        _ => Box::new(ES512.verifier_from_jwk(jwk)?),
    })
}

/// `at_hash` / `c_hash`: the left half of the hash of `value` with the hash of the token's `alg`,
/// base64url (OpenID Connect Core §3.1.3.6).
pub(crate) fn half_hash(alg: &str, value: &str) -> String {
    let digest: Vec<u8> = match &alg[2..] {
        "384" => sha2::Sha384::digest(value.as_bytes()).to_vec(),
        "512" => sha2::Sha512::digest(value.as_bytes()).to_vec(),
        _ => sha2::Sha256::digest(value.as_bytes()).to_vec(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// varco's decryption key (RSA): what providers encrypt UserInfo and ID tokens to (RSA-OAEP or
/// RSA-OAEP-256 key wrapping; the content encryption is whatever the JWE names).
pub(crate) struct EncryptionKey {
    pem: Vec<u8>,
    public: Value,
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("kid", &self.public["kid"])
            .finish_non_exhaustive()
    }
}

impl EncryptionKey {
    /// Reads an RSA private key (PEM, 2048 bits at least).
    pub(crate) fn load(path: &Path) -> Result<Self, crate::Error> {
        let refuse = |reason: String| crate::Error::SpKey {
            path: path.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| refuse(format!("cannot read: {e}")))?;
        let key = openssl::pkey::PKey::private_key_from_pem(&pem)
            .map_err(|_| refuse("not a PEM private key".into()))?;
        if key.id() != openssl::pkey::Id::RSA || key.bits() < 2048 {
            return Err(refuse(
                "the encryption key must be RSA, 2048 bits at least".into(),
            ));
        }
        let jwk = josekit::jwk::alg::rsa::RsaKeyPair::from_pem(&pem)
            .map_err(|e| refuse(format!("unusable RSA key: {e}")))?
            .to_jwk_public_key();
        let public = published(&jwk, "enc", "RSA-OAEP");
        Ok(Self { pem, public })
    }

    /// The public key as a JWK (`use = "enc"`).
    pub(crate) fn public_jwk(&self) -> &Value {
        &self.public
    }

    /// The plaintext of a compact JWE encrypted to this key.
    pub(crate) fn decrypt(&self, token: &str) -> Result<Vec<u8>, String> {
        let header = unverified_part(token, 0).ok_or("not a JWE")?;
        let decrypter: Box<dyn josekit::jwe::JweDecrypter> =
            match header.get("alg").and_then(Value::as_str) {
                Some("RSA-OAEP") => Box::new(
                    josekit::jwe::RSA_OAEP
                        .decrypter_from_pem(&self.pem)
                        .map_err(|e| e.to_string())?,
                ),
                Some("RSA-OAEP-256") => Box::new(
                    josekit::jwe::RSA_OAEP_256
                        .decrypter_from_pem(&self.pem)
                        .map_err(|e| e.to_string())?,
                ),
                other => return Err(format!("key wrapping {other:?} is not accepted")),
            };
        josekit::jwe::deserialize_compact(token, decrypter.as_ref())
            .map(|(plain, _)| plain)
            .map_err(|e| e.to_string())
    }
}
