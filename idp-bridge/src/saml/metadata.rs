//! The SP metadata, signed: the SPID profile of Avviso 29 v3 (public SP) and the CIE profile.
//!
//! Both list one AttributeConsumingService per declared `[[sp.attribute_set]]`, with the declared
//! index: the sets are registered with AgID (and the CIE federation) together with the metadata,
//! so they are configuration, not something derived from the services. The CIE variant keeps
//! only the attributes CIE releases and drops a set left empty by that.

use std::fmt::Write;

use policies::{Config, SpConfig};
use samael::crypto::{Crypto, CryptoProvider};

use crate::error::{Error, Result};
use crate::keys::SpKeys;
use crate::xml::{escape, signature_template};

/// Which federation a metadata document is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// SPID, public SP (Avviso 29 v3).
    Spid,
    /// CIE ("Entra con CIE").
    Cie,
}

/// The SP endpoints, all under the portal's public URL.
#[derive(Debug, Clone)]
pub struct SpEndpoints {
    /// AssertionConsumerService (HTTP-POST), index 0.
    pub acs: String,
    /// SingleLogoutService (both bindings).
    pub slo: String,
}

impl SpEndpoints {
    /// The endpoints for a configuration.
    pub fn of(config: &Config) -> Self {
        let base = config.server.public_url.url.as_str().trim_end_matches('/');
        Self {
            acs: format!("{base}/.sso/acs"),
            slo: format!("{base}/.sso/slo"),
        }
    }
}

/// A fresh metadata `ID`: an NCName.
fn metadata_id(sp: &SpConfig, profile: Profile) -> String {
    // Stable per entity and profile, so that the document only changes when the configuration
    // does (AgID registers it; a new ID at every start would make identical files differ).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sp.entity_id.bytes().chain([profile as u8]) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("_md{h:016x}")
}

/// The unsigned document, with an empty signature template as the first child.
pub fn unsigned_metadata(config: &Config, keys: &SpKeys, profile: Profile) -> String {
    let sp = &config.sp;
    let ep = SpEndpoints::of(config);
    let id = metadata_id(sp, profile);
    let mut x = String::with_capacity(8 * 1024);
    let ns_ext = match profile {
        Profile::Spid => "xmlns:spid=\"https://spid.gov.it/saml-extensions\"",
        Profile::Cie => "xmlns:cie=\"https://www.cartaidentita.interno.gov.it/saml-extensions\"",
    };
    let _ = write!(
        x,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" {ns_ext} entityID=\"{entity}\" ID=\"{id}\">",
        entity = escape(&sp.entity_id),
    );
    x.push_str(&signature_template(&id, keys.cert_b64()));
    let _ = write!(
        x,
        "<md:SPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\" AuthnRequestsSigned=\"true\" WantAssertionsSigned=\"true\">\
<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\
<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"{slo}\"/>\
<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"{slo}\"/>\
<md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:transient</md:NameIDFormat>\
<md:AssertionConsumerService index=\"0\" isDefault=\"true\" Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"{acs}\"/>",
        cert = keys.cert_b64(),
        slo = escape(&ep.slo),
        acs = escape(&ep.acs),
    );
    for set in &sp.attribute_sets {
        let attrs: Vec<_> = set
            .attributes
            .iter()
            .filter(|a| profile == Profile::Spid || a.in_cie())
            .collect();
        if attrs.is_empty() {
            continue;
        }
        let _ = write!(
            x,
            "<md:AttributeConsumingService index=\"{}\"><md:ServiceName xml:lang=\"it\">{}</md:ServiceName>",
            set.index,
            escape(&set.name)
        );
        for a in attrs {
            let _ = write!(x, "<md:RequestedAttribute Name=\"{a}\" NameFormat=\"urn:oasis:names:tc:SAML:2.0:attrname-format:basic\"/>");
        }
        x.push_str("</md:AttributeConsumingService>");
    }
    let org = &sp.organization;
    let _ = write!(
        x,
        "</md:SPSSODescriptor><md:Organization>\
<md:OrganizationName xml:lang=\"it\">{}</md:OrganizationName>\
<md:OrganizationDisplayName xml:lang=\"it\">{}</md:OrganizationDisplayName>\
<md:OrganizationURL xml:lang=\"it\">{}</md:OrganizationURL></md:Organization>",
        escape(&org.name),
        escape(&org.display_name),
        escape(&org.url)
    );
    let c = &sp.contact;
    match profile {
        Profile::Spid => {
            let public = if c.public {
                "<spid:Public/>"
            } else {
                "<spid:Private/>"
            };
            let _ = write!(
                x,
                "<md:ContactPerson contactType=\"other\"><md:Extensions><spid:IPACode>{ipa}</spid:IPACode>{public}</md:Extensions>\
<md:EmailAddress>{email}</md:EmailAddress></md:ContactPerson>",
                ipa = escape(&c.ipa_code),
                email = escape(&c.email),
            );
        }
        Profile::Cie => {
            let public = if c.public {
                "<cie:Public/>"
            } else {
                "<cie:Private/>"
            };
            let _ = write!(
                x,
                "<md:ContactPerson contactType=\"administrative\"><md:Extensions>{public}<cie:IPACode>{ipa}</cie:IPACode>\
<cie:Municipality>{municipality}</cie:Municipality></md:Extensions>\
<md:Company>{company}</md:Company><md:EmailAddress>{email}</md:EmailAddress></md:ContactPerson>",
                ipa = escape(&c.ipa_code),
                municipality = escape(&c.municipality),
                company = escape(&org.name),
                email = escape(&c.email),
            );
        }
    }
    x.push_str("</md:EntityDescriptor>");
    x
}

/// The signed metadata document for `profile`.
pub fn signed_metadata(config: &Config, keys: &SpKeys, profile: Profile) -> Result<String> {
    let unsigned = unsigned_metadata(config, keys, profile);
    Crypto::sign_xml(unsigned.as_bytes(), keys.key_der()).map_err(|e| Error::Sign {
        what: "SP metadata",
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
