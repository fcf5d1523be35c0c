//! varco as a relying party (a leaf) of the SPID/CIE OpenID Connect Federation: its own entity
//! configuration, and the trust chain that makes a provider's metadata believable.
//!
//! A provider is resolved by walking up from its entity configuration: each superior named in
//! `authority_hints` is fetched (its own entity configuration, self-signed), then asked for its
//! subordinate statement about the entity below (`federation_fetch_endpoint?sub=`), signed with
//! the superior's keys, whose `jwks` are the keys the entity below must have signed its own
//! statement with. The walk ends at a configured trust anchor, whose statement must verify with
//! the keys of the configuration, not with the ones it declares. The provider's metadata is its
//! own `openid_provider` metadata with every superior's `metadata_policy` applied, the trust
//! anchor's first; it is cached until the earliest expiry in the chain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use josekit::jwk::JwkSet;
use serde_json::{json, Map, Value};

use super::error::OidcError;
use super::http::Http;
use super::jose::{unverified_part, verify, RpKey};
use super::lock;
use super::metadata::{ProviderMetadata, BACKCHANNEL_PATH, CALLBACK_PATH, LOGGED_OUT_PATH};

/// The media type of entity statements.
pub const ENTITY_STATEMENT_TYPE: &str = "application/entity-statement+jwt";
/// The path of an entity's configuration under its entity ID.
pub const WELL_KNOWN: &str = "/.well-known/openid-federation";
/// How many superiors a chain may climb through, trust anchor included.
const MAX_DEPTH: usize = 4;
/// How far clocks may differ.
const SKEW: i64 = 120;
/// How long varco's own entity configuration is valid.
const EC_LIFETIME: i64 = 24 * 3600;

use super::unix_now as now;

fn refused(m: impl Into<String>) -> OidcError {
    OidcError::Federation(m.into())
}

/// A provider's metadata as the federation vouches for it.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) metadata: Arc<ProviderMetadata>,
    /// The entities of the chain, the provider first, the trust anchor last.
    pub(crate) chain: Vec<String>,
    /// When the first statement of the chain expires.
    pub(crate) expires: i64,
}

