//! The AssertionConsumerService: turns a posted SAML Response into a verified login, or a typed
//! [`AcsError`]. Every check of SPID-CIE.md §4.3, in this order of concern:
//!
//! 1. bounded size, base64, UTF-8; no DTD or entity declaration; only the XML-DSig transforms
//!    SPID uses (no XSLT, no XPath);
//! 2. the login it answers: `InResponseTo` must name a pending login, which is taken at once
//!    (one-shot: a replay finds nothing) and must belong to this browser;
//! 3. status: anything but Success is a refusal, with the SPID code (nr19…nr30) when given;
//! 4. signatures, verified by xmlsec with the IdP metadata's certificates only (never `KeyInfo`),
//!    RSA/ECDSA with SHA-256 or stronger; the document is reduced to the signed content and only
//!    that is read afterwards (no signature wrapping); the Assertion itself must be signed;
//! 5. every field: versions, IDs, issuers and formats, destinations and recipients, audience,
//!    timestamps with [`CLOCK_SKEW`], NameID, bearer confirmation, level and comparison,
//!    attributes.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use libxml::tree::{Document, Node};
use policies::{Attribute, IdpKind, Level};
use samael::crypto::{Crypto, CryptoProvider, ReduceMode};

pub use super::error::AcsError;
use crate::login::model::{PendingLogin, VerifiedLogin};
use crate::principal::Principal;
use crate::registry::IdpRegistry;
use crate::secret::{BrowserBinding, RelayState};
use crate::untrusted::{self, children, is, one_of, signs_itself, ALLOWED_ALGORITHMS};

/// Largest SAMLResponse accepted, base64 as posted.
pub const MAX_RESPONSE: usize = 256 * 1024;
/// Tolerated clock difference with the IdP.
pub const CLOCK_SKEW: Duration = Duration::from_secs(90);

const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const ENTITY: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";
const TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
fn invalid(msg: impl Into<String>) -> AcsError {
    AcsError::Invalid(msg.into())
}

/// What the ACS checks against.
#[derive(Debug)]
pub(crate) struct AcsContext<'a> {
    /// The configuration: the entityID (the Audience) and the ACS URL (Destination and
    /// Recipient) of the login's entity.
    pub(crate) config: &'a policies::Config,
    /// The entity whose ACS the answer was posted to.
    pub(crate) at: &'a policies::Audience,
    /// Trusted IdPs.
    pub(crate) idps: &'a IdpRegistry,
}

fn one(n: &Node, name: &str, namespace: &str, what: &str) -> Result<Node, AcsError> {
    one_of(n, name, namespace).map_err(|count| {
        invalid(if count == 0 {
            format!("{what} is missing")
        } else {
            format!("{what} appears more than once")
        })
    })
}

fn attr(n: &Node, name: &str, what: &str) -> Result<String, AcsError> {
    match n.get_attribute(name) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        Some(_) => Err(invalid(format!("{what} is empty"))),
        None => Err(invalid(format!("{what} is missing"))),
    }
}

fn instant(n: &Node, name: &str, what: &str) -> Result<DateTime<Utc>, AcsError> {
    let v = attr(n, name, what)?;
    // xs:dateTime in UTC, with or without fractions of a second.
    if !v.ends_with('Z') {
        return Err(invalid(format!("{what} is not a UTC instant: {v}")));
    }
    DateTime::parse_from_rfc3339(&v)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| invalid(format!("{what} is not a valid instant: {v}")))
}

fn text(n: &Node) -> String {
    n.get_content().trim().to_string()
}

/// The SPID code in a StatusMessage such as `ErrorCode nr22`.
fn spid_code(message: &str) -> Option<u8> {
    let digits: String = message
        .split("nr")
        .nth(1)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|c| (1..=99).contains(c))
}

fn parse(xml: &str) -> Result<Document, AcsError> {
    untrusted::parse(xml, MAX_RESPONSE).map_err(|r| {
        if r.is_dangerous() {
            AcsError::Dangerous(r.reason())
        } else {
            AcsError::Malformed(r.reason())
        }
    })
}

/// A posted SAMLResponse that passed the shape checks (size, base64, UTF-8, no DTD, only SPID's
/// transforms, a `samlp:Response`). Nothing in it is trusted yet: its `InResponseTo` only says
/// which pending login to take before [`verify`].
pub struct UnverifiedResponse {
    xml: String,
    in_response_to: String,
}

