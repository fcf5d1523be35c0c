//! Single Logout (SAML SLO, SPID "Avviso 3"): the SP's LogoutRequest to the IdP, the IdP's
//! LogoutResponse, and the IdP-initiated LogoutRequest with the SP's signed answer. Both bindings
//! are accepted from IdPs; varco sends with HTTP-Redirect.
//!
//! Redirect-binding signatures are verified here, over the query exactly as received (samael's
//! `UrlVerifier` re-encodes the query and panics on hostile input: STACK.md §7, gap 5).

use std::io::Read as _;

use base64::Engine as _;
use chrono::{SecondsFormat, Utc};
use libxml::tree::{Document, Node};
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use samael::crypto::{Crypto, CryptoProvider, ReduceMode};

use crate::error::{Error, Result};
use crate::keys::SpKeys;
use crate::registry::{Idp, IdpRegistry};
use crate::saml::authn::{new_request_id, signed_redirect};
use crate::untrusted::{self, children, is, signs_itself, ALLOWED_ALGORITHMS};
use crate::xml::escape;

/// Largest SAML message accepted on the SLO endpoint, decoded and inflated.
const MAX_MESSAGE: usize = 128 * 1024;

/// Why an SLO message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SloError {
    /// Not a decodable SAML message.
    #[error("malformed logout message: {0}")]
    Malformed(&'static str),
    /// Unknown issuer, bad or missing signature.
    #[error("logout message not trusted: {0}")]
    Untrusted(String),
}

/// How old an IdP's LogoutRequest may be (plus [`crate::CLOCK_SKEW`]); keep seen IDs at least
/// this long to refuse replays.
pub const MAX_LOGOUT_REQUEST_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// An incoming logout message, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutMessage {
    /// The IdP ends a session it started.
    Request {
        /// Issuing IdP.
        idp: String,
        /// Its ID (our response's InResponseTo).
        id: String,
        /// The citizen's NameID.
        name_id: String,
        /// SessionIndex, if sent.
        session_index: Option<String>,
    },
    /// The IdP answers our LogoutRequest.
    Response {
        /// Issuing IdP.
        idp: String,
        /// Our request's ID.
        in_response_to: String,
        /// Whether the status is Success.
        success: bool,
    },
}

/// A field of a raw query string, as received (still form-encoded).
pub(crate) fn form_field<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

