//! `[sp]`: the SAML Service Provider's identity, keys, organisation and contacts, its audit trail,
//! and the attribute sets it registered with the federations.

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::{duration, existing_file, IdpKind};
use crate::codes::{check_ipa_code, check_istat_code};
use crate::identity::{Attribute, AttributeMask};
use crate::reader::{nearest, At, Sink, TableReader};

/// `[sp]`: the SAML Service Provider.
#[derive(Debug, Clone)]
pub struct SpConfig {
    /// entityID.
    pub entity_id: String,
    /// PEM private key file.
    pub key: PathBuf,
    /// PEM certificate file.
    pub cert: PathBuf,
    /// The certificate of the next key, published beside `cert` during a rotation.
    pub next_cert: Option<PathBuf>,
    /// Metadata `Organization`.
    pub organization: Organization,
    /// Metadata `ContactPerson`.
    pub contact: Contact,
    /// The registered AttributeConsumingService entries, by index.
    pub attribute_sets: Vec<AttributeSet>,
    /// The append-only, hash-chained record of every AuthnRequest and Response (SPID requires
    /// SPs to keep them). Default `audit/saml-audit.log` next to the configuration.
    pub audit_log: PathBuf,
    /// The key of the audit trail's MACs (a file of at least 32 random bytes), so that whoever
    /// can write the trail cannot rewrite it.
    pub audit_key: PathBuf,
    /// Rotate the audit file past this size (`audit_rotate_mib`, default 64 MiB).
    pub audit_rotate_bytes: u64,
    /// Delete rotated audit files older than this (`audit_retention`, default 730 days: SPID
    /// asks for 24 months).
    pub audit_retention: Duration,
    /// One SP for every comune, or an aggregator whose comuni are SPs of their own.
    pub mode: SpMode,
}

/// `sp.mode`: how varco meets the SPID federation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpMode {
    /// `"single"` (the default): the Region or Province is one public SP for every comune, and
    /// one login serves every service.
    Single,
    /// `"aggregator"`: the Region is a *soggetto aggregatore di servizi pubblici* in the
    /// `pub-ag-full` profile; each comune is an aggregated SP with its own entityID and
    /// metadata, and a login serves that comune's services only.
    Aggregator(Aggregator),
}

impl SpMode {
    /// The aggregator, in aggregator mode.
    pub fn aggregator(&self) -> Option<&Aggregator> {
        match self {
            SpMode::Single => None,
            SpMode::Aggregator(a) => Some(a),
        }
    }
}

/// `[sp.aggregator]`: the aggregator as its `ContactPerson` in every comune's metadata names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregator {
    /// Its IPA code (`spid:IPACode`).
    pub ipa_code: Option<String>,
    /// Its VAT number with the ISO 3166 country prefix (`IT…`; `spid:VATNumber`).
    pub vat_number: Option<String>,
    /// Its fiscal code (`spid:FiscalCode`).
    pub fiscal_code: Option<String>,
    /// `Company`.
    pub company: String,
    /// `EmailAddress`.
    pub email: String,
    /// `TelephoneNumber`, international form without spaces.
    pub phone: Option<String>,
}

/// The aggregated entities' activity code (AGGREGATOR.md §1.2): public services, full.
pub const AGGREGATED_PATH: &str = "pub-ag-full";

/// `sp.organization`.
#[derive(Debug, Clone)]
pub struct Organization {
    /// Full legal name.
    pub name: String,
    /// Short name shown by IdPs.
    pub display_name: String,
    /// Web site.
    pub url: String,
}

/// `sp.contact`.
#[derive(Debug, Clone)]
pub struct Contact {
    /// IPA code of the SP (public SPs).
    pub ipa_code: String,
    /// Institutional e-mail address.
    pub email: String,
    /// Public administration (`spid:Public`) or private.
    pub public: bool,
    /// ISTAT code of the seat (CIE metadata).
    pub municipality: String,
}

/// One `[[sp.attribute_set]]`: an AttributeConsumingService registered with AgID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeSet {
    /// `AttributeConsumingServiceIndex`.
    pub index: u16,
    /// Italian ServiceName.
    pub name: String,
    /// Requested attributes.
    pub attributes: Vec<Attribute>,
}

impl AttributeSet {
    /// Whether this set asks for every attribute in `wanted`.
    pub fn covers(&self, wanted: &[Attribute]) -> bool {
        wanted.iter().all(|a| self.attributes.contains(a))
    }