/// varco's place in the federation: its entity ID, keys and superiors, the trust anchors, and the
/// chains resolved so far.
pub struct Federation {
    entity_id: String,
    anchors: Vec<(String, JwkSet)>,
    authority_hints: Vec<String>,
    keys: Vec<RpKey>,
    trust_marks: Value,
    encryption: Option<super::jose::EncryptionKey>,
    resolved: Mutex<HashMap<String, Arc<Resolved>>>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("entity_id", &self.entity_id)
            .field(
                "anchors",
                &self.anchors.iter().map(|(a, _)| a).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Federation {
    /// Reads the trust anchors' keys, varco's federation keys, its trust marks and its
    /// encryption key; every problem is returned.
    pub fn load(
        config: &policies::FederationConfig,
        entity_id: &str,
    ) -> Result<Self, Vec<crate::Error>> {
        let mut errors = Vec::new();
        let file_error = |path: &std::path::Path, reason: String| crate::Error::SpKey {
            path: path.to_path_buf(),
            reason,
        };
        let mut anchors = Vec::new();
        for a in &config.trust_anchors {
            match std::fs::read(&a.jwks)
                .map_err(|e| e.to_string())
                .and_then(|b| JwkSet::from_bytes(b).map_err(|e| format!("not a JWK Set: {e}")))
            {
                Ok(set) if !set.keys().is_empty() => anchors.push((a.entity_id.clone(), set)),
                Ok(_) => errors.push(file_error(&a.jwks, "the JWK Set has no key".into())),
                Err(e) => errors.push(file_error(&a.jwks, e)),
            }
        }
        let mut keys = Vec::new();
        for k in &config.federation_keys {
            match RpKey::load(k) {
                Ok(k) => keys.push(k),
                Err(e) => errors.push(e),
            }
        }
        let trust_marks = match &config.trust_marks {
            None => Value::Array(Vec::new()),
            Some(path) => match std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
            {
                Ok(Value::Array(marks))
                    if marks.iter().all(|m| {
                        m.get("id").and_then(Value::as_str).is_some()
                            && m.get("trust_mark").and_then(Value::as_str).is_some()
                    }) =>
                {
                    Value::Array(marks)
                }
                Ok(_) => {
                    errors.push(file_error(
                        path,
                        "must be a JSON array of {\"id\": ..., \"trust_mark\": \"<JWT>\"}".into(),
                    ));
                    Value::Null
                }
                Err(e) => {
                    errors.push(file_error(path, e));
                    Value::Null
                }
            },
        };
        let encryption = match &config.encryption_key {
            None => None,
            Some(path) => match super::jose::EncryptionKey::load(path) {
                Ok(k) => Some(k),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            entity_id: entity_id.to_string(),
            anchors,
            authority_hints: config.authority_hints.clone(),
            keys,
            trust_marks,
            encryption,
            resolved: Mutex::default(),
        })
    }

    /// varco's entity ID (its client ID in the federation).
    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }

    /// The key providers encrypt to, if one is configured.
    pub(crate) fn encryption(&self) -> Option<&super::jose::EncryptionKey> {
        self.encryption.as_ref()
    }

    /// varco's entity configuration, signed with its first federation key: what
    /// `<entity ID>/.well-known/openid-federation` serves. `rp_jwks` are the keys of its
    /// OpenID Connect side (client assertions, request objects).
    pub fn entity_configuration(
        &self,
        config: &policies::Config,
        rp_jwks: &Value,
    ) -> Result<String, OidcError> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| refused("no federation key"))?;
        let e = &self.entity_id;
        let mut rp_keys: Vec<Value> = rp_jwks["keys"].as_array().cloned().unwrap_or_default();
        if let Some(enc) = &self.encryption {
            rp_keys.push(enc.public_jwk().clone());
        }
        let iat = now();
        let mut federation_entity = json!({
            "organization_name": config.sp.organization.name,
            "homepage_uri": config.sp.organization.url,
            "contacts": [config.sp.contact.email],
        });
        if let Some(p) = &config.portal.privacy_url {
            federation_entity["policy_uri"] = json!(p);
        }
        let mut rp = json!({
            "client_id": e,
            "client_registration_types": ["automatic"],
            "application_type": "web",
            "client_name": config.sp.organization.display_name,
            "contacts": [config.sp.contact.email],
            "redirect_uris": [format!("{e}{}", CALLBACK_PATH)],
            "post_logout_redirect_uris": [format!("{e}{}", LOGGED_OUT_PATH)],
            "backchannel_logout_uri": format!("{e}{}", BACKCHANNEL_PATH),
            "response_types": ["code"],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "private_key_jwt",
            "id_token_signed_response_alg": "RS256",
            "userinfo_signed_response_alg": "RS256",
            "jwks": { "keys": rp_keys },
        });
        if self.encryption.is_some() {
            rp["userinfo_encrypted_response_alg"] = json!("RSA-OAEP");
            rp["userinfo_encrypted_response_enc"] = json!("A128CBC-HS256");
        }
        let jwks: Vec<Value> = self.keys.iter().map(|k| k.public_jwk().clone()).collect();
        let claims = json!({
            "iss": e,
            "sub": e,
            "iat": iat,
            "exp": iat + EC_LIFETIME,
            "jwks": { "keys": jwks },
            "authority_hints": self.authority_hints,
            "trust_marks": self.trust_marks,
            "metadata": {
                "federation_entity": federation_entity,
                "openid_relying_party": rp,
            },
        });
        let Value::Object(claims) = claims else {
            return Err(refused("the entity configuration is not an object"));
        };
        key.sign(claims, Some("entity-statement+jwt"))
    }

    /// The provider `entity_id`'s metadata through a chain to a trust anchor: the cached one
    /// until the chain's first expiry, else resolved again.
    pub(crate) async fn resolve(
        &self,
        http: &Http,
        entity_id: &str,
    ) -> Result<Arc<Resolved>, OidcError> {
        if let Some(r) = lock(&self.resolved).get(entity_id) {
            if r.expires > now() + SKEW {
                return Ok(r.clone());
            }
        }
        let r = Arc::new(self.walk_to_an_anchor(http, entity_id).await?);
        tracing::info!(provider = %entity_id, chain = ?r.chain, expires = r.expires, "trust chain resolved");
        lock(&self.resolved).insert(entity_id.to_string(), r.clone());
        Ok(r)
    }

    async fn walk_to_an_anchor(&self, http: &Http, leaf: &str) -> Result<Resolved, OidcError> {
        let leaf_ec = fetch(http, &format!("{}{WELL_KNOWN}", leaf.trim_end_matches('/'))).await?;
        let leaf_claims = self_signed(&leaf_ec, leaf)?;
        let mut expires = exp_of(&leaf_claims);
        let mut chain = vec![leaf.to_string()];
        // Policies met on the way up: the immediate superior's first.
        let mut policies: Vec<Value> = Vec::new();
        let (mut subject, mut subject_ec, mut subject_claims) =
            (leaf.to_string(), leaf_ec, leaf_claims.clone());
        for _ in 0..MAX_DEPTH {
            let hints: Vec<String> = subject_claims
                .get("authority_hints")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            if hints.is_empty() {
                return Err(refused(format!(
                    "{subject} names no superior, and is not a trust anchor varco trusts"
                )));
            }
            let mut last = refused(format!(
                "no superior of {subject} leads to a configured trust anchor"
            ));
            let mut climbed = None;
            for hint in hints {
                match self.step(http, &subject, &subject_ec, &hint).await {
                    Ok(step) => {
                        climbed = Some((hint, step));
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            let Some((superior, step)) = climbed else {
                return Err(last);
            };
            expires = expires.min(step.expires);
            if let Some(p) = step.policy {
                policies.push(p);
            }
            chain.push(superior.clone());
            if step.anchor {
                // The anchor's constraint: how many intermediates it allows below it.
                let max = step
                    .superior_claims
                    .get("constraints")
                    .and_then(|c| c.get("max_path_length"))
                    .and_then(Value::as_u64);
                let intermediates = (chain.len() - 2) as u64;
                if max.is_some_and(|m| intermediates > m) {
                    return Err(refused(format!(
                        "{leaf} is {intermediates} intermediates below {superior}, which allows {}",
                        max.unwrap_or(0)
                    )));
                }
                let mut metadata = leaf_claims
                    .get("metadata")
                    .and_then(|m| m.get("openid_provider"))
                    .and_then(Value::as_object)
                    .cloned()
                    .ok_or_else(|| refused(format!("{leaf} has no openid_provider metadata")))?;
                for p in policies.iter().rev() {
                    if let Some(Value::Object(op)) = p.get("openid_provider") {
                        apply_policy(&mut metadata, op).map_err(|m| {
                            refused(format!("{leaf}: the metadata breaks a policy: {m}"))
                        })?;
                    }
                }
                let metadata: ProviderMetadata = serde_json::from_value(Value::Object(metadata))
                    .map_err(|e| {
                        refused(format!("{leaf}: unusable openid_provider metadata: {e}"))
                    })?;
                if metadata.issuer != leaf {
                    return Err(refused(format!(
                        "{leaf}: its openid_provider issuer is {:?}",
                        metadata.issuer
                    )));
                }
                return Ok(Resolved {
                    metadata: Arc::new(metadata),
                    chain,
                    expires,
                });
            }
            subject_claims = step.superior_claims;
            subject_ec = step.superior_ec;
            subject = superior;
        }
        Err(refused(format!(
            "the chain of {leaf} is longer than {MAX_DEPTH} statements"
        )))
    }

    /// One step up: `superior`'s own statement, and its statement about `subject`, which must
    /// vouch for the keys that signed `subject_ec`.
    async fn step(
        &self,
        http: &Http,
        subject: &str,
        subject_ec: &str,
        superior: &str,
    ) -> Result<Step, OidcError> {
        let superior_ec = fetch(
            http,
            &format!("{}{WELL_KNOWN}", superior.trim_end_matches('/')),
        )
        .await?;
        let anchor = self.anchors.iter().find(|(a, _)| a == superior);
        let superior_claims = match anchor {
            // A trust anchor's statement must verify with the keys varco was given for it.
            Some((_, keys)) => statement(&superior_ec, keys, superior, superior)?,
            None => self_signed(&superior_ec, superior)?,
        };
        let superior_keys = jwks_of(&superior_claims, superior)?;
        let fetch_endpoint = superior_claims
            .get("metadata")
            .and_then(|m| m.get("federation_entity"))
            .and_then(|m| m.get("federation_fetch_endpoint"))
            .and_then(Value::as_str)
            .ok_or_else(|| refused(format!("{superior} has no federation_fetch_endpoint")))?;
        let sep = if fetch_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("sub", subject)
            .finish();
        let about = fetch(http, &format!("{fetch_endpoint}{sep}{q}")).await?;
        let keys = match anchor {
            Some((_, k)) => k,
            None => &superior_keys,
        };
        let about_claims = statement(&about, keys, superior, subject)?;
        // The keys the superior vouches for are the ones that must have signed the subject's
        // own statement (what it says of itself counts for nothing).
        let vouched = jwks_of(&about_claims, subject)?;
        statement(subject_ec, &vouched, subject, subject)?;
        Ok(Step {
            anchor: anchor.is_some(),
            expires: exp_of(&superior_claims).min(exp_of(&about_claims)),
            policy: about_claims.get("metadata_policy").cloned(),
            superior_claims,
            superior_ec,
        })
    }
}

struct Step {
    anchor: bool,
    expires: i64,
    policy: Option<Value>,
    superior_claims: Map<String, Value>,
    superior_ec: String,
}

/// An entity statement from `url`.
async fn fetch(http: &Http, url: &str) -> Result<String, OidcError> {
    let got = http.get(url, None).await?;
    if got.status != 200 {
        return Err(refused(format!(
            "{}: HTTP {}",
            super::http::strip_query(url),
            got.status
        )));
    }
    String::from_utf8(got.body)
        .map(|s| s.trim().to_string())
        .map_err(|_| refused(format!("{}: not text", super::http::strip_query(url))))
}

fn exp_of(claims: &Map<String, Value>) -> i64 {
    claims.get("exp").and_then(Value::as_i64).unwrap_or(0)
}

/// The `jwks` a statement carries, about `whom`.
fn jwks_of(claims: &Map<String, Value>, whom: &str) -> Result<JwkSet, OidcError> {
    let jwks = claims
        .get("jwks")
        .ok_or_else(|| refused(format!("the statement about {whom} has no jwks")))?;
    JwkSet::from_bytes(jwks.to_string())
        .map_err(|e| refused(format!("the statement about {whom} has bad jwks: {e}")))
}

/// An entity statement verified with `keys`: its type, its signature, its issuer and subject,
/// its time.
fn statement(
    token: &str,
    keys: &JwkSet,
    iss: &str,
    sub: &str,
) -> Result<Map<String, Value>, OidcError> {
    let header = unverified_part(token, 0)
        .ok_or_else(|| refused(format!("the statement of {iss} about {sub} is not a JWS")))?;
    if header.get("typ").and_then(Value::as_str) != Some("entity-statement+jwt") {
        return Err(refused(format!(
            "the statement of {iss} about {sub} is not typed entity-statement+jwt"
        )));
    }
    let (claims, _) = verify(token, keys).map_err(|e| {
        refused(format!(
            "the statement of {iss} about {sub} does not verify: {e:?}"
        ))
    })?;
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if s("iss") != Some(iss) || s("sub") != Some(sub) {
        return Err(refused(format!(
            "a statement claims to be of {:?} about {:?}, not of {iss} about {sub}",
            s("iss"),
            s("sub")
        )));
    }
    let t = now();
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MAX);
    let exp = exp_of(&claims);
    if iat > t + SKEW {
        return Err(refused(format!(
            "the statement of {iss} about {sub} is from the future"
        )));
    }
    if exp + SKEW < t {
        return Err(refused(format!(
            "the statement of {iss} about {sub} has expired"
        )));
    }
    Ok(claims)
}

/// An entity's own configuration, verified with the keys it declares (what makes them count is
/// the superior's statement about it).
fn self_signed(token: &str, entity: &str) -> Result<Map<String, Value>, OidcError> {
    let Some(Value::Object(declared)) = unverified_part(token, 1) else {
        return Err(refused(format!(
            "the entity configuration of {entity} is not a JWS"
        )));
    };
    let keys = jwks_of(&declared, entity)?;
    statement(token, &keys, entity, entity)
}

/// Applies one superior's policy for a metadata type (OpenID Federation 1.0, §6.1: `value`,
/// `add`, `default`, then the checks `one_of`, `subset_of`, `superset_of`, `essential`).
pub(crate) fn apply_policy(
    metadata: &mut Map<String, Value>,
    policy: &Map<String, Value>,
) -> Result<(), String> {
    for (param, ops) in policy {
        let Some(ops) = ops.as_object() else {
            return Err(format!("the policy of {param} is not an object"));
        };
        if let Some(v) = ops.get("value") {
            if v.is_null() {
                metadata.remove(param);
            } else {
                metadata.insert(param.clone(), v.clone());
            }
        }
        if let Some(Value::Array(add)) = ops.get("add") {
            let entry = metadata
                .entry(param.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(have) = entry else {
                return Err(format!("{param}: `add` to a value that is not an array"));
            };
            for a in add {
                if !have.contains(a) {
                    have.push(a.clone());
                }
            }
        }
        if let Some(d) = ops.get("default") {
            metadata.entry(param.clone()).or_insert_with(|| d.clone());
        }
        if let Some(Value::Array(allowed)) = ops.get("one_of") {
            if let Some(v) = metadata.get(param) {
                if !allowed.contains(v) {
                    return Err(format!("{param} = {v} is not one of {allowed:?}"));
                }
            }
        }
        if let Some(Value::Array(allowed)) = ops.get("subset_of") {
            if let Some(v) = metadata.get_mut(param) {
                match v {
                    Value::Array(have) => {
                        have.retain(|x| allowed.contains(x));
                        if have.is_empty() {
                            metadata.remove(param);
                        }
                    }
                    other if !allowed.contains(other) => {
                        return Err(format!("{param} = {other} is not in {allowed:?}"))
                    }
                    _ => {}
                }
            }
        }
        if let Some(Value::Array(needed)) = ops.get("superset_of") {
            let have = metadata.get(param).and_then(Value::as_array);
            if let Some(have) = have {
                if let Some(missing) = needed.iter().find(|n| !have.contains(n)) {
                    return Err(format!("{param} lacks {missing}"));
                }
            }
        }
        if ops.get("essential") == Some(&Value::Bool(true)) && !metadata.contains_key(param) {
            return Err(format!("{param} is essential and missing"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
