//! `[[oidc]]`: the OpenID Connect providers varco logs citizens in through (the Region's own
//! platform, a Keycloak, a SPID or CIE OpenID provider), besides the SAML IdPs of `[[idp]]`.

use std::path::{Path, PathBuf};

use url::Url;

use super::{existing_file, is_loopback_host, IdpKind};
use crate::identity::{Attribute, Level};
use crate::reader::{At, Sink, TableReader};

/// One `[[oidc]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The issuer exactly as configured: what `/.sso/login?idp=` names, what the ID token's
    /// `iss` must equal, and what back-ends receive in `X-Varco-Idp`.
    pub issuer: String,
    /// The client ID the provider registered varco under.
    pub client_id: String,
    /// How varco authenticates at the token endpoint.
    pub client_auth: ClientAuth,
    /// The private key (PEM, RSA or EC P-256) that signs client assertions and request objects.
    pub key: Option<PathBuf>,
    /// Name shown on the choice page.
    pub display_name: String,
    /// Which button it sits behind.
    pub kind: IdpKind,
    /// Scopes asked for; always includes `openid`.
    pub scopes: Vec<String>,
    /// Which claim carries each attribute, in file order (or the SPID/CIE defaults).
    pub claims: Vec<(Attribute, String)>,
    /// Which `acr` value each level is, weakest first (or the SPID defaults).
    pub acr: Vec<(Level, String)>,
    /// Resolved through a trust chain of the SPID/CIE OpenID Connect Federation
    /// (`[oidc_federation]`) rather than by discovery: `issuer` is the provider's entity ID and
    /// `client_id` varco's.
    pub federation: bool,
}

/// `[oidc_federation]`: varco as a relying party (a leaf) of the SPID/CIE OpenID Connect
/// Federation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederationConfig {
    /// The trust anchors a provider's chain may end at, each with its keys (a JWK Set file).
    pub trust_anchors: Vec<TrustAnchor>,
    /// varco's superiors, as its entity configuration names them.
    pub authority_hints: Vec<String>,
    /// The keys (PEM) that sign varco's entity configuration: distinct from the OpenID Connect
    /// keys of `[[oidc]] key`.
    pub federation_keys: Vec<PathBuf>,
    /// The trust marks issued to varco (a JSON array of `{"id", "trust_mark"}`), if any.
    pub trust_marks: Option<PathBuf>,
    /// The key (PEM, RSA) providers encrypt UserInfo and ID tokens to, published in varco's
    /// relying-party metadata with `use = "enc"`.
    pub encryption_key: Option<PathBuf>,
}

/// One trust anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    /// Its entity ID.
    pub entity_id: String,
    /// Its federation keys, a JWK Set file.
    pub jwks: PathBuf,
}

/// Client authentication at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// A JWT signed with `key` (RFC 7523), as the SPID/CIE profile requires.
    PrivateKeyJwt,
    /// HTTP Basic with a shared secret read from this file (trailing newline ignored).
    ClientSecretBasic {
        /// The file holding the secret.
        secret_file: PathBuf,
    },
}

impl OidcConfig {
    /// The claim that carries `a` from this provider, if it releases it.
    pub fn claim_for(&self, a: Attribute) -> Option<&str> {
        self.claims
            .iter()
            .find(|(x, _)| *x == a)
            .map(|(_, c)| c.as_str())
    }

    /// The `acr` value for `level`.
    pub fn acr_for(&self, level: Level) -> Option<&str> {
        self.acr
            .iter()
            .find(|(l, _)| *l == level)
            .map(|(_, v)| v.as_str())
    }

    /// The level an `acr` value stands for.
    pub fn level_of(&self, acr: &str) -> Option<Level> {
        self.acr.iter().find(|(_, v)| v == acr).map(|(l, _)| *l)
    }
}

