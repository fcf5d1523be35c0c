//! The trusted identity providers, from the metadata files of the configuration.
//!
//! An IdP whose metadata has no signing certificate is refused: samael skips signature
//! verification entirely when it has no certificate to verify with (STACK.md §7, gap 1). Only the
//! certificates of the metadata are ever used to verify responses, never a `KeyInfo` sent along.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use policies::{IdpConfig, IdpKind};
use samael::crypto::{CertificateDer, Crypto, CryptoProvider, ReduceMode};
use samael::metadata::EntityDescriptor;

use crate::error::{Error, Result};
use crate::untrusted::{self, is, signs_itself, ALLOWED_ALGORITHMS};

const REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// One trusted IdP.
#[derive(Debug)]
pub struct Idp {
    /// entityID.
    pub entity_id: String,
    /// SPID or CIE rules.
    pub kind: IdpKind,
    /// Name to show citizens (OrganizationDisplayName, Italian first).
    pub display_name: String,
    /// SingleSignOnService, HTTP-Redirect binding.
    pub sso_redirect: Option<String>,
    /// SingleSignOnService, HTTP-POST binding.
    pub sso_post: Option<String>,
    /// SingleLogoutService, HTTP-Redirect binding.
    pub slo_redirect: Option<String>,
    /// SingleLogoutService, HTTP-POST binding.
    pub slo_post: Option<String>,
    /// Certificates that may sign its responses.
    pub signing_certs: Vec<CertificateDer>,
    /// Until when its metadata may be used (`validUntil`); past it the IdP is not offered and
    /// its answers are not accepted.
    pub valid_until: Option<chrono::DateTime<chrono::Utc>>,
    /// The metadata file it was read from.
    pub source: std::path::PathBuf,
    /// Its logo for the choice page (`mdui:Logo` in the IDPSSODescriptor's UIInfo): an https URL
    /// or a `data:image/…;base64` URI, nothing else.
    pub logo: Option<String>,
}

/// Every trusted IdP, in configuration order.
#[derive(Debug, Default)]
pub struct IdpRegistry {
    idps: Vec<Arc<Idp>>,
}

impl IdpRegistry {
    /// Loads every `[[idp]]`, reporting every refused file.
    pub fn load(configs: &[IdpConfig]) -> Result<Self, Vec<Error>> {
        Self::reload(configs, &Self::default()).map(|(registry, _)| registry)
    }

    /// Loads every `[[idp]]` again at a reload. A metadata file that is now refused (expired,
    /// badly signed, unreadable) does not take its IdP away while `previous` holds a version of
    /// it that is still valid: that one keeps serving, and the refusal comes back in the second
    /// list for the log. An IdP that `previous` does not have must load, as at start.
    pub fn reload(
        configs: &[IdpConfig],
        previous: &IdpRegistry,
    ) -> Result<(Self, Vec<Error>), Vec<Error>> {
        let mut idps: Vec<Arc<Idp>> = Vec::new();
        let mut kept = Vec::new();
        let mut errors = Vec::new();
        for c in configs {
            let idp = match load_idp(c) {
                Ok(idp) => Arc::new(idp),
                Err(e) => {
                    let old = previous
                        .idps
                        .iter()
                        .find(|i| i.source == c.metadata && i.kind == c.kind && i.is_valid_now());
                    match old {
                        Some(old) => {
                            kept.push(e);
                            old.clone()
                        }
                        None => {
                            errors.push(e);
                            continue;
                        }
                    }
                }
            };
            if idps.iter().any(|i| i.entity_id == idp.entity_id) {
                errors.push(Error::IdpMetadata {
                    path: c.metadata.clone(),
                    reason: format!(
                        "entityID {} is already configured by another [[idp]]",
                        idp.entity_id
                    ),
                });
            } else {
                idps.push(idp);
            }
        }
        if errors.is_empty() {
            Ok((Self { idps }, kept))
        } else {
            Err(errors)
        }
    }

    /// With the IdPs of the registries' `sets` added after the configured ones. An IdP that a
    /// `[[idp]]` file (or an earlier set) already gives is left out, and logged: what ops
    /// configured by hand wins.
    pub fn with_sets(mut self, sets: &[Arc<set::IdpSet>]) -> Self {
        for set in sets {
            for idp in set.idps() {
                if self.idps.iter().any(|i| i.entity_id == idp.entity_id) {
                    tracing::warn!(idp = %idp.entity_id, "an IdP of a registry is configured already; the configured one serves");
                } else {
                    self.idps.push(idp.clone());
                }
            }
        }
        self
    }