    /// What a login with this set gets from an IdP of `kind`: CIE releases only its own four
    /// attributes.
    pub fn asked_of(&self, kind: IdpKind) -> AttributeMask {
        self.attributes
            .iter()
            .copied()
            .filter(|a| kind == IdpKind::Spid || a.in_cie())
            .collect()
    }
}

impl SpConfig {
    /// What a login with `AttributeConsumingServiceIndex` `index` asks an IdP of `kind` for (CIE
    /// releases only its own); nothing for an index that was never declared.
    pub fn asked_by(&self, index: u16, kind: IdpKind) -> AttributeMask {
        self.attribute_sets
            .iter()
            .find(|s| s.index == index)
            .map(|s| s.asked_of(kind))
            .unwrap_or_default()
    }

    /// The smallest declared set covering `wanted` (ties: lowest index).
    pub fn smallest_set_covering(&self, wanted: &[Attribute]) -> Option<&AttributeSet> {
        self.set_for(wanted.iter().copied().collect(), IdpKind::Spid)
    }

    /// The set a login at an IdP of `kind` asks for to obtain `wanted`: the smallest declared set
    /// covering what that IdP can release of it (ties: lowest index); for CIE, only sets that ask
    /// for something CIE releases.
    pub fn set_for(&self, wanted: AttributeMask, kind: IdpKind) -> Option<&AttributeSet> {
        let wanted: Vec<Attribute> = wanted
            .iter()
            .filter(|a| kind == IdpKind::Spid || a.in_cie())
            .collect();
        self.attribute_sets
            .iter()
            .filter(|s| s.covers(&wanted) && !s.asked_of(kind).is_empty())
            .min_by_key(|s| (s.attributes.len(), s.index))
    }
}

