//! The unified service catalog: every listed service of every comune, built once per policy
//! snapshot, with its search text folded in advance and the whole catalog already rendered as JSON
//! and JSON-LD (with their ETags). Filtered views are computed from it on demand.

use std::fmt::Write as _;

use policies::{Access, Attribute, Category, Held, Snapshot};
use serde::Serialize;
use sha2::Digest as _;

use crate::fold::fold;
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

/// Who is looking at the catalog: what the session holds, and whose services it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Viewer {
    /// The level and attributes of the session.
    pub held: Held,
    /// The comuni whose services it serves.
    pub serves: Serves,
}

/// The comuni whose services a session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serves {
    /// Every comune's (one SP for all).
    Every,
    /// One comune's, by its index in [`Catalog::comuni`] (aggregator mode).
    Comune(usize),
    /// None (aggregator mode: a login for the aggregator's own SP, or for a comune no longer
    /// in the catalog).
    None,
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
    /// Whether CIE is offered for it: a CIE provider is configured and CIE releases every
    /// attribute the service needs.
    pub cie: bool,
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
    /// The body (UTF-8), shareable without a copy.
    pub body: bytes::Bytes,
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
        Self {
            body: bytes::Bytes::from(body),
            etag,
        }
    }

    /// The body as text.
    pub fn text(&self) -> &str {
        // Built from a `String` in `new`.
        std::str::from_utf8(&self.body).unwrap_or_default()
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

/// The access a service needs, as citizens read it; `cie`: whether CIE is offered for it.
pub fn access_label(access: Access, cie: bool) -> String {
    match access {
        Access::Public => "Accesso libero".into(),
        Access::Login(l) => format!("Accesso con {}", l.methods_it(cie)),
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
        let origin = public.origin();
        let cie_configured = snapshot
            .config
            .idps
            .iter()
            .any(|i| i.kind == policies::IdpKind::Cie);

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
                    cie: cie_configured && s.attributes.iter().all(|a| a.in_cie()),
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

    fn comune_out<'a>(&'a self, c: &'a CatalogComune) -> ComuneOut<'a> {
        ComuneOut {
            name: &c.name,
            ipa_code: &c.ipa_code,
            istat_code: &c.istat_code,
            province: c.province.as_deref(),
        }
    }

    fn service_out<'a>(&'a self, s: &'a CatalogService) -> ServiceOut<'a> {
        ServiceOut {
            id: &s.id,
            name: &s.name,
            description: &s.description,
            comune: self.comune_out(&self.comuni[s.comune]),
            category: CategoryOut {
                slug: s.category.slug(),
                label: s.category.label(),
            },
            url: &s.url,
            access: s.access.as_str(),
            access_label: access_label(s.access, s.cie),
            attributes: s.attributes.iter().map(|a| a.as_str()).collect(),
            keywords: &s.keywords,
            help_url: s.help_url.as_deref(),
        }
    }

    /// JSON of the services `query` selects: `{total, page, per_page, services}`, plus
    /// `comuni` (every comune with its count) for the unfiltered catalog.
    pub fn render_json(&self, query: &Query) -> String {
        let selected: Vec<&CatalogService> = self.select(query).collect();
        let (page, per_page, slice) = query.paginate(&selected);
        let doc = CatalogOut {
            total: selected.len(),
            page,
            per_page,
            services: slice.iter().map(|s| self.service_out(s)).collect(),
            comuni: query.is_unfiltered().then(|| {
                self.comuni
                    .iter()
                    .map(|c| ComuneCount {
                        comune: self.comune_out(c),
                        services: c.services,
                    })
                    .collect()
            }),
        };
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// JSON-LD (schema.org) of the services `query` selects: `GovernmentService`s whose provider
    /// is the comune as a `GovernmentOrganization` with its ISTAT and IPA identifiers.
    pub fn render_jsonld(&self, query: &Query) -> String {
        let selected: Vec<&CatalogService> = self.select(query).collect();
        let (_, _, slice) = query.paginate(&selected);
        let org_id = |c: &CatalogComune| format!("{}/catalog?comune={}", self.origin, c.ipa_code);
        let mut used = vec![false; self.comuni.len()];
        let mut graph: Vec<Node<'_>> = Vec::with_capacity(slice.len() + 8);
        for s in slice {
            used[s.comune] = true;
            let c = &self.comuni[s.comune];
            graph.push(Node::Service(LdService {
                kind: "GovernmentService",
                id: format!("{}/catalog.jsonld#{}", self.origin, s.id),
                identifier: &s.id,
                name: &s.name,
                description: &s.description,
                service_type: s.category.label(),
                url: &s.url,
                provider: LdRef { id: org_id(c) },
                area_served: LdCity {
                    kind: "City",
                    name: c.name.trim_start_matches("Comune di "),
                },
                audience: LdAudience {
                    kind: "Audience",
                    audience_type: "Cittadini",
                },
                available_channel: LdChannel {
                    kind: "ServiceChannel",
                    name: "Servizio on-line",
                    service_url: &s.url,
                    available_language: "it",
                    description: match s.access {
                        Access::Public => None,
                        Access::Login(l) => Some(format!("Accesso con {}", l.methods_it(s.cie))),
                    },
                },
                is_accessible_for_free: true,
                keywords: (!s.keywords.is_empty()).then(|| s.keywords.join(", ")),
                potential_action: s.help_url.as_deref().map(|target| LdAction {
                    kind: "CommunicateAction",
                    name: "Assistenza",
                    target,
                }),
            }));
        }
        for c in self
            .comuni
            .iter()
            .zip(&used)
            .filter(|(_, u)| **u)
            .map(|(c, _)| c)
        {
            graph.push(Node::Organization(LdOrganization {
                kind: "GovernmentOrganization",
                id: org_id(c),
                name: &c.name,
                identifier: [
                    LdProperty {
                        kind: "PropertyValue",
                        property_id: "ISTAT",
                        value: &c.istat_code,
                    },
                    LdProperty {
                        kind: "PropertyValue",
                        property_id: "IPA",
                        value: &c.ipa_code,
                    },
                ],
                address: LdAddress {
                    kind: "PostalAddress",
                    address_country: "IT",
                    address_region: c.province.as_deref(),
                },
            }));
        }
        serde_json::to_string(&LdDocument {
            context: "https://schema.org",
            graph,
        })
        .unwrap_or_default()
    }

    /// Whether a citizen whose session holds `held` opens `service` without a new login (the
    /// proxy's rule: [`Held::allows`]).
    pub fn opens_directly(service: &CatalogService, held: Held) -> bool {
        held.allows(service.access, service.attributes.iter().copied().collect())
    }

    /// Whether the session of `viewer` serves `service`'s comune at all (in aggregator mode, a
    /// session serves the comune it was made for).
    pub fn serves(viewer: Viewer, service: &CatalogService) -> bool {
        match viewer.serves {
            Serves::Every => true,
            Serves::Comune(c) => c == service.comune,
            Serves::None => false,
        }
    }
}

// The published shapes, serialised straight from borrowed data (no intermediate JSON values: the
// whole of Tuscany is 10 920 services, rebuilt on every reload).

#[derive(Serialize)]
struct CatalogOut<'a> {
    total: usize,
    page: usize,
    per_page: usize,
    services: Vec<ServiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comuni: Option<Vec<ComuneCount<'a>>>,
}

#[derive(Serialize)]
struct ComuneOut<'a> {
    name: &'a str,
    ipa_code: &'a str,
    istat_code: &'a str,
    province: Option<&'a str>,
}

#[derive(Serialize)]
struct ComuneCount<'a> {
    #[serde(flatten)]
    comune: ComuneOut<'a>,
    services: usize,
}

