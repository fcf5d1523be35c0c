//! Outgoing SAML AuthnRequests, HTTP-Redirect binding (SPID-CIE.md §4.2).
//!
//! The request is written as text (samael's builder gives a 32-bit ID and `AllowCreate`), raw
//! DEFLATE-compressed, base64-encoded, and signed over the exact query string
//! `SAMLRequest=…&RelayState=…&SigAlg=…` with RSA-SHA256, every value form-urlencoded as the IdPs
//! (and spid-sp-test, with Python's `quote_plus`) re-encode it.

use std::fmt::Write as _;
use std::io::Write as _;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use openssl::hash::MessageDigest;
use openssl::sign::Signer;
use policies::{IdpKind, Level};
use samael::crypto::CryptoProvider as _;

use crate::error::{Error, Result};
use crate::keys::SpKeys;
use crate::registry::Idp;
use crate::secret::{random_token, RelayState};
use crate::xml::escape;

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// What the SP asks for in one login.
#[derive(Debug, Clone)]
pub(crate) struct LoginRequest<'a> {
    /// The IdP to send the citizen to.
    pub(crate) idp: &'a Idp,
    /// The level asked for (`Comparison="minimum"`).
    pub(crate) level: Level,
    /// The declared attribute set (`AttributeConsumingServiceIndex`).
    pub(crate) attribute_set: u16,
}

/// A signed request ready to send, with what the ACS must check the answer against.
#[derive(Debug, Clone)]
pub(crate) struct OutgoingRequest {
    /// `ID` of the AuthnRequest (`InResponseTo` of the answer).
    pub(crate) id: String,
    /// `IssueInstant`; the response may not be older.
    pub(crate) issue_instant: DateTime<Utc>,
    /// Where to redirect the browser (IdP SSO location with the signed query).
    pub(crate) redirect_url: String,
    /// The opaque RelayState sent along.
    pub(crate) relay_state: RelayState,
    /// The AuthnRequest XML, for the audit trail.
    pub(crate) xml: String,
}

/// A fresh request ID: `_` and 32 hex digits (128 random bits), an NCName as SAML requires.
pub(crate) fn new_request_id() -> String {
    format!("_{}", random_token(16, false))
}