pub(super) fn read_sp(
    root: &mut TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    base: &Path,
) -> SpConfig {
    let mut sp = SpConfig {
        entity_id: String::new(),
        key: PathBuf::new(),
        cert: PathBuf::new(),
        next_cert: None,
        organization: Organization {
            name: String::new(),
            display_name: String::new(),
            url: String::new(),
        },
        contact: Contact {
            ipa_code: String::new(),
            email: String::new(),
            public: true,
            municipality: String::new(),
        },
        attribute_sets: Vec::new(),
        audit_log: base.join("audit/saml-audit.log"),
        audit_key: PathBuf::new(),
        audit_rotate_bytes: 64 * 1024 * 1024,
        audit_retention: Duration::from_secs(730 * 24 * 3600),
        mode: SpMode::Single,
    };
    let Some(mut t) = root.table(sink, "sp", "[sp]") else {
        return sp;
    };
    let mode = t.opt_str(sink, "mode");
    let aggregator = t
        .opt_table(sink, "aggregator", "[sp.aggregator]")
        .map(|a| (a.span().clone(), read_aggregator(a, sink)));
    match (mode, aggregator) {
        (Some(m), agg) if m.value == "aggregator" => match agg {
            Some((_, a)) => sp.mode = SpMode::Aggregator(a),
            None => sink.error(
                &m.span,
                "[sp]: mode = \"aggregator\" needs an [sp.aggregator] table (ipa_code, vat_number or fiscal_code; company; email)",
            ),
        },
        (Some(m), _) if m.value != "single" => {
            let hint = nearest(&m.value, ["single", "aggregator"].into_iter())
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            sink.error(
                &m.span,
                format!(
                    "[sp]: `mode` must be \"single\" or \"aggregator\", found \"{}\"{hint}",
                    m.value
                ),
            );
        }
        (_, Some((span, _))) => sink.error(
            &span,
            "[sp.aggregator] is read only with mode = \"aggregator\" in [sp]",
        ),
        (_, None) => {}
    }
    if let Some(e) = t.str(sink, "entity_id", "the SP entityID, an URL") {
        if Url::parse(&e.value).is_err() || e.value.len() > 1024 {
            sink.error(
                &e.span,
                format!(
                    "`entity_id` must be an absolute URL of at most 1024 characters, found \"{}\"",
                    e.value
                ),
            );
        }
        sp.entity_id = e.value;
    }
    if let Some(a) = t.opt_str(sink, "audit_log") {
        if a.value.trim().is_empty() {
            sink.error(&a.span, "[sp]: `audit_log` must be a file path");
        }
        sp.audit_log = base.join(a.value);
    }
    if let Some(k) = t.str(
        sink,
        "audit_key",
        "a file of at least 32 random bytes for the audit trail's MACs (`openssl rand -out keys/audit.key 32`)",
    ) {
        sp.audit_key = existing_file(sink, base, "audit_key", k);
    }
    if let Some(At { value, span }) = t.opt_int(sink, "audit_rotate_mib") {
        match u64::try_from(value) {
            Ok(n) if (1..=4096).contains(&n) => sp.audit_rotate_bytes = n * 1024 * 1024,
            _ => sink.error(&span, "`audit_rotate_mib` must be between 1 and 4096"),
        }
    }
    if let Some(d) = duration(&mut t, sink, "audit_retention") {
        sp.audit_retention = d;
    }
    if let Some(k) = t.str(sink, "key", "PEM private key file") {
        sp.key = existing_file(sink, base, "key", k);
    }
    if let Some(c) = t.str(sink, "cert", "PEM certificate file") {
        sp.cert = existing_file(sink, base, "cert", c);
    }
    if let Some(c) = t.opt_str(sink, "next_cert") {
        sp.next_cert = Some(existing_file(sink, base, "next_cert", c));
    }
    if let Some(mut o) = t.table(sink, "organization", "sp.organization") {
        sp.organization.name = o
            .str(sink, "name", "full legal name")
            .map(|a| a.value)
            .unwrap_or_default();
        sp.organization.display_name = o
            .str(sink, "display_name", "short name")
            .map(|a| a.value)
            .unwrap_or_default();
        sp.organization.url = o
            .str(sink, "url", "web site")
            .map(|a| a.value)
            .unwrap_or_default();
        o.finish(sink);
    }
    if let Some(mut c) = t.table(sink, "contact", "sp.contact") {
        if let Some(ipa) = c.str(sink, "ipa_code", "IPA code of the SP") {
            if let Err(m) = check_ipa_code(&ipa.value) {
                sink.error(&ipa.span, format!("sp.contact: `ipa_code` {m}"));
            }
            sp.contact.ipa_code = ipa.value;
        }
        if let Some(email) = c.str(sink, "email", "institutional e-mail") {
            if !looks_like_email(&email.value) {
                sink.error(
                    &email.span,
                    format!(
                        "sp.contact: `email` is not an e-mail address: \"{}\"",
                        email.value
                    ),
                );
            }
            sp.contact.email = email.value;
        }
        sp.contact.public = c.opt_bool(sink, "public").is_none_or(|b| b.value);
        if let Some(m) = c.str(sink, "municipality", "ISTAT code of the SP's seat") {
            if let Err(msg) = check_istat_code(&m.value) {
                sink.error(&m.span, format!("sp.contact: `municipality` {msg}"));
            }
            sp.contact.municipality = m.value;
        }
        c.finish(sink);
    }
    let mut seen: Vec<(u16, std::ops::Range<usize>)> = Vec::new();
    for mut s in t.tables(sink, "attribute_set", "[[sp.attribute_set]]") {
        let index = s.opt_int(sink, "index");
        let name = s.str(sink, "name", "Italian ServiceName");
        let attrs = s.opt_str_array(sink, "attributes");
        let span = s.span().clone();
        s.finish(sink);
        let index = match index {
            Some(At { value, span }) => match u16::try_from(value) {
                Ok(i) => {
                    if let Some((_, first)) = seen.iter().find(|(j, _)| *j == i) {
                        let (line, _) = sink.file.locate(first.start);
                        sink.error(&span, format!("[[sp.attribute_set]]: duplicate index {i} (first declared on line {line})"));
                    }
                    seen.push((i, span));
                    Some(i)
                }
                Err(_) => {
                    sink.error(
                        &span,
                        "[[sp.attribute_set]]: `index` must be between 0 and 65535",
                    );
                    None
                }
            },
            None => {
                sink.error(&span, "[[sp.attribute_set]]: missing required field `index` (stable AttributeConsumingServiceIndex)");
                None
            }
        };
        let attributes = match attrs {
            Some(list) => {
                if list.value.is_empty() {
                    sink.error(
                        &list.span,
                        "[[sp.attribute_set]]: `attributes` must not be empty",
                    );
                }
                parse_attributes(sink, &list.value, "[[sp.attribute_set]]")
            }
            None => {
                sink.error(
                    &span,
                    "[[sp.attribute_set]]: missing required field `attributes`",
                );
                Vec::new()
            }
        };
        if let (Some(index), Some(name)) = (index, name) {
            sp.attribute_sets.push(AttributeSet {
                index,
                name: name.value,
                attributes,
            });
        }
    }
    if sp.attribute_sets.is_empty() {
        sink.error(t.span(), "[sp]: declare at least one [[sp.attribute_set]] (the AttributeConsumingService registered with AgID)");
    }
    sp.attribute_sets.sort_by_key(|s| s.index);
    t.finish(sink);
    sp
}

