//! A set of IdPs from a federation's registry (`[[idp_source]]`): one `md:EntitiesDescriptor`,
//! signed on its root by the federation's operator (AgID for SPID), listing every IdP.
//!
//! The root's own enveloped signature is the only one that counts: it must be the root's first
//! child, reference the root by its (unique) `ID`, use RSA or ECDSA with SHA-256 or stronger,
//! and verify with the configured federation certificate. It then covers the whole document, so
//! each `EntityDescriptor` in it is read as it is; signatures an IdP put on its own descriptor
//! are content like any other (they are not what varco trusts). A set without `validUntil` (AgID's
//! carries none) is used for `max_age` after it was fetched; a set past its validity serves no
//! IdP.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use libxml::tree::{Document, Node};
use policies::IdpKind;
use samael::crypto::{CertificateDer, Crypto, CryptoProvider};

use super::{idp_from_xml, Idp};
use crate::error::{Error, Result};
use crate::untrusted::{self, is, ALLOWED_ALGORITHMS};

/// The largest registry document read (AgID's, with inline logos, is a few hundred KiB).
pub const MAX_SET: usize = 16 * 1024 * 1024;

const NS_METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const DIGESTS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];

/// A verified set of IdPs.
#[derive(Debug)]
pub struct IdpSet {
    idps: Vec<Arc<Idp>>,
    valid_until: DateTime<Utc>,
    fetched_at: DateTime<Utc>,
    skipped: Vec<String>,
}

/// Where a set comes from, and how it is checked.
#[derive(Debug, Clone, Copy)]
pub struct SetRules<'a> {
    /// The registry's URL, for messages.
    pub source: &'a str,
    /// The federation's metadata-signing certificate (PEM file).
    pub federation_cert: &'a Path,
    /// The rules its IdPs follow.
    pub kind: IdpKind,
    /// Where its last good copy lives (each IdP's [`Idp::source`]).
    pub cache: &'a Path,
    /// How long a set without `validUntil` may serve after it was fetched.
    pub max_age: Duration,
}

fn refuse(rules: &SetRules<'_>, reason: impl Into<String>) -> Error {
    Error::IdpSource {
        url: rules.source.to_string(),
        reason: reason.into(),
    }
}

impl IdpSet {
    /// Verifies a registry document fetched (or cached) at `fetched_at`.
    pub fn verify(bytes: &[u8], rules: &SetRules<'_>, fetched_at: DateTime<Utc>) -> Result<Self> {
        if bytes.len() > MAX_SET {
            return Err(refuse(rules, format!("larger than {} MiB", MAX_SET >> 20)));
        }
        let xml = std::str::from_utf8(bytes).map_err(|_| refuse(rules, "not UTF-8"))?;
        let pem = std::fs::read(rules.federation_cert).map_err(|e| {
            refuse(
                rules,
                format!("cannot read {}: {e}", rules.federation_cert.display()),
            )
        })?;
        let cert = openssl::x509::X509::from_pem(&pem)
            .and_then(|c| c.to_der())
            .map_err(|_| {
                refuse(
                    rules,
                    format!(
                        "{} is not a PEM certificate",
                        rules.federation_cert.display()
                    ),
                )
            })?;
        let doc = untrusted::parse(xml, MAX_SET).map_err(|r| refuse(rules, r.reason()))?;
        let root = doc
            .get_root_element()
            .ok_or_else(|| refuse(rules, "the document is empty"))?;
        if !is(&root, "EntitiesDescriptor", NS_METADATA) {
            return Err(refuse(
                rules,
                "the root element is not md:EntitiesDescriptor",
            ));
        }
        check_root_signature(&root, rules)?;
        Crypto::verify_signed_xml(xml.as_bytes(), &CertificateDer::from(cert), Some("ID"))
            .map_err(|e| {
                refuse(
                    rules,
                    format!(
                        "the signature does not verify with {}: {e}",
                        rules.federation_cert.display()
                    ),
                )
            })?;

        // Everything under the root is signed now.
        let now = Utc::now();
        let valid_until = match root.get_attribute("validUntil") {
            Some(v) => DateTime::parse_from_rfc3339(&v)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| refuse(rules, format!("validUntil is not an instant: {v}")))?,
            None => {
                fetched_at
                    + chrono::Duration::from_std(rules.max_age).unwrap_or(chrono::Duration::days(7))
            }
        };
        if valid_until <= now {
            return Err(refuse(
                rules,
                format!("the set expired at {valid_until} (validUntil, or fetched more than max_age ago)"),
            ));
        }
        let mut idps: Vec<Arc<Idp>> = Vec::new();
        let mut skipped = Vec::new();
        for mut entity in root.get_child_elements() {
            if is(&entity, "Signature", NS_DSIG) || entity.get_name() == "Extensions" {
                continue;
            }
            let label = entity
                .get_attribute("entityID")
                .unwrap_or_else(|| format!("<{}>", entity.get_name()));
            if !is(&entity, "EntityDescriptor", NS_METADATA) {
                skipped.push(format!("{label}: not an md:EntityDescriptor"));
                continue;
            }
            let Some(standalone) = standalone(&mut entity) else {
                skipped.push(format!("{label}: cannot be read on its own"));
                continue;
            };
            match idp_from_xml(&standalone, rules.kind, rules.cache) {
                Ok(mut idp) if idps.iter().all(|i| i.entity_id != idp.entity_id) => {
                    idp.valid_until =
                        Some(idp.valid_until.map_or(valid_until, |v| v.min(valid_until)));
                    idps.push(Arc::new(idp));
                }
                Ok(idp) => skipped.push(format!("{}: listed twice", idp.entity_id)),
                Err(e) => skipped.push(format!("{label}: {}", reason_of(e))),
            }
        }
        if idps.is_empty() {
            return Err(refuse(
                rules,
                format!("the set lists no usable IdP ({})", skipped.join("; ")),
            ));
        }
        Ok(Self {
            idps,
            valid_until,
            fetched_at,
            skipped,
        })
    }

    /// Its IdPs.
    pub fn idps(&self) -> &[Arc<Idp>] {
        &self.idps
    }

    /// Until when it serves.
    pub fn valid_until(&self) -> DateTime<Utc> {
        self.valid_until
    }

    /// When it was fetched.
    pub fn fetched_at(&self) -> DateTime<Utc> {
        self.fetched_at
    }

    /// Whether it may serve now.
    pub fn is_valid_now(&self) -> bool {
        self.valid_until > Utc::now()
    }

    /// The entries that were not loaded, each with why (for the log).
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }
}

