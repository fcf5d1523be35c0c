//! Single Logout (SAML SLO, SPID "Avviso 3"): the SP's LogoutRequest to the IdP, the IdP's
//! LogoutResponse, and the IdP-initiated LogoutRequest with the SP's signed answer. Both bindings
//! are accepted from IdPs; varco sends with HTTP-Redirect.
//!
//! Redirect-binding signatures are verified here, over the query exactly as received (samael's
//! `UrlVerifier` re-encodes the query and panics on hostile input: STACK.md §7, gap 5).

use std::io::Read as _;

use base64::Engine as _;
use chrono::{SecondsFormat, Utc};
use libxml::parser::Parser;
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use samael::crypto::{Crypto, CryptoProvider};

use crate::authn::{new_request_id, signed_redirect};
use crate::error::{Error, Result};
use crate::keys::SpKeys;
use crate::registry::{Idp, IdpRegistry};
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

fn form_field<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

fn decode_form(v: &str) -> String {
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

/// Parses the message enough to find its issuer (unverified: only used to pick the key).
fn issuer_of(xml: &str) -> Result<String, SloError> {
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(SloError::Malformed("DTD or entity declaration"));
    }
    let doc = Parser::default()
        .parse_string(xml)
        .map_err(|_| SloError::Malformed("not XML"))?;
    let root = doc
        .get_root_element()
        .ok_or(SloError::Malformed("empty document"))?;
    root.get_child_elements()
        .into_iter()
        .find(|c| c.get_name() == "Issuer")
        .map(|i| i.get_content().trim().to_string())
        .ok_or(SloError::Malformed("no Issuer"))
}

fn parse_verified(xml: &str, idp: &Idp, slo_url: &str) -> Result<LogoutMessage, SloError> {
    let doc = Parser::default()
        .parse_string(xml)
        .map_err(|_| SloError::Malformed("not XML"))?;
    let root = doc
        .get_root_element()
        .ok_or(SloError::Malformed("empty document"))?;
    if root
        .get_attribute("Destination")
        .is_some_and(|d| d != slo_url)
    {
        return Err(SloError::Untrusted(
            "Destination is not this SP's SLO endpoint".into(),
        ));
    }
    let child = |name: &str| {
        root.get_child_elements()
            .into_iter()
            .find(|c| c.get_name() == name)
    };
    match root.get_name().as_str() {
        "LogoutRequest" => {
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
            Ok(LogoutMessage::Request {
                idp: idp.entity_id.clone(),
                id: root
                    .get_attribute("ID")
                    .filter(|i| !i.is_empty())
                    .ok_or(SloError::Malformed("no ID"))?,
                name_id: child("NameID")
                    .map(|n| n.get_content().trim().to_string())
                    .filter(|n| !n.is_empty())
                    .ok_or(SloError::Malformed("no NameID"))?,
                session_index: child("SessionIndex").map(|n| n.get_content().trim().to_string()),
            })
        }
        "LogoutResponse" => {
            let success = child("Status")
                .and_then(|s| {
                    s.get_child_elements()
                        .into_iter()
                        .find(|c| c.get_name() == "StatusCode")
                })
                .and_then(|c| c.get_attribute("Value"))
                .is_some_and(|v| v == "urn:oasis:names:tc:SAML:2.0:status:Success");
            Ok(LogoutMessage::Response {
                idp: idp.entity_id.clone(),
                in_response_to: root
                    .get_attribute("InResponseTo")
                    .filter(|i| !i.is_empty())
                    .ok_or(SloError::Malformed("no InResponseTo"))?,
                success,
            })
        }
        _ => Err(SloError::Malformed(
            "neither LogoutRequest nor LogoutResponse",
        )),
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
    let issuer = issuer_of(&xml)?;
    let idp = idps
        .get(&issuer)
        .ok_or_else(|| SloError::Untrusted(format!("unknown issuer {issuer}")))?;
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
    parse_verified(&xml, idp, slo_url)
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
    let issuer = issuer_of(&xml)?;
    let idp = idps
        .get(&issuer)
        .ok_or_else(|| SloError::Untrusted(format!("unknown issuer {issuer}")))?;
    let verified = idp
        .signing_certs
        .iter()
        .any(|cert| Crypto::verify_signed_xml(xml.as_bytes(), cert, Some("ID")).is_ok());
    if !verified || !xml.contains("SignatureValue") {
        return Err(SloError::Untrusted(
            "the message is not signed by the IdP".into(),
        ));
    }
    parse_verified(&xml, idp, slo_url)
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
