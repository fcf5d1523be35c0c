//! The unified service catalog: every listed service of every comune, built once per policy
//! snapshot, with its search text folded in advance and the whole catalog already rendered as JSON
//! and JSON-LD (with their ETags). Filtered views are computed from it on demand.

use std::fmt::Write as _;

use policies::{Access, Attribute, Category, Level, Snapshot};
use serde_json::{json, Value};
use sha2::Digest as _;

use crate::query::Query;

/// One comune as the catalog shows it.
#[derive(Debug, Clone)]
pub struct CatalogComune {
    /// "Comune di Capannori".
    pub name: String,
    /// IPA code.
    pub ipa_code: String,
    /// ISTAT code.
    pub istat_code: String,
    /// Province, when the policy file gives it.
    pub province: Option<String>,
    /// How many listed services it has.
    pub services: usize,
}

/// One listed service.
#[derive(Debug, Clone)]
pub struct CatalogService {
    /// Stable public id, `<ipa_code>/<id>`.
    pub id: String,
    /// Index of its comune in [`Catalog::comuni`].
    pub comune: usize,
    /// Name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Official category.
    pub category: Category,
    /// Where citizens open it.
    pub url: String,
    /// Who may use it.
    pub access: Access,
    /// Attributes released to the back-end.
    pub attributes: Vec<Attribute>,
    /// Extra search words.
    pub keywords: Vec<String>,
    /// Where to get help.
    pub help_url: Option<String>,
    /// Folded text searched by `q`: name, description, keywords, comune, province, category.
    search: String,
    /// Folded sort key.
    sort: (String, String),
}

impl CatalogService {
    /// The folded text `q` searches.
    pub fn search_text(&self) -> &str {
        &self.search
    }
}

/// A rendered document and its validator.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The body.
    pub body: String,
    /// Strong ETag, quoted.
    pub etag: String,
}

impl Rendered {
    /// `body` with its ETag (SHA-256, 96 bits).
    pub fn new(body: String) -> Self {
        let digest = sha2::Sha256::digest(body.as_bytes());
        let etag = digest[..12].iter().fold(String::from("\""), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        }) + "\"";
        Self { body, etag }
    }
}

/// The catalog of one policy snapshot.
#[derive(Debug)]
pub struct Catalog {
    /// Comuni, sorted by name.
    pub comuni: Vec<CatalogComune>,
    /// Listed services, sorted by comune name, service name, id.
    pub services: Vec<CatalogService>,
    /// The portal's origin, e.g. `https://servizi.regione.toscana.it`.
    pub origin: String,
    json: Rendered,
    jsonld: Rendered,
}

