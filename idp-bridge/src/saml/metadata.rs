//! The SP metadata, signed: the SPID profile of Avviso 29 v3 (public SP) and the CIE profile,
//! for the SP of `[sp]` and, in aggregator mode, for each comune as an aggregated SP (Avviso 19
//! v4, `pub-ag-full`: the aggregator's and the aggregated `ContactPerson`, AGGREGATOR.md §2).
//!
//! Both list one AttributeConsumingService per declared `[[sp.attribute_set]]`, with the declared
//! index: the sets are registered with AgID (and the CIE federation) together with the metadata,
//! so they are configuration, not something derived from the services. The CIE variant keeps
//! only the attributes CIE releases and drops a set left empty by that.

use std::fmt::Write;

use policies::{Audience, Comune, Config};
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

/// One SP entity's endpoints, all under the portal's public URL: `/.sso/acs` and `/.sso/slo`
/// for the SP of `[sp]`, `/.sso/acs/<ipa_code>` and `/.sso/slo/<ipa_code>` for a comune.
#[derive(Debug, Clone)]
pub struct SpEndpoints {
    /// AssertionConsumerService (HTTP-POST), index 0.
    pub acs: String,
    /// SingleLogoutService (both bindings).
    pub slo: String,
}

impl SpEndpoints {
    /// The endpoints of `audience`'s entity.
    pub fn of(config: &Config, audience: &Audience) -> Self {
        let base = config.server.public_url.url.as_str().trim_end_matches('/');
        let suffix = audience.path_suffix();
        Self {
            acs: format!("{base}/.sso/acs{suffix}"),
            slo: format!("{base}/.sso/slo{suffix}"),
        }
    }
}

/// Whose metadata: the SP of `[sp]`, or a comune as an aggregated SP (aggregator mode).
#[derive(Debug, Clone, Copy)]
pub enum MetadataOf<'a> {
    /// The SP of `[sp]` (in aggregator mode, the aggregator's own).
    Sp,
    /// A comune, aggregated.
    Comune(&'a Comune),
}

/// A fresh metadata `ID`: an NCName.
fn metadata_id(entity_id: &str, profile: Profile) -> String {
    // Stable per entity and profile, so that the document only changes when the configuration
    // does (AgID registers it; a new ID at every start would make identical files differ).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in entity_id.bytes().chain([profile as u8]) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("_md{h:016x}")
}

/// A comune's `OrganizationURL`: its first service's host, with the portal's scheme and port
/// (the public URL when it has no service).
fn comune_url(config: &Config, comune: &Comune) -> String {
    let public = &config.server.public_url.url;
    match comune.services.first() {
        Some(s) => {
            let port = public.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}/", public.scheme(), s.route.host)
        }
        None => public.as_str().to_string(),
    }
}