#[derive(Serialize)]
struct CategoryOut {
    slug: &'static str,
    label: &'static str,
}

#[derive(Serialize)]
struct ServiceOut<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    comune: ComuneOut<'a>,
    category: CategoryOut,
    url: &'a str,
    access: &'static str,
    access_label: String,
    attributes: Vec<&'static str>,
    keywords: &'a [String],
    help_url: Option<&'a str>,
}

#[derive(Serialize)]
struct LdDocument<'a> {
    #[serde(rename = "@context")]
    context: &'static str,
    #[serde(rename = "@graph")]
    graph: Vec<Node<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Node<'a> {
    Service(LdService<'a>),
    Organization(LdOrganization<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LdService<'a> {
    #[serde(rename = "@type")]
    kind: &'static str,
    #[serde(rename = "@id")]
    id: String,
    identifier: &'a str,
    name: &'a str,
    description: &'a str,
    service_type: &'static str,
    url: &'a str,
    provider: LdRef,
    area_served: LdCity<'a>,
    audience: LdAudience,
    available_channel: LdChannel<'a>,
    is_accessible_for_free: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    keywords: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    potential_action: Option<LdAction<'a>>,
}

#[derive(Serialize)]
struct LdRef {
    #[serde(rename = "@id")]
    id: String,
}

#[derive(Serialize)]
struct LdCity<'a> {
    #[serde(rename = "@type")]
    kind: &'static str,
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LdAudience {
    #[serde(rename = "@type")]
    kind: &'static str,
    audience_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LdChannel<'a> {
    #[serde(rename = "@type")]
    kind: &'static str,
    name: &'static str,
    service_url: &'a str,
    available_language: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

#[derive(Serialize)]
struct LdAction<'a> {
    #[serde(rename = "@type")]
    kind: &'static str,
    name: &'static str,
    target: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LdOrganization<'a> {
    #[serde(rename = "@type")]
    kind: &'static str,
    #[serde(rename = "@id")]
    id: String,
    name: &'a str,
    identifier: [LdProperty<'a>; 2],
    address: LdAddress<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LdProperty<'a> {
    #[serde(rename = "@type")]
    kind: &'static str,
    #[serde(rename = "propertyID")]
    property_id: &'static str,
    value: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LdAddress<'a> {
    #[serde(rename = "@type")]
    kind: &'static str,
    address_country: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    address_region: Option<&'a str>,
}