fn read_aggregator(mut t: TableReader<'_, '_>, sink: &mut Sink<'_>) -> Aggregator {
    let ipa_code = t.opt_str(sink, "ipa_code").map(|ipa| {
        if let Err(m) = check_ipa_code(&ipa.value) {
            sink.error(&ipa.span, format!("[sp.aggregator]: `ipa_code` {m}"));
        }
        ipa.value
    });
    let vat_number = t.opt_str(sink, "vat_number").map(|v| {
        // spid-sp-test and AgID want the ISO 3166 prefix: "IT01386030488".
        let b = v.value.as_bytes();
        let well_formed = (4..=16).contains(&b.len())
            && b[..2].iter().all(u8::is_ascii_uppercase)
            && b[2..].iter().all(u8::is_ascii_alphanumeric);
        if !well_formed {
            sink.error(
                &v.span,
                format!(
                    "[sp.aggregator]: `vat_number` must start with its ISO 3166 country code, like \"IT01386030488\", found \"{}\"",
                    v.value
                ),
            );
        }
        v.value
    });
    let fiscal_code = t.opt_str(sink, "fiscal_code").map(|f| {
        if !(11..=16).contains(&f.value.len()) || !f.value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            sink.error(
                &f.span,
                format!("[sp.aggregator]: `fiscal_code` must be 11 digits (or 16 characters), found \"{}\"", f.value),
            );
        }
        f.value
    });
    if ipa_code.is_none() && vat_number.is_none() && fiscal_code.is_none() {
        sink.error(
            t.span(),
            "[sp.aggregator]: give the aggregator's `ipa_code`, `vat_number` or `fiscal_code`",
        );
    }
    let company = t
        .str(
            sink,
            "company",
            "the aggregator's legal name, e.g. \"Regione Toscana\"",
        )
        .map(|c| c.value)
        .unwrap_or_default();
    let email = match t.str(sink, "email", "the aggregator's institutional e-mail") {
        Some(e) => {
            if !looks_like_email(&e.value) {
                sink.error(
                    &e.span,
                    format!(
                        "[sp.aggregator]: `email` is not an e-mail address: \"{}\"",
                        e.value
                    ),
                );
            }
            e.value
        }
        None => String::new(),
    };
    let phone = t.opt_str(sink, "phone").map(|p| {
        let digits = p.value.strip_prefix('+').unwrap_or("");
        if !(6..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            sink.error(
                &p.span,
                format!(
                    "[sp.aggregator]: `phone` must be in international form without spaces, like \"+390554381111\", found \"{}\"",
                    p.value
                ),
            );
        }
        p.value
    });
    t.finish(sink);
    Aggregator {
        ipa_code,
        vat_number,
        fiscal_code,
        company,
        email,
        phone,
    }
}

/// Parses attribute names, reporting unknown ones with the nearest SPID name and duplicates.
pub(crate) fn parse_attributes(
    sink: &mut Sink<'_>,
    list: &[At<String>],
    ctx: &str,
) -> Vec<Attribute> {
    let mut out: Vec<Attribute> = Vec::with_capacity(list.len());
    for At { value, span } in list {
        match value.parse::<Attribute>() {
            Ok(a) if out.contains(&a) => {
                sink.error(span, format!("{ctx}: attribute `{value}` is listed twice"))
            }
            Ok(a) => out.push(a),
            Err(()) => {
                let hint = nearest(value, Attribute::ALL.iter().map(|a| a.as_str()))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                sink.error(
                    span,
                    format!("{ctx}: unknown SPID attribute `{value}`{hint}"),
                );
            }
        }
    }
    out
}

fn looks_like_email(s: &str) -> bool {
    let mut parts = s.split('@');
    matches!((parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None) if !local.is_empty() && domain.contains('.') && !s.contains(char::is_whitespace))
}