fn reason_of(e: Error) -> String {
    match e {
        Error::IdpMetadata { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// The root's signature is its first child, references the root alone by its unique `ID`, and
/// uses an allowed algorithm. xmlsec verifies the first signature of the document: this makes it
/// the root's.
fn check_root_signature(root: &Node, rules: &SetRules<'_>) -> Result<()> {
    let id = root
        .get_attribute("ID")
        .filter(|i| !i.is_empty())
        .ok_or_else(|| refuse(rules, "the root has no ID, so it cannot be signed"))?;
    let sig = root
        .get_first_element_child()
        .filter(|c| is(c, "Signature", NS_DSIG))
        .ok_or_else(|| {
            refuse(
                rules,
                "the root is not signed (ds:Signature must be its first child)",
            )
        })?;
    let mut same_id = 0usize;
    let mut stack = vec![root.clone()];
    while let Some(n) = stack.pop() {
        if n.get_attribute("ID").as_deref() == Some(id.as_str()) {
            same_id += 1;
        }
        stack.extend(n.get_child_elements());
    }
    if same_id != 1 {
        return Err(refuse(rules, format!("the ID {id} is not unique")));
    }
    let signed_info = untrusted::one_of(&sig, "SignedInfo", NS_DSIG)
        .map_err(|_| refuse(rules, "the root's signature has no single SignedInfo"))?;
    let method = untrusted::one_of(&signed_info, "SignatureMethod", NS_DSIG)
        .ok()
        .and_then(|m| m.get_attribute("Algorithm"))
        .unwrap_or_default();
    if !ALLOWED_ALGORITHMS
        .iter()
        .any(|a| a.signature_uri() == method)
    {
        return Err(refuse(
            rules,
            format!("signature algorithm {method:?} is not allowed (RSA or ECDSA with SHA-256 or stronger)"),
        ));
    }
    let references = untrusted::children(&signed_info, "Reference", NS_DSIG);
    let [reference] = references.as_slice() else {
        return Err(refuse(
            rules,
            "the root's signature must have exactly one Reference",
        ));
    };
    if reference.get_attribute("URI").as_deref() != Some(format!("#{id}").as_str()) {
        return Err(refuse(
            rules,
            "the root's signature does not reference the root",
        ));
    }
    let digest = untrusted::one_of(reference, "DigestMethod", NS_DSIG)
        .ok()
        .and_then(|d| d.get_attribute("Algorithm"))
        .unwrap_or_default();
    if !DIGESTS.contains(&digest.as_str()) {
        return Err(refuse(
            rules,
            format!("digest algorithm {digest:?} is not allowed (SHA-256 or stronger)"),
        ));
    }
    Ok(())
}

/// One entity of the set as a document of its own, with the namespaces its ancestors declared
/// (libxml declares them on the copy). The entity leaves the set's document.
fn standalone(entity: &mut Node) -> Option<String> {
    entity.unlink();
    let mut doc = Document::new().ok()?;
    let copy = doc.import_node(entity).ok()?;
    doc.set_root_element(&copy);
    Some(doc.to_string())
}

#[cfg(test)]
mod tests;