/// The claims of the SPID/CIE OpenID Connect profile (`https://attributes.eid.gov.it/*` and the
/// standard ones it reuses), for a provider whose `claims` are not given.
pub const DEFAULT_CLAIMS: &[(Attribute, &str)] = &[
    (
        Attribute::FiscalNumber,
        "https://attributes.eid.gov.it/fiscal_number",
    ),
    (Attribute::Name, "given_name"),
    (Attribute::FamilyName, "family_name"),
    (Attribute::DateOfBirth, "birthdate"),
    (Attribute::Gender, "gender"),
    (Attribute::PlaceOfBirth, "place_of_birth"),
    (Attribute::Email, "email"),
    (Attribute::MobilePhone, "phone_number"),
    (Attribute::Address, "address"),
    (
        Attribute::SpidCode,
        "https://attributes.eid.gov.it/spid_code",
    ),
    (
        Attribute::CompanyName,
        "https://attributes.eid.gov.it/company_name",
    ),
    (
        Attribute::RegisteredOffice,
        "https://attributes.eid.gov.it/registered_office",
    ),
    (
        Attribute::IvaCode,
        "https://attributes.eid.gov.it/vat_number",
    ),
    (
        Attribute::CompanyFiscalNumber,
        "https://attributes.eid.gov.it/company_fiscal_number",
    ),
    (
        Attribute::IdCard,
        "https://attributes.eid.gov.it/document_details",
    ),
    (
        Attribute::ExpirationDate,
        "https://attributes.eid.gov.it/eid_exp_date",
    ),
    (
        Attribute::DigitalAddress,
        "https://attributes.eid.gov.it/e_delivery_service",
    ),
];