/// One form-encoded value, decoded.
pub(crate) fn decode_form(v: &str) -> String {
    url::form_urlencoded::parse(format!("v={v}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn inflate(b64: &str) -> Result<String, SloError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.split_ascii_whitespace().collect::<String>())
        .map_err(|_| SloError::Malformed("not base64"))?;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(&raw[..])
        .take(MAX_MESSAGE as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| SloError::Malformed("not DEFLATE data"))?;
    if out.len() > MAX_MESSAGE {
        return Err(SloError::Malformed("message too large"));
    }
    String::from_utf8(out).map_err(|_| SloError::Malformed("not UTF-8"))
}

const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";

fn parse(xml: &str) -> Result<Document, SloError> {
    untrusted::parse(xml, MAX_MESSAGE).map_err(|r| SloError::Malformed(r.reason()))
}

/// The message's own (unverified) issuer: only used to pick the keys to verify with.
fn issuer_of(root: &Node) -> Result<String, SloError> {
    children(root, "Issuer", NS_ASSERTION)
        .first()
        .map(|i| i.get_content().trim().to_string())
        .ok_or(SloError::Malformed("no Issuer"))
}

/// The message's root element and the trusted IdP its (unverified) issuer names, whose keys the
/// signature is then checked with.
fn root_and_issuer<'a>(doc: &Document, idps: &'a IdpRegistry) -> Result<(Node, &'a Idp), SloError> {
    let root = doc
        .get_root_element()
        .ok_or(SloError::Malformed("empty document"))?;
    let issuer = issuer_of(&root)?;
    let idp = idps
        .get(&issuer)
        .ok_or_else(|| SloError::Untrusted(format!("unknown issuer {issuer}")))?;
    Ok((root, idp))
}

/// A non-empty attribute of `n`.
fn required(n: &Node, name: &str, missing: &'static str) -> Result<String, SloError> {
    n.get_attribute(name)
        .filter(|v| !v.is_empty())
        .ok_or(SloError::Malformed(missing))
}

/// Reads a verified message: `root` is signed content only (the whole message of a verified
/// HTTP-Redirect query, or what the reduction of an HTTP-POST document to its signed root kept).
fn read_verified(root: &Node, idp: &Idp, slo_url: &str) -> Result<LogoutMessage, SloError> {
    if issuer_of(root)? != idp.entity_id {
        return Err(SloError::Untrusted(
            "the signed Issuer is not the IdP".into(),
        ));
    }
    if root
        .get_attribute("Destination")
        .is_some_and(|d| d != slo_url)
    {
        return Err(SloError::Untrusted(
            "Destination is not this SP's SLO endpoint".into(),
        ));
    }
    let child = |name: &str, namespace: &str| children(root, name, namespace).into_iter().next();
    if is(root, "LogoutRequest", NS_PROTOCOL) {
        // A captured request must not work later: the caller keeps its ID for
        // MAX_LOGOUT_REQUEST_AGE (replay), and older ones are refused here.
        let issued = root
            .get_attribute("IssueInstant")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or(SloError::Malformed("no valid IssueInstant"))?;
        let now = Utc::now();
        let skew = chrono::Duration::from_std(crate::CLOCK_SKEW).unwrap_or_default();
        let max_age = chrono::Duration::from_std(MAX_LOGOUT_REQUEST_AGE).unwrap_or_default();
        if issued > now + skew || issued < now - max_age - skew {
            return Err(SloError::Untrusted(
                "LogoutRequest IssueInstant is not recent".into(),
            ));
        }
        let name_ids = children(root, "NameID", NS_ASSERTION);
        let [name_id] = name_ids.as_slice() else {
            return Err(SloError::Malformed("not exactly one NameID"));
        };
        Ok(LogoutMessage::Request {
            idp: idp.entity_id.clone(),
            id: required(root, "ID", "no ID")?,
            name_id: Some(name_id.get_content().trim().to_string())
                .filter(|n| !n.is_empty())
                .ok_or(SloError::Malformed("no NameID"))?,
            session_index: child("SessionIndex", NS_PROTOCOL)
                .map(|n| n.get_content().trim().to_string()),
        })
    } else if is(root, "LogoutResponse", NS_PROTOCOL) {
        let success = child("Status", NS_PROTOCOL)
            .and_then(|s| children(&s, "StatusCode", NS_PROTOCOL).into_iter().next())
            .and_then(|c| c.get_attribute("Value"))
            .is_some_and(|v| v == "urn:oasis:names:tc:SAML:2.0:status:Success");
        Ok(LogoutMessage::Response {
            idp: idp.entity_id.clone(),
            in_response_to: required(root, "InResponseTo", "no InResponseTo")?,
            success,
        })
    } else {
        Err(SloError::Malformed(
            "neither LogoutRequest nor LogoutResponse",
        ))
    }
}

/// Verifies an HTTP-Redirect message from its raw query string (as received, before decoding).
pub fn verify_redirect(
    raw_query: &str,
    idps: &IdpRegistry,
    slo_url: &str,
) -> Result<LogoutMessage, SloError> {
    let (param, value) = match (
        form_field(raw_query, "SAMLRequest"),
        form_field(raw_query, "SAMLResponse"),
    ) {
        (Some(v), None) => ("SAMLRequest", v),
        (None, Some(v)) => ("SAMLResponse", v),
        _ => {
            return Err(SloError::Malformed(
                "exactly one of SAMLRequest and SAMLResponse",
            ))
        }
    };
    let sig_alg_raw = form_field(raw_query, "SigAlg")
        .ok_or_else(|| SloError::Untrusted("no SigAlg: the message is not signed".into()))?;
    let signature_raw = form_field(raw_query, "Signature")
        .ok_or_else(|| SloError::Untrusted("no Signature".into()))?;
    let digest = match decode_form(sig_alg_raw).as_str() {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => MessageDigest::sha256(),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => MessageDigest::sha384(),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => MessageDigest::sha512(),
        other => {
            return Err(SloError::Untrusted(format!(
                "signature algorithm not accepted: {other}"
            )))
        }
    };
    // The signed octets: the parameters in the order SAML defines, as they appeared on the wire.
    let mut signed = format!("{param}={value}");
    if let Some(rs) = form_field(raw_query, "RelayState") {
        signed.push_str(&format!("&RelayState={rs}"));
    }
    signed.push_str(&format!("&SigAlg={sig_alg_raw}"));
    let signature = base64::engine::general_purpose::STANDARD
        .decode(decode_form(signature_raw))
        .map_err(|_| SloError::Untrusted("Signature is not base64".into()))?;
    let xml = inflate(&decode_form(value))?;
    let doc = parse(&xml)?;
    let (root, idp) = root_and_issuer(&doc, idps)?;
    let verified = idp.signing_certs.iter().any(|cert| {
        openssl::x509::X509::from_der(cert.der_data())
            .and_then(|c| c.public_key())
            .and_then(|key| {
                let mut v = Verifier::new(digest, &key)?;
                v.update(signed.as_bytes())?;
                v.verify(&signature)
            })
            .unwrap_or(false)
    });
    if !verified {
        return Err(SloError::Untrusted(
            "the signature does not verify with the IdP's certificates".into(),
        ));
    }
    // The query's signature covers the whole message.
    read_verified(&root, idp, slo_url)
}

/// Verifies an HTTP-POST message (base64 XML with an enveloped signature).
pub fn verify_post(
    b64: &str,
    idps: &IdpRegistry,
    slo_url: &str,
) -> Result<LogoutMessage, SloError> {
    if b64.len() > MAX_MESSAGE * 2 {
        return Err(SloError::Malformed("message too large"));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.split_ascii_whitespace().collect::<String>())
        .map_err(|_| SloError::Malformed("not base64"))?;
    let xml = String::from_utf8(raw).map_err(|_| SloError::Malformed("not UTF-8"))?;
    let doc = parse(&xml)?;
    let (root, idp) = root_and_issuer(&doc, idps)?;
    // As at the ACS: every signature verified with the metadata's keys and allowed algorithms,
    // the document reduced to what they cover, and the covered element must be the message
    // itself. A signed assertion from some login wrapped in a forged LogoutRequest is refused.
    if !signs_itself(&root) {
        return Err(SloError::Untrusted(
            "the message itself is not signed".into(),
        ));
    }
    let signed = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        &xml,
        &idp.signing_certs,
        ReduceMode::ValidateAndMarkNoAncestors,
        Some(ALLOWED_ALGORITHMS),
    )
    .map_err(|e| SloError::Untrusted(format!("the message is not signed by the IdP: {e}")))?;
    let signed_doc = parse(&signed)?;
    let signed_root = signed_doc
        .get_root_element()
        .ok_or_else(|| SloError::Untrusted("nothing is signed".into()))?;
    if signed_root.get_attribute("ID") != root.get_attribute("ID") {
        return Err(SloError::Untrusted(
            "the signed element is not the message".into(),
        ));
    }
    read_verified(&signed_root, idp, slo_url)
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The SP-initiated LogoutRequest, signed, for the HTTP-Redirect binding. Returns its ID and URL.
pub fn logout_request(
    entity_id: &str,
    keys: &SpKeys,
    idp: &Idp,
    name_id: &str,
    session_index: Option<&str>,
) -> Result<(String, String)> {
    let destination = idp.slo_redirect.as_deref().ok_or(Error::Binding {
        idp: idp.entity_id.clone(),
        binding: "HTTP-Redirect (SingleLogoutService)",
    })?;
    let id = new_request_id();
    let index = session_index
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", escape(s)))
        .unwrap_or_default();
    let xml = format!(
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{now}\" Destination=\"{dest}\">\
<saml:Issuer Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:entity\" NameQualifier=\"{entity}\">{entity}</saml:Issuer>\
<saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:transient\" NameQualifier=\"{idp}\">{name}</saml:NameID>{index}</samlp:LogoutRequest>",
        now = now(),
        dest = escape(destination),
        entity = escape(entity_id),
        idp = escape(&idp.entity_id),
        name = escape(name_id),
    );
    let url = signed_redirect(keys, destination, "SAMLRequest", &xml, None)?;
    Ok((id, url))
}

/// The SP's signed LogoutResponse (Success) to an IdP-initiated LogoutRequest.
pub fn logout_response(
    entity_id: &str,
    keys: &SpKeys,
    idp: &Idp,
    in_response_to: &str,
) -> Result<String> {
    let destination = idp.slo_redirect.as_deref().ok_or(Error::Binding {
        idp: idp.entity_id.clone(),
        binding: "HTTP-Redirect (SingleLogoutService)",
    })?;
    let xml = format!(
        "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{now}\" Destination=\"{dest}\" InResponseTo=\"{irt}\">\
<saml:Issuer Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:entity\" NameQualifier=\"{entity}\">{entity}</saml:Issuer>\
<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status></samlp:LogoutResponse>",
        id = new_request_id(),
        now = now(),
        dest = escape(destination),
        irt = escape(in_response_to),
        entity = escape(entity_id),
    );
    signed_redirect(keys, destination, "SAMLResponse", &xml, None)
}

#[cfg(test)]
mod tests;