impl UnverifiedResponse {
    /// The `InResponseTo` the response claims (unsigned: use it only to find the login).
    pub(crate) fn in_response_to(&self) -> &str {
        &self.in_response_to
    }

    /// The document as received, for the audit trail.
    pub(crate) fn xml(&self) -> &str {
        &self.xml
    }
}

impl std::fmt::Debug for UnverifiedResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The document holds personal data (names, fiscal numbers): only its size prints.
        f.debug_struct("UnverifiedResponse")
            .field("bytes", &self.xml.len())
            .finish_non_exhaustive()
    }
}

/// Step 1 of the ACS: checks the response's shape and reads which login it claims to answer.
pub(crate) fn receive(saml_response: &str) -> Result<UnverifiedResponse, AcsError> {
    if saml_response.len() > MAX_RESPONSE {
        return Err(AcsError::Malformed("response too large"));
    }
    let compact: String = saml_response
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| AcsError::Malformed("SAMLResponse is not base64"))?;
    let xml = String::from_utf8(raw).map_err(|_| AcsError::Malformed("response is not UTF-8"))?;
    let doc = parse(&xml)?;
    let root = doc
        .get_root_element()
        .ok_or(AcsError::Malformed("empty document"))?;
    if !is(&root, "Response", NS_PROTOCOL) {
        return Err(AcsError::Malformed("the document is not a samlp:Response"));
    }
    let in_response_to = root
        .get_attribute("InResponseTo")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid("Response InResponseTo is missing"))?;
    // It names a store entry before anything is verified: only the shape of varco's own request
    // IDs can (`_` and 32 hex digits), anything else never reaches the store.
    if in_response_to.len() > 64
        || !in_response_to
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(AcsError::NoPendingLogin);
    }
    Ok(UnverifiedResponse {
        xml,
        in_response_to,
    })
}

