//! Who logged in: the identity an IdP asserted, as the rest of varco may use it.
//!
//! A [`Principal`] is made in two places only: by a protocol's verification (the ACS today, the
//! OpenID Connect callback later), which hands it out as a [`VerifiedPrincipal`], and by
//! [`Principal::restore_from_trusted_store`], which reads back what a session store kept. It has
//! no `Deserialize`, so no JSON from anywhere else can become one.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use policies::{Attribute, Audience, Level};

/// An identity as an IdP asserted it: who, at which level, with which attributes.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Principal(Asserted);

/// What a principal holds. Private, so its `Deserialize` serves
/// [`Principal::restore_from_trusted_store`] and nothing else.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Asserted {
    /// Sessions written before OpenID Connect came are SAML ones.
    #[serde(default)]
    protocol: Protocol,
    idp: String,
    name_id: String,
    session_index: Option<String>,
    level: Level,
    authn_instant: Option<DateTime<Utc>>,
    /// Only attributes varco knows (`policies` vocabulary); unknown names were dropped when the
    /// assertion was read.
    attributes: Vec<(Attribute, String)>,
    /// The SP entity the identity was asserted to (sessions written before aggregator mode are
    /// the SP's).
    #[serde(default, skip_serializing_if = "Audience::is_sp")]
    audience: Audience,
}

impl Principal {
    /// What a protocol's verification builds, and nothing else: crate-private.
    pub(crate) fn asserted(
        protocol: Protocol,
        idp: String,
        name_id: String,
        session_index: Option<String>,
        level: Level,
        authn_instant: Option<DateTime<Utc>>,
        attributes: Vec<(Attribute, String)>,
    ) -> VerifiedPrincipal {
        VerifiedPrincipal(Self(Asserted {
            protocol,
            idp,
            name_id,
            session_index,
            level,
            authn_instant,
            attributes,
            audience: Audience::Sp,
        }))
    }

    /// A principal that varco itself wrote to its session store (serialised with `serde`), read
    /// back. **Trusts the store**: the store is varco's own (in process, or a Redis only varco
    /// writes to); a value from the network must go through a protocol's verification instead.
    pub fn restore_from_trusted_store<'de, D: serde::Deserializer<'de>>(
        from: D,
    ) -> Result<Self, D::Error> {
        <Asserted as serde::Deserialize>::deserialize(from).map(Self)
    }

    /// The SP entity the identity was asserted to: the services of which it may reach.
    pub fn audience(&self) -> &Audience {
        &self.0.audience
    }
    /// The protocol the login went through.
    pub fn protocol(&self) -> Protocol {
        self.0.protocol
    }
    /// The identity provider: the SAML IdP's entityID, or the OpenID provider's issuer exactly
    /// as configured.
    pub fn idp(&self) -> &str {
        &self.0.idp
    }
    /// The transient NameID (needed for logout), or the OpenID Connect `sub`.
    pub fn name_id(&self) -> &str {
        &self.0.name_id
    }
    /// SessionIndex (SPID sends it for level 1), or the OpenID Connect `sid`.
    pub fn session_index(&self) -> Option<&str> {
        self.0.session_index.as_deref()
    }
    /// The level the IdP authenticated at.
    pub fn level(&self) -> Level {
        self.0.level
    }
    /// When the citizen authenticated.
    pub fn authn_instant(&self) -> Option<DateTime<Utc>> {
        self.0.authn_instant
    }
    /// Released attributes as the IdP sent them, in the order received.
    pub fn attributes(&self) -> &[(Attribute, String)] {
        &self.0.attributes
    }
    /// One attribute's value as the IdP sent it.
    pub fn attribute(&self, a: Attribute) -> Option<&str> {
        self.0
            .attributes
            .iter()
            .find(|(n, _)| *n == a)
            .map(|(_, v)| v.as_str())
    }

    /// The fiscal number, if released.
    pub fn fiscal_number(&self) -> Option<FiscalNumber> {
        self.attribute(Attribute::FiscalNumber)
            .map(FiscalNumber::from_asserted)
    }