    /// The IdP with this entityID, while its metadata is valid.
    pub fn get(&self, entity_id: &str) -> Option<&Arc<Idp>> {
        self.idps
            .iter()
            .find(|i| i.entity_id == entity_id)
            .filter(|i| i.is_valid_now())
    }

    /// Every IdP whose metadata is valid.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Idp>> {
        self.idps.iter().filter(|i| i.is_valid_now())
    }
}

impl Idp {
    /// Whether its metadata is within its `validUntil`.
    pub fn is_valid_now(&self) -> bool {
        self.valid_until.is_none_or(|t| t > chrono::Utc::now())
    }
}

/// Largest metadata file read (one IdP's EntityDescriptor; logos inline as data: URIs).
const MAX_METADATA: usize = 1024 * 1024;
const NS_METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::IdpMetadata {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn decode_cert(path: &Path, text: &str) -> Result<CertificateDer> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| refuse(path, "a signing certificate is not valid base64"))?;
    openssl::x509::X509::from_der(&der).map_err(|_| {
        refuse(
            path,
            "a signing certificate is not a valid X.509 certificate",
        )
    })?;
    Ok(CertificateDer::from(der))
}

fn load_idp(c: &IdpConfig) -> Result<Idp> {
    let path = &c.metadata;
    let raw = std::fs::read(path).map_err(|e| refuse(path, format!("cannot read: {e}")))?;
    let xml = String::from_utf8(raw).map_err(|_| refuse(path, "the metadata is not UTF-8"))?;
    let doc = untrusted::parse(&xml, MAX_METADATA).map_err(|r| refuse(path, r.reason()))?;
    let root = doc
        .get_root_element()
        .ok_or_else(|| refuse(path, "the metadata is empty"))?;
    if !is(&root, "EntityDescriptor", NS_METADATA) {
        return Err(refuse(
            path,
            "the root element is not one md:EntityDescriptor",
        ));
    }
    // With a federation certificate, only what it signed is read: the signature must cover the
    // root element itself, and the document is reduced to the covered content, so a genuine
    // signed descriptor tucked away in an Extensions element cannot vouch for the root.
    let xml = match &c.federation_cert {
        None => xml,
        Some(fed) => {
            let pem = std::fs::read(fed).map_err(|e| refuse(fed, format!("cannot read: {e}")))?;
            let cert = openssl::x509::X509::from_pem(&pem)
                .map_err(|_| refuse(fed, "not a PEM certificate"))?;
            let der = cert.to_der().map_err(|e| refuse(fed, e.to_string()))?;
            if !signs_itself(&root) {
                return Err(refuse(
                    path,
                    "federation_cert is set but the root EntityDescriptor is not signed",
                ));
            }
            let signed = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
                &xml,
                &[CertificateDer::from(der)],
                ReduceMode::ValidateAndMarkNoAncestors,
                Some(ALLOWED_ALGORITHMS),
            )
            .map_err(|e| {
                refuse(
                    path,
                    format!(
                        "metadata signature does not verify with {} (RSA or ECDSA with SHA-256 or stronger): {e}",
                        fed.display()
                    ),
                )
            })?;
            let signed_doc =
                untrusted::parse(&signed, MAX_METADATA).map_err(|r| refuse(path, r.reason()))?;
            let signed_root = signed_doc
                .get_root_element()
                .ok_or_else(|| refuse(path, "nothing in the metadata is signed"))?;
            if signed_root.get_attribute("ID") != root.get_attribute("ID")
                || !is(&signed_root, "EntityDescriptor", NS_METADATA)
            {
                return Err(refuse(
                    path,
                    "the signed element is not the root EntityDescriptor",
                ));
            }
            signed
        }
    };
    idp_from_xml(&xml, c.kind, path)
}