/// Step 2 of the ACS: checks `received` against the login it answers, `pending` as taken (once)
/// from the store by its `InResponseTo` (`None`: no such login, or already used).
pub(crate) fn verify(
    ctx: &AcsContext<'_>,
    received: &UnverifiedResponse,
    pending: Option<PendingLogin>,
    relay_state: Option<&str>,
    binding: Option<&BrowserBinding>,
) -> Result<VerifiedLogin, AcsError> {
    let xml = &received.xml;
    // Parsed again (tens of microseconds, against the signature check's hundreds): a libxml
    // document is not `Send`, so `receive`'s cannot wait across the store's lookup.
    let raw_doc = parse(xml)?;
    let raw_root = raw_doc
        .get_root_element()
        .ok_or(AcsError::Malformed("empty document"))?;

    // 2. The login it answers.
    let pending = pending.ok_or(AcsError::NoPendingLogin)?;
    if pending.request_id() != received.in_response_to {
        return Err(AcsError::NoPendingLogin);
    }
    match binding {
        Some(b) if b.digest() == *pending.binding() => {}
        _ => return Err(AcsError::WrongBrowser),
    }
    if let Some(rs) = relay_state {
        if RelayState::from_untrusted(rs).digest() != *pending.relay_state() {
            return Err(invalid("RelayState does not match the request"));
        }
    }
    let idp = ctx
        .idps
        .get(pending.idp())
        .ok_or(AcsError::NoPendingLogin)?;
    // The login was made for one entity (a comune, in aggregator mode): its answer must come to
    // that entity's ACS and name that entity, never another comune's.
    if pending.audience() != ctx.at {
        return Err(invalid("the Response was posted to another SP's ACS"));
    }
    let entity_id = ctx.config.entity_id(pending.audience());
    let acs_url = crate::saml::metadata::SpEndpoints::of(ctx.config, pending.audience()).acs;

    // 3. Status.
    let status = one(&raw_root, "Status", NS_PROTOCOL, "Status")?;
    let code = one(&status, "StatusCode", NS_PROTOCOL, "StatusCode")?;
    let code_value = attr(&code, "Value", "StatusCode Value")?;
    if code_value != SUCCESS {
        let message = children(&status, "StatusMessage", NS_PROTOCOL)
            .first()
            .map(text)
            .unwrap_or_default();
        return Err(AcsError::IdpRefused {
            code: spid_code(&message),
            status: code_value,
            message,
        });
    }

    // 4. Signatures: verify, then keep only what was signed.
    let signed_xml = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &idp.signing_certs,
        ReduceMode::ValidateAndMarkNoAncestors,
        Some(ALLOWED_ALGORITHMS),
    )
    .map_err(|e| AcsError::Signature(e.to_string()))?;
    let signed_doc = parse(&signed_xml)?;
    let signed_root = signed_doc
        .get_root_element()
        .ok_or_else(|| AcsError::Signature("nothing is signed".into()))?;
    let (response, assertion) = if is(&signed_root, "Response", NS_PROTOCOL) {
        // The signed Response must be the document itself: one nested anywhere else (in an
        // unsigned Response's Extensions, say) would leave the outer document, which is what the
        // audit trail keeps, unverified.
        if signed_root.get_attribute("ID") != raw_root.get_attribute("ID")
            || !signs_itself(&raw_root)
        {
            return Err(AcsError::Signature(
                "the signed Response is not the document's root".into(),
            ));
        }
        let a = one(&signed_root, "Assertion", NS_ASSERTION, "Assertion")?;
        // The Response is signed; the Assertion inside must carry its own (verified) signature.
        if !signs_itself(&a) {
            return Err(AcsError::Signature("the Assertion is not signed".into()));
        }
        (signed_root.clone(), a)
    } else if is(&signed_root, "Assertion", NS_ASSERTION) {
        // Only the Assertion is signed (the verified reference is the Assertion itself, whose
        // enveloped signature the reduction removed): Response-level fields come from the raw
        // document, the identity only from the signed Assertion.
        let raw_assertions = children(&raw_root, "Assertion", NS_ASSERTION);
        if raw_assertions.len() != 1 {
            return Err(invalid("the Response must contain exactly one Assertion"));
        }
        // The signed Assertion must be that one, not one hidden elsewhere in the document.
        if raw_assertions[0].get_attribute("ID") != signed_root.get_attribute("ID") {
            return Err(AcsError::Signature(
                "the signed Assertion is not the Response's Assertion".into(),
            ));
        }
        (raw_root.clone(), signed_root.clone())
    } else {
        return Err(AcsError::Signature(
            "the signed element is neither Response nor Assertion".into(),
        ));
    };

    // 5. Fields.
    let now = Utc::now();
    let skew = chrono::Duration::from_std(CLOCK_SKEW).unwrap_or_default();
    let not_before_request = pending.issue_instant() - skew;
    let check_instant = |n: &Node, what: &str| -> Result<(), AcsError> {
        let t = instant(n, "IssueInstant", what)?;
        if t < not_before_request {
            return Err(invalid(format!("{what} is before the request")));
        }
        if t > now + skew {
            return Err(invalid(format!("{what} is in the future")));
        }
        Ok(())
    };
    attr(&response, "ID", "Response ID")?;
    if response.get_attribute("Version").as_deref() != Some("2.0") {
        return Err(invalid("Response Version is not 2.0"));
    }
    check_instant(&response, "Response IssueInstant")?;
    if response.get_attribute("InResponseTo").as_deref() != Some(pending.request_id()) {
        return Err(invalid("Response InResponseTo does not match the request"));
    }
    if attr(&response, "Destination", "Response Destination")? != acs_url {
        return Err(invalid("Response Destination is not this ACS"));
    }
    let issuer = one(&response, "Issuer", NS_ASSERTION, "Response Issuer")?;
    if text(&issuer) != idp.entity_id {
        return Err(invalid("Response Issuer is not the IdP"));
    }
    if issuer.get_attribute("Format").is_some_and(|f| f != ENTITY) {
        return Err(invalid("Response Issuer Format is not entity"));
    }

    attr(&assertion, "ID", "Assertion ID")?;
    if assertion.get_attribute("Version").as_deref() != Some("2.0") {
        return Err(invalid("Assertion Version is not 2.0"));
    }
    check_instant(&assertion, "Assertion IssueInstant")?;
    let a_issuer = one(&assertion, "Issuer", NS_ASSERTION, "Assertion Issuer")?;
    if text(&a_issuer) != idp.entity_id {
        return Err(invalid("Assertion Issuer is not the IdP"));
    }
    match (a_issuer.get_attribute("Format"), idp.kind) {
        (Some(f), _) if f == ENTITY => {}
        (None, IdpKind::Cie) => {}
        (None, IdpKind::Spid | IdpKind::Other) => {
            return Err(invalid("Assertion Issuer Format is missing"))
        }
        (Some(_), _) => return Err(invalid("Assertion Issuer Format is not entity")),
    }

    let subject = one(&assertion, "Subject", NS_ASSERTION, "Subject")?;
    let name_id = one(&subject, "NameID", NS_ASSERTION, "NameID")?;
    let name_id_value = text(&name_id);
    if name_id_value.is_empty() {
        return Err(invalid("NameID is empty"));
    }
    if attr(&name_id, "Format", "NameID Format")? != TRANSIENT {
        return Err(invalid("NameID Format is not transient"));
    }
    attr(&name_id, "NameQualifier", "NameID NameQualifier")?;
    let confirmation = one(
        &subject,
        "SubjectConfirmation",
        NS_ASSERTION,
        "SubjectConfirmation",
    )?;
    if attr(&confirmation, "Method", "SubjectConfirmation Method")? != BEARER {
        return Err(invalid("SubjectConfirmation Method is not bearer"));
    }
    let data = one(
        &confirmation,
        "SubjectConfirmationData",
        NS_ASSERTION,
        "SubjectConfirmationData",
    )?;
    if attr(&data, "Recipient", "SubjectConfirmationData Recipient")? != acs_url {
        return Err(invalid("SubjectConfirmationData Recipient is not this ACS"));
    }
    if attr(
        &data,
        "InResponseTo",
        "SubjectConfirmationData InResponseTo",
    )? != pending.request_id()
    {
        return Err(invalid(
            "SubjectConfirmationData InResponseTo does not match the request",
        ));
    }
    if instant(
        &data,
        "NotOnOrAfter",
        "SubjectConfirmationData NotOnOrAfter",
    )? <= now - skew
    {
        return Err(invalid("SubjectConfirmationData has expired"));
    }

    let conditions = one(&assertion, "Conditions", NS_ASSERTION, "Conditions")?;
    if instant(&conditions, "NotBefore", "Conditions NotBefore")? > now + skew {
        return Err(invalid("Conditions are not valid yet"));
    }
    if instant(&conditions, "NotOnOrAfter", "Conditions NotOnOrAfter")? <= now - skew {
        return Err(invalid("Conditions have expired"));
    }
    let restriction = one(
        &conditions,
        "AudienceRestriction",
        NS_ASSERTION,
        "AudienceRestriction",
    )?;
    let audiences = children(&restriction, "Audience", NS_ASSERTION);
    if audiences.is_empty() {
        return Err(invalid("Audience is missing"));
    }
    if !audiences.iter().any(|a| text(a) == *entity_id) {
        return Err(invalid("Audience is not this SP"));
    }

    let authn = one(&assertion, "AuthnStatement", NS_ASSERTION, "AuthnStatement")?;
    let context = one(&authn, "AuthnContext", NS_ASSERTION, "AuthnContext")?;
    let class = one(
        &context,
        "AuthnContextClassRef",
        NS_ASSERTION,
        "AuthnContextClassRef",
    )?;
    let class = text(&class);
    let level = Level::ALL
        .into_iter()
        .find(|l| l.class_ref() == class)
        .ok_or_else(|| invalid(format!("AuthnContextClassRef is not a SPID level: {class}")))?;
    if level < pending.level() {
        return Err(invalid(format!(
            "authenticated at {level}, {} was required",
            pending.level()
        )));
    }
    let authn_instant = authn
        .get_attribute("AuthnInstant")
        .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
        .map(|d| d.with_timezone(&Utc));
    let session_index = authn
        .get_attribute("SessionIndex")
        .filter(|s| !s.is_empty());

    let mut attributes = Vec::new();
    let statements = children(&assertion, "AttributeStatement", NS_ASSERTION);
    for st in &statements {
        let list = children(st, "Attribute", NS_ASSERTION);
        if list.is_empty() {
            return Err(invalid("AttributeStatement without Attribute"));
        }
        for a in list {
            let name = attr(&a, "Name", "Attribute Name")?;
            let values = children(&a, "AttributeValue", NS_ASSERTION);
            let Some(first) = values.first() else {
                return Err(invalid(format!("Attribute {name} has no AttributeValue")));
            };
            // Only names varco knows go on: nothing downstream can be fed an attribute that no
            // policy could have asked for.
            if let Ok(known) = name.parse::<Attribute>() {
                attributes.push((known, text(first)));
            }
        }
    }

    let principal = Principal::asserted(
        crate::principal::Protocol::Saml,
        idp.entity_id.clone(),
        name_id_value,
        session_index,
        level,
        authn_instant,
        attributes,
    );
    Ok(pending.verified(principal))
}

#[cfg(test)]
mod tests;