    /// One attribute's value as back-ends receive it (headers and the identity JWT): the fiscal
    /// number normalised, every other value as sent.
    pub fn value_for_back_ends(&self, a: Attribute) -> Option<Cow<'_, str>> {
        let raw = self.attribute(a)?;
        Some(if a == Attribute::FiscalNumber {
            Cow::Owned(FiscalNumber::from_asserted(raw).0)
        } else {
            Cow::Borrowed(raw)
        })
    }

    /// Whether two principals are one citizen: by fiscal number when both have one (SPID NameIDs
    /// are transient, new at every login), else by IdP and NameID (the same login).
    pub fn same_person(&self, other: &Principal) -> bool {
        match (self.fiscal_number(), other.fiscal_number()) {
            (Some(x), Some(y)) => x == y,
            _ => self.0.idp == other.0.idp && self.0.name_id == other.0.name_id,
        }
    }
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Attribute values (fiscal number, e-mail...) never reach a log.
        f.debug_struct("Principal")
            .field("idp", &self.0.idp)
            .field("level", &self.0.level)
            .field(
                "attributes",
                &self.0.attributes.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The protocol a login went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// SAML 2.0 (SPID, CIE).
    #[default]
    Saml,
    /// OpenID Connect.
    Oidc,
    /// A CNS card's TLS client certificate.
    Cns,
}

impl Protocol {
    /// `saml`, `oidc` or `cns`, as the identity JWT's `protocol` claim carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Saml => "saml",
            Protocol::Oidc => "oidc",
            Protocol::Cns => "cns",
        }
    }
}

/// A [`Principal`] that a protocol's verification checked. Only this crate builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPrincipal(Principal);

impl std::ops::Deref for VerifiedPrincipal {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl VerifiedPrincipal {
    /// The identity, to keep (verification is over once it is in a session).
    pub fn into_principal(self) -> Principal {
        self.0
    }

    /// The same identity, asserted to `audience` (the entity of the login it answers).
    pub(crate) fn for_audience(mut self, audience: Audience) -> Self {
        self.0 .0.audience = audience;
        self
    }
}

/// A codice fiscale as back-ends expect it: upper case, without SPID's `TINIT-` prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct FiscalNumber(String);

impl FiscalNumber {
    /// Normalises the value of a `fiscalNumber` attribute (`TINIT-RSSMRA80A01H501U`, any case,
    /// surrounding blanks).
    pub fn from_asserted(raw: &str) -> Self {
        let upper = raw.trim().to_ascii_uppercase();
        Self(match upper.strip_prefix("TINIT-") {
            Some(rest) => rest.to_string(),
            None => upper,
        })
    }

    /// The normalised value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for FiscalNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FiscalNumber([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(fiscal: &str, name_id: &str) -> Principal {
        Principal::asserted(
            crate::principal::Protocol::Saml,
            "https://idp.example".into(),
            name_id.into(),
            None,
            Level::SpidL2,
            None,
            vec![(Attribute::FiscalNumber, fiscal.into())],
        )
        .into_principal()
    }

    #[test]
    fn the_fiscal_number_is_normalised_once() {
        for raw in [
            " tinit-rssmra80a01h501u ",
            "TINIT-RSSMRA80A01H501U",
            "RSSMRA80A01H501U",
        ] {
            assert_eq!(
                FiscalNumber::from_asserted(raw).as_str(),
                "RSSMRA80A01H501U"
            );
        }
        let p = principal("TINIT-RSSMRA80A01H501U", "_a");
        assert_eq!(
            p.attribute(Attribute::FiscalNumber),
            Some("TINIT-RSSMRA80A01H501U")
        );
        assert_eq!(
            p.value_for_back_ends(Attribute::FiscalNumber).as_deref(),
            Some("RSSMRA80A01H501U")
        );
        assert!(!format!("{:?}", p.fiscal_number()).contains("RSS"));
    }

    #[test]
    fn one_person_by_fiscal_number_else_by_login() {
        let a = principal("TINIT-RSSMRA80A01H501U", "_a");
        assert!(a.same_person(&principal("rssmra80a01h501u", "_b")));
        assert!(!a.same_person(&principal("TINIT-VRDGPP80A01H501X", "_a")));
    }

    #[test]
    fn a_store_round_trip_keeps_everything_and_the_format_is_unchanged() {
        let p = principal("TINIT-RSSMRA80A01H501U", "_a");
        let json = serde_json::to_string(&p).expect("json");
        assert!(
            json.contains(r#"["fiscalNumber","TINIT-RSSMRA80A01H501U"]"#),
            "{json}"
        );
        let mut de = serde_json::Deserializer::from_str(&json);
        assert_eq!(Principal::restore_from_trusted_store(&mut de).ok(), Some(p));
        let mut unknown = serde_json::Deserializer::from_str(
            r#"{"idp":"i","name_id":"n","session_index":null,"level":"SpidL2","authn_instant":null,"attributes":[["isAdmin","1"]]}"#,
        );
        assert!(Principal::restore_from_trusted_store(&mut unknown).is_err());
    }
}