/// Lower case, accents removed, anything but letters and digits as one space, padded with
/// spaces: `" pago pa tari "`. What search terms and texts are compared in.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = match c {
            'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' => 'a',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ò' | 'ó' | 'ô' | 'ö' | 'õ' => 'o',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        };
        if c != ' ' || !out.ends_with(' ') {
            out.push(c);
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

/// The access a service needs, as citizens read it.
pub fn access_label(access: Access) -> String {
    match access {
        Access::Public => "Accesso libero".into(),
        Access::Login(l) => format!("Accesso con {}", l.label_it()),
    }
}

impl Catalog {
    /// Builds the catalog of `snapshot`: every service not marked `unlisted`.
    pub fn build(snapshot: &Snapshot) -> Self {
        let public = &snapshot.config.server.public_url;
        let scheme = if public.https { "https" } else { "http" };
        let port = public
            .url
            .port()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let origin = public.url.origin().ascii_serialization();

        let mut order: Vec<usize> = (0..snapshot.comuni.len()).collect();
        let folded: Vec<String> = snapshot.comuni.iter().map(|c| fold(&c.name)).collect();
        order.sort_by(|&a, &b| {
            folded[a].cmp(&folded[b]).then_with(|| {
                snapshot.comuni[a]
                    .ipa_code
                    .as_str()
                    .cmp(snapshot.comuni[b].ipa_code.as_str())
            })
        });
        let mut comuni = Vec::with_capacity(order.len());
        let mut services = Vec::new();
        for &ci in &order {
            let c = &snapshot.comuni[ci];
            let index = comuni.len();
            let before = services.len();
            for s in c.services.iter().filter(|s| !s.unlisted) {
                let search = fold(&format!(
                    "{} {} {} {} {} {}",
                    s.name,
                    s.description,
                    s.keywords.join(" "),
                    c.name,
                    c.province.as_deref().unwrap_or(""),
                    s.category.label()
                ));
                services.push(CatalogService {
                    id: format!("{}/{}", c.ipa_code.as_str(), s.id.as_str()),
                    comune: index,
                    name: s.name.clone(),
                    description: s.description.clone(),
                    category: s.category,
                    url: format!("{scheme}://{}{port}{}", s.route.host, s.route.path_prefix),
                    access: s.access,
                    attributes: s.attributes.clone(),
                    keywords: s.keywords.clone(),
                    help_url: s.help_url.clone(),
                    search,
                    sort: (fold(&s.name), s.id.as_str().to_string()),
                });
            }
            services[before..].sort_by(|a, b| a.sort.cmp(&b.sort));
            comuni.push(CatalogComune {
                name: c.name.clone(),
                ipa_code: c.ipa_code.as_str().to_string(),
                istat_code: c.istat_code.as_str().to_string(),
                province: c.province.clone(),
                services: services.len() - before,
            });
        }
        let mut catalog = Self {
            comuni,
            services,
            origin,
            json: Rendered::new(String::new()),
            jsonld: Rendered::new(String::new()),
        };
        let all = Query::default();
        catalog.json = Rendered::new(catalog.render_json(&all));
        catalog.jsonld = Rendered::new(catalog.render_jsonld(&all));
        catalog
    }

    /// The whole catalog as JSON, rendered at build time.
    pub fn json(&self) -> &Rendered {
        &self.json
    }

    /// The whole catalog as JSON-LD, rendered at build time.
    pub fn jsonld(&self) -> &Rendered {
        &self.jsonld
    }

    /// The comune with this IPA code.
    pub fn comune(&self, ipa: &str) -> Option<usize> {
        self.comuni.iter().position(|c| c.ipa_code == ipa)
    }

    /// The services `query` selects, in catalog order (before pagination).
    pub fn select<'a>(&'a self, query: &'a Query) -> impl Iterator<Item = &'a CatalogService> + 'a {
        let comune = query.comune.as_deref().map(|ipa| self.comune(ipa));
        self.services.iter().filter(move |s| {
            comune.is_none_or(|c| c == Some(s.comune))
                && query.category.is_none_or(|c| c == s.category)
                && query.access.is_none_or(|a| a == s.access)
                && query.terms.iter().all(|t| s.search.contains(t.as_str()))
        })
    }

    fn service_json(&self, s: &CatalogService) -> Value {
        let c = &self.comuni[s.comune];
        json!({
            "id": s.id,
            "name": s.name,
            "description": s.description,
            "comune": { "name": c.name, "ipa_code": c.ipa_code, "istat_code": c.istat_code, "province": c.province },
            "category": { "slug": s.category.slug(), "label": s.category.label() },
            "url": s.url,
            "access": s.access.as_str(),
            "access_label": access_label(s.access),
            "attributes": s.attributes.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            "keywords": s.keywords,
            "help_url": s.help_url,
        })
    }

    /// JSON of the services `query` selects: `{total, page, per_page, services}`, plus
    /// `comuni` (every comune with its count) for the unfiltered catalog.
    pub fn render_json(&self, query: &Query) -> String {
        let selected: Vec<&CatalogService> = self.select(query).collect();
        let total = selected.len();
        let (page, per_page, slice) = query.paginate(&selected);
        let mut doc = json!({
            "total": total,
            "page": page,
            "per_page": per_page,
            "services": slice.iter().map(|s| self.service_json(s)).collect::<Vec<_>>(),
        });
        if query.is_unfiltered() {
            doc["comuni"] = self
                .comuni
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name, "ipa_code": c.ipa_code, "istat_code": c.istat_code,
                        "province": c.province, "services": c.services,
                    })
                })
                .collect();
        }
        doc.to_string()
    }

    /// JSON-LD (schema.org) of the services `query` selects: `GovernmentService`s whose provider
    /// is the comune as a `GovernmentOrganization` with its ISTAT and IPA identifiers.
    pub fn render_jsonld(&self, query: &Query) -> String {
        let selected: Vec<&CatalogService> = self.select(query).collect();
        let (_, _, slice) = query.paginate(&selected);
        let org_id = |c: &CatalogComune| format!("{}/catalog?comune={}", self.origin, c.ipa_code);
        let mut used = vec![false; self.comuni.len()];
        let mut graph: Vec<Value> = Vec::with_capacity(slice.len() + 8);
        for s in slice {
            used[s.comune] = true;
            let c = &self.comuni[s.comune];
            let mut service = json!({
                "@type": "GovernmentService",
                "@id": format!("{}/catalog.jsonld#{}", self.origin, s.id),
                "identifier": s.id,
                "name": s.name,
                "description": s.description,
                "serviceType": s.category.label(),
                "url": s.url,
                "provider": { "@id": org_id(c) },
                "areaServed": { "@type": "City", "name": c.name.trim_start_matches("Comune di ") },
                "audience": { "@type": "Audience", "audienceType": "Cittadini" },
                "availableChannel": {
                    "@type": "ServiceChannel",
                    "name": "Servizio on-line",
                    "serviceUrl": s.url,
                    "availableLanguage": "it",
                },
                "isAccessibleForFree": true,
            });
            if !s.keywords.is_empty() {
                service["keywords"] = Value::String(s.keywords.join(", "));
            }
            if let Access::Login(l) = s.access {
                service["availableChannel"]["description"] =
                    Value::String(format!("Accesso con {}", l.label_it()));
            }
            if let Some(h) = &s.help_url {
                service["potentialAction"] =
                    json!({ "@type": "CommunicateAction", "name": "Assistenza", "target": h });
            }
            graph.push(service);
        }
        for c in self
            .comuni
            .iter()
            .zip(&used)
            .filter(|(_, u)| **u)
            .map(|(c, _)| c)
        {
            let mut org = json!({
                "@type": "GovernmentOrganization",
                "@id": org_id(c),
                "name": c.name,
                "identifier": [
                    { "@type": "PropertyValue", "propertyID": "ISTAT", "value": c.istat_code },
                    { "@type": "PropertyValue", "propertyID": "IPA", "value": c.ipa_code },
                ],
                "address": { "@type": "PostalAddress", "addressCountry": "IT" },
            });
            if let Some(p) = &c.province {
                org["address"]["addressRegion"] = Value::String(p.clone());
            }
            graph.push(org);
        }
        json!({ "@context": "https://schema.org", "@graph": graph }).to_string()
    }

    /// Whether a citizen whose session is at `have` opens a service needing `access` directly.
    pub fn opens_directly(access: Access, have: Option<Level>) -> bool {
        match access {
            Access::Public => true,
            Access::Login(need) => have.is_some_and(|h| h >= need),
        }
    }
}