/// The IdP an `EntityDescriptor` (verified, or trusted as configured) describes; `path` names
/// where it came from (a metadata file, or a registry's cache) in errors and in [`Idp::source`].
pub(crate) fn idp_from_xml(xml: &str, kind: IdpKind, path: &Path) -> Result<Idp> {
    let ed: EntityDescriptor = xml.parse().map_err(|e| {
        refuse(
            path,
            format!("not SAML metadata (one EntityDescriptor): {e}"),
        )
    })?;
    if let Some(until) = ed.valid_until {
        if until <= chrono::Utc::now() {
            return Err(refuse(
                path,
                format!("the metadata expired at {until} (validUntil): fetch a fresh copy"),
            ));
        }
    }
    let entity_id = ed
        .entity_id
        .clone()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| refuse(path, "EntityDescriptor has no entityID"))?;
    let idp = ed
        .idp_sso_descriptors
        .as_ref()
        .and_then(|d| d.first())
        .ok_or_else(|| {
            refuse(
                path,
                "no IDPSSODescriptor: this is not an identity provider",
            )
        })?;
    let mut signing_certs = Vec::new();
    for kd in idp
        .key_descriptors
        .iter()
        .filter(|k| k.key_use.as_deref().is_none_or(|u| u == "signing"))
    {
        if let Some(x509) = &kd.key_info.x509_data {
            for cert in &x509.certificates {
                signing_certs.push(decode_cert(path, cert)?);
            }
        }
    }
    if signing_certs.is_empty() {
        return Err(refuse(
            path,
            "the IdP metadata has no signing certificate, so its responses could not be verified",
        ));
    }
    let endpoint = |list: &[samael::metadata::Endpoint], binding: &str| {
        list.iter()
            .find(|e| e.binding == binding)
            .map(|e| e.location.clone())
    };
    let sso_redirect = endpoint(&idp.single_sign_on_services, REDIRECT);
    let sso_post = endpoint(&idp.single_sign_on_services, POST);
    let slo_redirect = endpoint(&idp.single_logout_services, REDIRECT);
    let slo_post = endpoint(&idp.single_logout_services, POST);
    for location in [&sso_redirect, &sso_post, &slo_redirect, &slo_post]
        .into_iter()
        .flatten()
    {
        check_endpoint(path, location)?;
    }
    if sso_redirect.is_none() && sso_post.is_none() {
        return Err(refuse(
            path,
            "no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding",
        ));
    }
    let names = ed
        .organization
        .as_ref()
        .and_then(|o| {
            o.organization_display_names
                .clone()
                .or_else(|| o.organization_names.clone())
        })
        .unwrap_or_default();
    let display_name = names
        .iter()
        .find(|n| n.lang.as_deref() == Some("it"))
        .or_else(|| names.first())
        .map(|n| n.value.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| entity_id.clone());
    Ok(Idp {
        entity_id,
        kind,
        display_name,
        sso_redirect,
        sso_post,
        slo_redirect,
        slo_post,
        signing_certs,
        valid_until: ed.valid_until,
        source: path.to_path_buf(),
        logo: logo_of(xml),
    })
}

/// Citizens' browsers carry SAML messages to these endpoints: https, or plain http on loopback
/// only (the DEMO IdP of `varco demo`, test IdPs on a developer's machine).
fn check_endpoint(path: &std::path::Path, location: &str) -> Result<()> {
    let url = url::Url::parse(location)
        .map_err(|e| refuse(path, format!("endpoint {location} is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(refuse(
            path,
            format!("endpoint {location} must be https (plain http only on loopback)"),
        )),
    }
}

const NS_MDUI: &str = "urn:oasis:names:tc:SAML:metadata:ui";
/// Largest logo accepted (a data: URI is inlined in every choice page).
const MAX_LOGO: usize = 32 * 1024;

/// The first acceptable `mdui:Logo` of the IdP role, if any. A logo is decoration: one that is
/// missing, too large or of another scheme is skipped, never an error.
fn logo_of(xml: &str) -> Option<String> {
    fn walk(n: &libxml::tree::Node, out: &mut Vec<String>) {
        let is_logo =
            n.get_name() == "Logo" && n.get_namespace().is_some_and(|ns| ns.get_href() == NS_MDUI);
        if is_logo {
            out.push(n.get_content().trim().to_string());
        }
        for c in n.get_child_elements() {
            walk(&c, out);
        }
    }
    let doc = untrusted::parse(xml, MAX_METADATA).ok()?;
    let root = doc.get_root_element()?;
    let idp = root
        .get_child_elements()
        .into_iter()
        .find(|c| c.get_name() == "IDPSSODescriptor")?;
    let mut found = Vec::new();
    walk(&idp, &mut found);
    found.into_iter().find(|l| acceptable_logo(l))
}

fn acceptable_logo(l: &str) -> bool {
    let safe_chars = l
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'<' | b'>' | b'\\'));
    // Plain http only on loopback, as for endpoints (tests, a local mirror).
    let loopback_http = l.starts_with("http://")
        && url::Url::parse(l).ok().is_some_and(|u| {
            u.host_str().is_some_and(|h| {
                policies::is_loopback_host(h.trim_start_matches('[').trim_end_matches(']'))
            })
        });
    let scheme_ok = l.starts_with("https://")
        || loopback_http
        || [
            "data:image/png;base64,",
            "data:image/svg+xml;base64,",
            "data:image/jpeg;base64,",
        ]
        .iter()
        .any(|p| l.starts_with(p));
    !l.is_empty() && l.len() <= MAX_LOGO && safe_chars && scheme_ok
}

pub(crate) mod set;
#[cfg(test)]
mod tests;