/// The unsigned document, with an empty signature template as the first child. A comune's
/// metadata exists in aggregator mode only: `None` otherwise.
pub fn unsigned_metadata(
    config: &Config,
    keys: &SpKeys,
    profile: Profile,
    of: MetadataOf<'_>,
) -> Option<String> {
    let sp = &config.sp;
    let (audience, aggregated) = match of {
        MetadataOf::Sp => (Audience::Sp, None),
        MetadataOf::Comune(c) => (
            Audience::Comune(c.ipa_code.clone()),
            Some((sp.mode.aggregator()?, c)),
        ),
    };
    let entity_id = config.entity_id(&audience);
    let ep = SpEndpoints::of(config, &audience);
    let id = metadata_id(&entity_id, profile);
    let mut x = String::with_capacity(8 * 1024);
    let ns_ext = match profile {
        Profile::Spid => "xmlns:spid=\"https://spid.gov.it/saml-extensions\"",
        Profile::Cie => "xmlns:cie=\"https://www.cartaidentita.interno.gov.it/saml-extensions\"",
    };
    let _ = write!(
        x,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" {ns_ext} entityID=\"{entity}\" ID=\"{id}\">",
        entity = escape(&entity_id),
    );
    x.push_str(&signature_template(&id, keys.cert_b64()));
    let _ = write!(
        x,
        "<md:SPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\" AuthnRequestsSigned=\"true\" WantAssertionsSigned=\"true\">\
{keys}\
<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"{slo}\"/>\
<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"{slo}\"/>\
<md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:transient</md:NameIDFormat>\
<md:AssertionConsumerService index=\"0\" isDefault=\"true\" Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"{acs}\"/>",
        keys = keys
            .published_certs_b64()
            .map(|c| format!("<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{c}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"))
            .collect::<String>(),
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
    let (org_name, org_display, org_url) = match aggregated {
        None => (
            sp.organization.name.clone(),
            sp.organization.display_name.clone(),
            sp.organization.url.clone(),
        ),
        Some((_, c)) => (c.name.clone(), c.name.clone(), comune_url(config, c)),
    };
    let _ = write!(
        x,
        "</md:SPSSODescriptor><md:Organization>\
<md:OrganizationName xml:lang=\"it\">{}</md:OrganizationName>\
<md:OrganizationDisplayName xml:lang=\"it\">{}</md:OrganizationDisplayName>\
<md:OrganizationURL xml:lang=\"it\">{}</md:OrganizationURL></md:Organization>",
        escape(&org_name),
        escape(&org_display),
        escape(&org_url)
    );
    let c = &sp.contact;
    match (profile, aggregated) {
        (Profile::Spid, None) => {
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
        (Profile::Spid, Some((a, comune))) => {
            // spid.xsd order: IPACode, VATNumber, FiscalCode, then the activity.
            x.push_str("<md:ContactPerson contactType=\"other\" spid:entityType=\"spid:aggregator\"><md:Extensions>");
            for (element, value) in [
                ("IPACode", &a.ipa_code),
                ("VATNumber", &a.vat_number),
                ("FiscalCode", &a.fiscal_code),
            ] {
                if let Some(v) = value {
                    let _ = write!(x, "<spid:{element}>{}</spid:{element}>", escape(v));
                }
            }
            let _ = write!(
                x,
                "<spid:PublicServicesFullAggregator/></md:Extensions><md:Company>{}</md:Company><md:EmailAddress>{}</md:EmailAddress>",
                escape(&a.company),
                escape(&a.email)
            );
            if let Some(phone) = &a.phone {
                let _ = write!(
                    x,
                    "<md:TelephoneNumber>{}</md:TelephoneNumber>",
                    escape(phone)
                );
            }
            // The aggregated body's Company must be its OrganizationName (spid-sp-test 01.17.05).
            let _ = write!(
                x,
                "</md:ContactPerson><md:ContactPerson contactType=\"other\" spid:entityType=\"spid:aggregated\"><md:Extensions>\
<spid:IPACode>{ipa}</spid:IPACode><spid:Public/></md:Extensions><md:Company>{company}</md:Company></md:ContactPerson>",
                ipa = escape(comune.ipa_code.as_str()),
                company = escape(&org_name),
            );
        }
        (Profile::Cie, aggregated) => {
            let public = if c.public || aggregated.is_some() {
                "<cie:Public/>"
            } else {
                "<cie:Private/>"
            };
            let (ipa, municipality, email) = match aggregated {
                None => (
                    c.ipa_code.as_str(),
                    c.municipality.as_str(),
                    c.email.as_str(),
                ),
                Some((a, comune)) => (
                    comune.ipa_code.as_str(),
                    comune.istat_code.as_str(),
                    a.email.as_str(),
                ),
            };
            let _ = write!(
                x,
                "<md:ContactPerson contactType=\"administrative\"><md:Extensions>{public}<cie:IPACode>{ipa}</cie:IPACode>\
<cie:Municipality>{municipality}</cie:Municipality></md:Extensions>\
<md:Company>{company}</md:Company><md:EmailAddress>{email}</md:EmailAddress></md:ContactPerson>",
                ipa = escape(ipa),
                municipality = escape(municipality),
                company = escape(&org_name),
                email = escape(email),
            );
        }
    }
    x.push_str("</md:EntityDescriptor>");
    Some(x)
}

/// The signed metadata document for `profile` of `of`; `None` for a comune outside aggregator
/// mode.
pub fn signed_metadata(
    config: &Config,
    keys: &SpKeys,
    profile: Profile,
    of: MetadataOf<'_>,
) -> Result<Option<String>> {
    let Some(unsigned) = unsigned_metadata(config, keys, profile, of) else {
        return Ok(None);
    };
    Crypto::sign_xml(unsigned.as_bytes(), keys.key_der())
        .map(Some)
        .map_err(|e| Error::Sign {
            what: "SP metadata",
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests;