pub(super) fn read_oidc(
    mut t: TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    base: &Path,
    federation: Option<&FederationConfig>,
    entity_id: &str,
) -> Option<OidcConfig> {
    let federated = t.opt_bool(sink, "federation");
    let is_federated = federated.as_ref().is_some_and(|f| f.value);
    if let (Some(f), None) = (federated.as_ref().filter(|f| f.value), federation) {
        sink.error(
            &f.span,
            "[[oidc]]: `federation = true` needs an `[oidc_federation]` table",
        );
    }
    let issuer =
        t.str(sink, "issuer", "the provider's issuer URL")
            .and_then(|At { value, span }| {
                check_issuer(&value)
                    .map_err(|m| sink.error(&span, format!("[[oidc]]: `issuer` {m}")))
                    .ok()?;
                Some(value)
            });
    // In the federation varco's client ID is its entity ID.
    let client_id = if is_federated {
        match t.opt_str(sink, "client_id") {
            Some(At { value, span }) if value != entity_id => {
                sink.error(
                    &span,
                    format!("[[oidc]]: in the federation `client_id` is varco's entity ID, \"{entity_id}\" (the public URL's origin): leave it out"),
                );
                None
            }
            _ => Some(entity_id.to_string()),
        }
    } else {
        t.str(sink, "client_id", "the client ID")
            .and_then(|At { value, span }| {
                if value.is_empty() || value.chars().any(char::is_control) {
                    sink.error(
                        &span,
                        "[[oidc]]: `client_id` must be a non-empty string without control characters",
                    );
                    return None;
                }
                Some(value)
            })
    };
    let key = t
        .opt_str(sink, "key")
        .map(|k| existing_file(sink, base, "key", k));
    let secret_file = t.opt_str(sink, "client_secret_file").map(|k| {
        (
            k.span.clone(),
            existing_file(sink, base, "client_secret_file", k),
        )
    });
    let client_auth = match t.opt_str(sink, "client_auth") {
        None => Some("private_key_jwt".to_string()).map(|v| (v, t.span().clone())),
        Some(At { value, span }) => Some((value, span)),
    }
    .and_then(|(value, span)| match (value.as_str(), &key, secret_file) {
        ("private_key_jwt", Some(_), None) => Some(ClientAuth::PrivateKeyJwt),
        ("private_key_jwt", None, _) => {
            sink.error(&span, "[[oidc]]: `client_auth = \"private_key_jwt\"` needs `key`, the PEM private key that signs the client assertions");
            None
        }
        ("private_key_jwt", Some(_), Some((s, _))) => {
            sink.error(&s, "[[oidc]]: `client_secret_file` is for `client_auth = \"client_secret_basic\"`");
            None
        }
        ("client_secret_basic", _, Some((_, secret_file))) => {
            Some(ClientAuth::ClientSecretBasic { secret_file })
        }
        ("client_secret_basic", _, None) => {
            sink.error(&span, "[[oidc]]: `client_auth = \"client_secret_basic\"` needs `client_secret_file`");
            None
        }
        (other, _, _) => {
            sink.error(&span, format!("[[oidc]]: `client_auth` must be \"private_key_jwt\" or \"client_secret_basic\", found \"{other}\""));
            None
        }
    });
    let display_name = t
        .str(sink, "display_name", "the name shown on the choice page")
        .and_then(|At { value, span }| {
            if value.trim().is_empty() {
                sink.error(&span, "[[oidc]]: `display_name` must not be empty");
                return None;
            }
            Some(value)
        });
    let kind = match t.opt_str(sink, "kind") {
        None => Some(IdpKind::Other),
        Some(At { value, span }) => match value.as_str() {
            "spid" => Some(IdpKind::Spid),
            "cie" => Some(IdpKind::Cie),
            "other" => Some(IdpKind::Other),
            _ => {
                sink.error(&span, format!("[[oidc]]: `kind` must be \"spid\", \"cie\" or \"other\", found \"{value}\""));
                None
            }
        },
    };
    let scopes = match t.opt_str_array(sink, "scopes") {
        None => Some(vec!["openid".to_string()]),
        Some(At { value, span }) => {
            let mut ok = true;
            for s in &value {
                if s.value.is_empty()
                    || !s
                        .value
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
                {
                    sink.error(
                        &s.span,
                        format!("[[oidc]]: `scopes`: \"{}\" is not a scope token", s.value),
                    );
                    ok = false;
                }
            }
            if !value.iter().any(|s| s.value == "openid") {
                sink.error(&span, "[[oidc]]: `scopes` must include \"openid\"");
                ok = false;
            }
            ok.then(|| value.into_iter().map(|s| s.value).collect())
        }
    };
    let claims = match t.opt_str_map(sink, "claims") {
        None => Some(
            DEFAULT_CLAIMS
                .iter()
                .map(|(a, c)| (*a, (*c).to_string()))
                .collect(),
        ),
        Some(map) => {
            let mut out: Vec<(Attribute, String)> = Vec::with_capacity(map.len());
            let mut ok = true;
            for (name, claim) in map {
                match name.value.parse::<Attribute>() {
                    Ok(a) if claim.value.is_empty() => {
                        sink.error(
                            &claim.span,
                            format!("[[oidc]]: `claims.{}` must name a claim", a.as_str()),
                        );
                        ok = false;
                    }
                    Ok(a) => out.push((a, claim.value)),
                    Err(()) => {
                        let hint = crate::reader::nearest(
                            &name.value,
                            Attribute::ALL.iter().map(|a| a.as_str()),
                        )
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                        sink.error(
                            &name.span,
                            format!(
                                "[[oidc]]: `claims`: `{}` is not a SPID attribute{hint}",
                                name.value
                            ),
                        );
                        ok = false;
                    }
                }
            }
            ok.then_some(out)
        }
    };
    let acr = match t.opt_str_map(sink, "acr") {
        None => Some(
            Level::ALL
                .into_iter()
                .map(|l| (l, l.class_ref().to_string()))
                .collect(),
        ),
        Some(map) => {
            let mut out: Vec<(Level, String)> = Vec::with_capacity(map.len());
            let mut ok = true;
            for (name, value) in map {
                match name.value.parse::<Level>() {
                    Ok(_) if value.value.is_empty() => {
                        sink.error(&value.span, "[[oidc]]: an `acr` value must not be empty");
                        ok = false;
                    }
                    Ok(_) if out.iter().any(|(_, v)| *v == value.value) => {
                        sink.error(
                            &value.span,
                            format!("[[oidc]]: `acr`: \"{}\" stands for two levels", value.value),
                        );
                        ok = false;
                    }
                    Ok(l) => out.push((l, value.value)),
                    Err(()) => {
                        sink.error(
                            &name.span,
                            format!(
                                "[[oidc]]: `acr`: `{}` is not a level (SpidL1, SpidL2, SpidL3)",
                                name.value
                            ),
                        );
                        ok = false;
                    }
                }
            }
            if ok && out.is_empty() {
                sink.error(t.span(), "[[oidc]]: `acr` must map at least one level");
                ok = false;
            }
            out.sort_by_key(|(l, _)| *l);
            ok.then_some(out)
        }
    };
    if is_federated
        && !matches!(client_auth, Some(ClientAuth::PrivateKeyJwt))
        && client_auth.is_some()
    {
        sink.error(
            t.span(),
            "[[oidc]]: the federation takes `client_auth = \"private_key_jwt\"` only",
        );
        return None;
    }
    t.finish(sink);
    Some(OidcConfig {
        federation: is_federated,
        issuer: issuer?,
        client_id: client_id?,
        client_auth: client_auth?,
        key,
        display_name: display_name?,
        kind: kind?,
        scopes: scopes?,
        claims: claims?,
        acr: acr?,
    })
}