/// Writes the AuthnRequest XML.
pub(crate) fn authn_request_xml(
    entity_id: &str,
    id: &str,
    issue_instant: &DateTime<Utc>,
    destination: &str,
    req: &LoginRequest<'_>,
    force_authn: bool,
) -> String {
    let mut x = String::with_capacity(1024);
    let force = if force_authn {
        " ForceAuthn=\"true\""
    } else {
        ""
    };
    let _ = write!(
        x,
        "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" \
ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{instant}\" Destination=\"{dest}\"{force} \
AssertionConsumerServiceIndex=\"0\" AttributeConsumingServiceIndex=\"{set}\">\
<saml:Issuer Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:entity\" NameQualifier=\"{entity}\">{entity}</saml:Issuer>\
<samlp:NameIDPolicy Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:transient\"/>\
<samlp:RequestedAuthnContext Comparison=\"minimum\"><saml:AuthnContextClassRef>{class}</saml:AuthnContextClassRef></samlp:RequestedAuthnContext>\
</samlp:AuthnRequest>",
        instant = issue_instant.to_rfc3339_opts(SecondsFormat::Millis, true),
        dest = escape(destination),
        set = req.attribute_set,
        entity = escape(entity_id),
        class = req.level.class_ref(),
    );
    x
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Builds and signs a login for the HTTP-Redirect binding.
pub(crate) fn redirect_request(
    entity_id: &str,
    keys: &SpKeys,
    req: &LoginRequest<'_>,
) -> Result<OutgoingRequest> {
    let destination = req.idp.sso_redirect.as_deref().ok_or(Error::Binding {
        idp: req.idp.entity_id.clone(),
        binding: "HTTP-Redirect",
    })?;
    let id = new_request_id();
    let issue_instant = Utc::now();
    // SPID: ForceAuthn for levels 2 and 3; CIE: always.
    let force_authn = req.level >= Level::SpidL2 || req.idp.kind == IdpKind::Cie;
    let xml = authn_request_xml(
        entity_id,
        &id,
        &issue_instant,
        destination,
        req,
        force_authn,
    );

    let relay_state = RelayState::new();
    let redirect_url = signed_redirect(
        keys,
        destination,
        "SAMLRequest",
        &xml,
        Some(relay_state.secret()),
    )?;
    Ok(OutgoingRequest {
        id,
        issue_instant,
        redirect_url,
        relay_state,
        xml,
    })
}

/// A signed request for the HTTP-POST binding: the browser posts it with an auto-submitting form.
#[derive(Debug, Clone)]
pub(crate) struct OutgoingPost {
    /// `ID` of the AuthnRequest.
    pub(crate) id: String,
    /// Its `IssueInstant`.
    pub(crate) issue_instant: DateTime<Utc>,
    /// The IdP's HTTP-POST SingleSignOnService.
    pub(crate) action: String,
    /// `SAMLRequest` form value: the signed XML, base64.
    pub(crate) saml_request: String,
    /// The opaque RelayState.
    pub(crate) relay_state: RelayState,
    /// The signed XML, for the audit trail.
    pub(crate) xml: String,
}

/// Builds and signs (enveloped signature, after the Issuer) a login for the HTTP-POST binding.
pub(crate) fn post_request(
    entity_id: &str,
    keys: &SpKeys,
    req: &LoginRequest<'_>,
) -> Result<OutgoingPost> {
    let action = req.idp.sso_post.as_deref().ok_or(Error::Binding {
        idp: req.idp.entity_id.clone(),
        binding: "HTTP-POST",
    })?;
    let id = new_request_id();
    let issue_instant = Utc::now();
    let force_authn = req.level >= Level::SpidL2 || req.idp.kind == IdpKind::Cie;
    let unsigned = authn_request_xml(entity_id, &id, &issue_instant, action, req, force_authn);
    // The signature goes right after the Issuer (SAML schema order).
    let template = crate::xml::signature_template(&id, keys.cert_b64());
    let with_template =
        unsigned.replacen("</saml:Issuer>", &format!("</saml:Issuer>{template}"), 1);
    let xml = samael::crypto::Crypto::sign_xml(with_template.as_bytes(), keys.key_der()).map_err(
        |e| Error::Sign {
            what: "AuthnRequest",
            reason: e.to_string(),
        },
    )?;
    let saml_request = base64::engine::general_purpose::STANDARD.encode(xml.as_bytes());
    Ok(OutgoingPost {
        id,
        issue_instant,
        action: action.to_string(),
        saml_request,
        relay_state: RelayState::new(),
        xml,
    })
}

/// The HTTP-Redirect binding of a SAML message: `destination?PARAM=…[&RelayState=…]&SigAlg=…&Signature=…`,
/// the message raw-DEFLATEd and base64-encoded, the signature over the query as sent.
pub(crate) fn signed_redirect(
    keys: &SpKeys,
    destination: &str,
    param: &str,
    xml: &str,
    relay_state: Option<&str>,
) -> Result<String> {
    let fail = |e: std::io::Error| Error::Sign {
        what: "SAML message",
        reason: e.to_string(),
    };
    let mut deflater =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflater.write_all(xml.as_bytes()).map_err(fail)?;
    let deflated = deflater.finish().map_err(fail)?;
    let message = base64::engine::general_purpose::STANDARD.encode(deflated);
    let mut signed_part = format!("{param}={}", form_encode(&message));
    if let Some(rs) = relay_state {
        signed_part.push_str("&RelayState=");
        signed_part.push_str(&form_encode(rs));
    }
    signed_part.push_str("&SigAlg=");
    signed_part.push_str(&form_encode(RSA_SHA256));
    let signature = sign_sha256(keys, signed_part.as_bytes())?;
    let sep = if destination.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{destination}{sep}{signed_part}&Signature={}",
        form_encode(&signature)
    ))
}

/// Base64 RSA-SHA256 signature of `data` with the SP key.
pub(crate) fn sign_sha256(keys: &SpKeys, data: &[u8]) -> Result<String> {
    let err = |e: openssl::error::ErrorStack| Error::Sign {
        what: "redirect query",
        reason: e.to_string(),
    };
    let mut signer = Signer::new(MessageDigest::sha256(), keys.key()).map_err(err)?;
    signer.update(data).map_err(err)?;
    let sig = signer.sign_to_vec().map_err(err)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(sig))
}

#[cfg(test)]
mod tests;