/// An issuer URL: https, or http on loopback only; no query, no fragment (OpenID Connect
/// Discovery 1.0, §2).
pub(crate) fn check_issuer(value: &str) -> Result<(), String> {
    let url =
        Url::parse(value).map_err(|_| format!("must be an absolute URL, found \"{value}\""))?;
    let host = url.host_str().unwrap_or("");
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(host) => {}
        "http" => {
            return Err(format!(
                "must be https off loopback (plain http is for localhost, 127.0.0.0/8 and ::1 only): \"{value}\""
            ))
        }
        _ => return Err(format!("must be an https URL, found \"{value}\"")),
    }
    if host.is_empty()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err(format!(
            "must be a URL with a host and no query, fragment or user: \"{value}\""
        ));
    }
    Ok(())
}

pub(super) fn read_federation(
    mut t: TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    base: &Path,
) -> Option<FederationConfig> {
    let mut trust_anchors = Vec::new();
    for mut a in t.tables(sink, "trust_anchors", "oidc_federation.trust_anchors") {
        let entity_id = a
            .str(sink, "entity_id", "the trust anchor's entity ID")
            .and_then(|At { value, span }| {
                check_issuer(&value)
                    .map_err(|m| {
                        sink.error(
                            &span,
                            format!("oidc_federation.trust_anchors: `entity_id` {m}"),
                        )
                    })
                    .ok()?;
                Some(value)
            });
        let jwks = a
            .str(sink, "jwks", "the trust anchor's JWK Set file")
            .map(|j| existing_file(sink, base, "jwks", j));
        a.finish(sink);
        if let (Some(entity_id), Some(jwks)) = (entity_id, jwks) {
            trust_anchors.push(TrustAnchor { entity_id, jwks });
        }
    }
    if trust_anchors.is_empty() {
        sink.error(
            t.span(),
            "[oidc_federation]: `trust_anchors` must name at least one trust anchor",
        );
    }
    let authority_hints = match t.opt_str_array(sink, "authority_hints") {
        Some(At { value, span }) => {
            for h in &value {
                if let Err(m) = check_issuer(&h.value) {
                    sink.error(
                        &h.span,
                        format!("[oidc_federation]: `authority_hints`: {m}"),
                    );
                }
            }
            if value.is_empty() {
                sink.error(
                    &span,
                    "[oidc_federation]: `authority_hints` must name varco's superior",
                );
            }
            value.into_iter().map(|h| h.value).collect()
        }
        None => {
            sink.error(t.span(), "[oidc_federation]: `authority_hints` is missing (varco's superior in the federation)");
            Vec::new()
        }
    };
    let federation_keys: Vec<PathBuf> = match t.opt_str_array(sink, "federation_keys") {
        Some(At { value, span }) => {
            if value.is_empty() {
                sink.error(
                    &span,
                    "[oidc_federation]: `federation_keys` must name at least one key",
                );
            }
            value
                .into_iter()
                .map(|k| existing_file(sink, base, "federation_keys", k))
                .collect()
        }
        None => {
            sink.error(t.span(), "[oidc_federation]: `federation_keys` is missing (the keys that sign varco's entity configuration)");
            Vec::new()
        }
    };
    let trust_marks = t
        .opt_str(sink, "trust_marks")
        .map(|m| existing_file(sink, base, "trust_marks", m));
    let encryption_key = t
        .opt_str(sink, "encryption_key")
        .map(|m| existing_file(sink, base, "encryption_key", m));
    t.finish(sink);
    Some(FederationConfig {
        trust_anchors,
        authority_hints,
        federation_keys,
        trust_marks,
        encryption_key,
    })
}
